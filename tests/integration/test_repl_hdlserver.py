"""hdlserver as primary and as mirror of itself, on loopback: real processes, sockets, LMDB and keys.

The mirror pulls every 0.5 s over HDL-TCP 2.11, so the transaction stream goes through the TLS upgrade
with the primary's self-signed HS_SITE-key certificate, as between Java servers.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import request
from prometheus_client.parser import text_string_to_metric_families
from repl_support import make_mirror, resolved_urls, txnstat_last_id, wait_for
from servers import ServerProcess, run_cli, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.admin import AdminClient, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, build_request
from hdlserver.client.transport import read_exact
from hdlserver.config.siteinfo import load_site_info
from hdlserver.replication.puller import REPLICATION_FLAGS, _authenticated_connection
from hdlserver.replication.streams import (
    STREAM_PK,
    SegmentReader,
    TxnRecord,
    TxnStreamEnd,
    read_stream_type,
    read_txn_stream,
)
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.bodies import BackupServerRequest, GetNextTxnIdRequest, RetrieveTxnLogRequest
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("repl-primary") / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, primary: ServerProcess) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("repl-mirror") / "srv"
    port = make_mirror(directory, primary.directory / "siteinfo.json", primary.directory / "admpriv.bin",
                       extra=('"enable_metrics" = "yes"', '"metrics_port" = "0"'))
    server = start_server(directory, port)
    yield server
    server.stop()


def metrics_address(server: ServerProcess) -> tuple[str, int]:
    for line in (server.directory / "ready.txt").read_text(encoding="utf-8").splitlines():
        label, host, port = line.split()
        if label == "metrics":
            return host, int(port)
    raise AssertionError("the mirror has no metrics listener")


def replication_samples(server: ServerProcess) -> dict[str, float]:
    reply = request(metrics_address(server), "GET", "/metrics")
    assert reply.status == 200, reply.body
    return {sample.name: sample.value for family in text_string_to_metric_families(reply.body.decode("utf-8"))
            for sample in family.samples if sample.name.startswith("hdlserver_replication_")}


def test_creates_changes_and_deletes_reach_the_mirror(primary: ServerProcess, mirror: ServerProcess) -> None:
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/r1", [url("http://example.org/r1")])
        admin.create_handle("TEST/r2", [url("http://example.org/r2")])
        admin.modify_values("TEST/r1", [url("http://example.org/r1-changed")])
        admin.delete_handle("TEST/r2")
    assert wait_for(lambda: resolved_urls(mirror.address, "TEST/r1") == [b"http://example.org/r1-changed"],
                    what="TEST/r1 changed on the mirror")
    assert wait_for(lambda: resolved_urls(mirror.address, "TEST/r2") is None, what="TEST/r2 gone")
    with open_store(primary.directory, case_sensitive=False, readonly=True) as store:
        newest = store.last_txn_id()
    assert wait_for(lambda: txnstat_last_id(mirror.directory) == newest, what="txnstat.dct at the newest id")
    assert "sent the replication transaction log" in primary.error_log()
    applied = wait_for(lambda: replication_samples(mirror).get("hdlserver_replication_applied_txn_id") == newest,
                       what="the mirror's metrics at the newest id")
    assert applied
    samples = replication_samples(mirror)
    assert samples["hdlserver_replication_errors_total"] == 0
    assert samples["hdlserver_replication_last_success_timestamp_seconds"] > 0
    assert 0 <= samples["hdlserver_replication_lag_seconds"] < 60


def test_mirror_refuses_admin_operations(mirror: ServerProcess) -> None:
    mirror_admin = SecretKeyIdentity(b"0.NA/TEST", 300, b"mirror-secret")
    with AdminClient(mirror.address, mirror_admin) as admin, pytest.raises(HandleResponseError) as caught:
        admin.create_handle("TEST/on-mirror", [url("http://example.org/no")])
    assert caught.value.response_code == ResponseCode.SERVER_NOT_RESP
    assert resolved_urls(mirror.address, "TEST/on-mirror") is None


def test_unauthorized_mirror_is_refused_and_applies_nothing(tmp_path: Path, primary: ServerProcess) -> None:
    """A mirror whose identity the primary does not list: RC 400 logged on both sides, nothing stored."""
    directory = tmp_path / "intruder"
    stranger_key = tmp_path / "stranger.bin"
    setup_server_dir(tmp_path / "other")  # only for a key pair the primary does not know
    stranger_key.write_bytes((tmp_path / "other" / "admpriv.bin").read_bytes())
    port = make_mirror(directory, primary.directory / "siteinfo.json", stranger_key, identity="301:0.NA/OTHER")
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/not-for-strangers", [url("http://example.org/private")])
    server = start_server(directory, port)
    try:
        wait_for(lambda: "refused by the source" in server.error_log(), what="the refusal in the mirror's log")
        assert resolved_urls(server.address, "TEST/not-for-strangers") is None
        assert txnstat_last_id(directory) is None
    finally:
        server.stop()
    assert "refused replication to 127.0.0.1 as 301:0.NA/OTHER" in primary.error_log()


def test_killed_mirror_resumes_where_it_stopped(tmp_path: Path, primary: ServerProcess) -> None:
    directory = tmp_path / "m"
    port = make_mirror(directory, primary.directory / "siteinfo.json", primary.directory / "admpriv.bin")
    server = start_server(directory, port)
    wait_for(lambda: txnstat_last_id(directory), what="the first round")
    server.stop(signal.SIGKILL)
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/after-kill", [url("http://example.org/after")])
    before = txnstat_last_id(directory)
    server = start_server(directory, port)
    try:
        assert wait_for(lambda: resolved_urls(server.address, "TEST/after-kill"), what="pull after restart")
        log = server.error_log()
        assert "already applied" not in log
        assert before is not None and before >= 1
    finally:
        server.stop()


def test_dumpfromprimary_fills_a_fresh_mirror_which_then_pulls_newer(tmp_path: Path,
                                                                     primary: ServerProcess) -> None:
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/before-dump", [url("http://example.org/before")])
    directory = tmp_path / "dumped"
    port = make_mirror(directory, primary.directory / "siteinfo.json", primary.directory / "admpriv.bin")
    done = run_cli("hdlserver.cli.dumpfromprimary", directory)
    with open_store(primary.directory, case_sensitive=False, readonly=True) as store:
        newest = store.last_txn_id()
        count = store.count_handles()
    assert f"dump finished: {count} handles" in done.stdout
    assert txnstat_last_id(directory) == newest
    with open_store(directory, case_sensitive=False, readonly=True) as store:
        assert store.exists(b"TEST/BEFORE-DUMP") and store.count_handles() == count
        assert b"0.NA/TEST" in store.homed_prefixes()
    server = start_server(directory, port)
    try:
        with AdminClient(primary.address, ADMIN) as admin:
            admin.create_handle("TEST/after-dump", [url("http://example.org/after-dump")])
        assert wait_for(lambda: resolved_urls(server.address, "TEST/after-dump"), what="pull after the dump")
        assert wait_for(lambda: txnstat_last_id(directory) == newest + 1, what="exactly one more transaction")
    finally:
        server.stop()


def test_dumpfromprimary_refuses_a_running_server(mirror: ServerProcess) -> None:
    wait_for(lambda: txnstat_last_id(mirror.directory), what="the mirror's first round")
    done = run_cli("hdlserver.cli.dumpfromprimary", mirror.directory, check=False)
    assert done.returncode == 1
    assert "stop it before a dump" in done.stderr and "the store is unchanged" in done.stderr
    assert not (mirror.directory / "hdldb.dump").exists()
    assert resolved_urls(mirror.address, "TEST/hello") is not None


def test_obsolete_next_txn_id_and_backup_server(primary: ServerProcess, mirror: ServerProcess) -> None:
    with AdminClient(primary.address, ADMIN) as admin:
        with pytest.raises(HandleResponseError) as caught:
            admin.request(OpCode.GET_NEXT_TXN_ID, GetNextTxnIdRequest(b"/"))
        assert caught.value.response_code == ResponseCode.OPERATION_NOT_SUPPORTED
        assert "no longer supported" in str(caught.value)
        assert admin.request(OpCode.BACKUP_SERVER, BackupServerRequest(b"/")).response_code == ResponseCode.SUCCESS
    with AdminClient(mirror.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"mirror-secret")) as admin:
        with pytest.raises(HandleResponseError) as caught:
            admin.request(OpCode.GET_NEXT_TXN_ID, GetNextTxnIdRequest(b"/"))
        assert caught.value.response_code == ResponseCode.SERVER_NOT_RESP
        with pytest.raises(HandleResponseError) as caught:  # single-source log from a mirror: as Java, RC 5
            admin.request(OpCode.RETRIEVE_TXN_LOG, RetrieveTxnLogRequest(last_txn_id=0))
        assert (caught.value.response_code, "Not a primary server" in str(caught.value)) == (
            ResponseCode.OPERATION_NOT_SUPPORTED, True)


def test_source_that_disappears_and_returns(tmp_path: Path) -> None:
    """The primary is killed while the mirror pulls: every round logs the failure, the mirror keeps
    serving what it has, and once the primary is back the next round catches up."""
    source_dir = tmp_path / "primary"
    source_port = setup_server_dir(source_dir)
    source = start_server(source_dir, source_port)
    directory = tmp_path / "m"
    port = make_mirror(directory, source_dir / "siteinfo.json", source_dir / "admpriv.bin")
    server = start_server(directory, port)
    try:
        first = wait_for(lambda: txnstat_last_id(directory), what="the first round")
        source.stop(signal.SIGKILL)
        wait_for(lambda: "ConnectionRefusedError" in server.error_log(), what="the failed round in the log")
        assert resolved_urls(server.address, "TEST/hello") is not None
        source = start_server(source_dir, source_port)
        with AdminClient(source.address, ADMIN) as admin:
            admin.create_handle("TEST/back", [url("http://example.org/back")])
        assert wait_for(lambda: resolved_urls(server.address, "TEST/back"), what="the pull after the return")
        assert txnstat_last_id(directory) == first + 1
    finally:
        server.stop()
        source.stop()


def test_old_protocol_versions_get_a_pk_signed_stream(primary: ServerProcess) -> None:
    """HDL-TCP before 2.8: no TLS; every record is signed with the server key (SHA1withRSA) and verifies."""
    site = load_site_info(primary.directory)
    identity = PublicKeyIdentity(b"0.NA/TEST", 301, keys.load_private_key(primary.directory / "admpriv.bin"))
    request = bytearray(build_request(OpCode.RETRIEVE_TXN_LOG, RetrieveTxnLogRequest(last_txn_id=0),
                                      REPLICATION_FLAGS, version=(2, 7)))
    request[3] = 7  # an old client suggests its own version, 2.7 (suggested minor: envelope byte 3)
    sock = _authenticated_connection(primary.address, bytes(request), identity, 10.0)
    try:
        def read(n: int) -> bytes:
            return read_exact(sock, n)

        assert read_stream_type(read) == STREAM_PK
        events = list(read_txn_stream(SegmentReader(read, keys.public_key_from_bytes(site.servers[0].public_key))))
    finally:
        sock.close()
    records = [e for e in events if isinstance(e, TxnRecord)]
    assert records and records[0].txn_id == 1 and isinstance(events[-1], TxnStreamEnd)

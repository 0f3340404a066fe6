"""Replication both ways with the Java Handle.Net 9.2 replication build (../shared/handle-java, bin/hdl-repl).

* a Java mirror pulls creates, value changes and deletes from an hdlserver primary (session setup, 402
  challenge, TLS-upgraded stream, as recorded in REPLICATION.md);
* Java's ``hdl-dumpfromprimary`` fills a fresh Java mirror from the hdlserver primary;
* an hdlserver mirror pulls creates, value changes and deletes from a Java primary;
* our ``hdl-dumpfromprimary`` fills a fresh hdlserver mirror from the Java primary.

The setups are those of repl-smoke.sh. Each Java server runs about 75 MB; module-scoped fixtures keep two.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from java import HANDLE_JAVA, JAVA_BIN, SERVER_START_TIMEOUT, JavaServer, require_java, run_java
from repl_support import make_mirror, resolved_urls, txnstat_last_id, wait_for
from servers import ServerProcess, free_port, run_cli, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.values import HandleValue

REPL = JAVA_BIN / "hdl-repl"
ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")
HS_ADMIN_LINE = "100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/TEST"


@pytest.fixture(autouse=True)
def _replication_build_present() -> None:
    require_java()
    jars = (HANDLE_JAVA / "lib-repl" / "handle-9.2.0-repl.jar", Path("/usr/share/java/db-je.jar"))
    if not all(jar.is_file() for jar in jars):
        pytest.skip("the Java replication build is missing: run ../shared/handle-java/install.sh --repl")


def set_java_server_config(directory: Path, *lines: str) -> None:
    """Replace hdl-local-server-setup's ``"enable_txn_queue" = "no"`` by ``lines``; let 301 replicate."""
    config = directory / "config.dct"
    text = config.read_text(encoding="utf-8")
    old = '    "enable_txn_queue" = "no"\n'
    assert old in text
    text = text.replace(old, "".join(f"    {line}\n" for line in lines))
    text = text.replace('    "replication_admins" = (\n      "300:0.NA/TEST"\n    )',
                        '    "replication_admins" = (\n      "300:0.NA/TEST"\n      "301:0.NA/TEST"\n    )')
    config.write_text(text, encoding="utf-8")


def setup_java(directory: Path, secret: str) -> int:
    port = free_port()
    run = run_java("hdl-local-server-setup", directory, str(port), "TEST", secret)
    assert run.returncode == 0, run.describe()
    return port


def make_java_mirror(directory: Path, source_siteinfo: Path | None, replication_key: Path, *extra: str) -> int:
    """A Java mirror pulling as 301:0.NA/TEST with ``replication_key``, from the site in ``source_siteinfo``
    (``txnsrcsv.json``) or, when None, from what the ``extra`` server_config lines name."""
    port = setup_java(directory, "mirror-secret")
    siteinfo = directory / "siteinfo.json"
    siteinfo.write_text(siteinfo.read_text(encoding="utf-8").replace('"primarySite": true', '"primarySite": false'),
                        encoding="utf-8")
    if source_siteinfo is not None:
        (directory / "txnsrcsv.json").write_bytes(source_siteinfo.read_bytes())
    (directory / "replpriv.bin").write_bytes(replication_key.read_bytes())
    set_java_server_config(directory, '"enable_txn_queue" = "yes"',
                           '"replication_authentication" = "privatekey:301:0.NA/TEST"',
                           '"replication_interval" = "500"', *extra)
    return port


def start_java_repl_server(directory: Path, port: int) -> JavaServer:
    log_path = directory / "server.out"
    env = {**os.environ, "JAVA_OPTS": f"-Dnet.handle.configDir={directory / 'client'}"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(REPL), "server", str(directory)], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
    server = JavaServer(directory, port, process, log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while "Starting TCP request handlers" not in server.log():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"the Java replication server did not start:\n{server.log()}")
        time.sleep(0.1)
    return server


def java_resolves(client_dir: Path, handle: str, text: str) -> bool:
    out = run_java("hdl-qresolver", handle, config_dir=client_dir, timeout=30).output
    return text in out


def java_batch(client_dir: Path, work: Path, name: str, body: str) -> str:
    batch = work / f"{name}.txt"
    log = work / f"{name}.log"
    batch.write_text(f"AUTHENTICATE SECKEY:300:0.NA/TEST\nsecret\n\n{body}\n", encoding="utf-8")
    run = run_java("hdl-genericbatch", batch, log, config_dir=client_dir)
    assert run.returncode == 0, run.describe()
    return log.read_text(encoding="utf-8")


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


# ---------------------------------------------------------------------------------------------------
# hdlserver primary, Java mirrors


@pytest.fixture(scope="module")
def our_primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("repl-ours") / "primary"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def java_mirror(tmp_path_factory: pytest.TempPathFactory, our_primary: ServerProcess) -> Iterator[JavaServer]:
    directory = tmp_path_factory.mktemp("repl-java-mirror") / "mirror"
    port = make_java_mirror(directory, our_primary.directory / "siteinfo.json", our_primary.directory / "admpriv.bin")
    server = start_java_repl_server(directory, port)
    yield server
    server.stop()


def newest_txn_id(server_dir: Path) -> int:
    with open_store(server_dir, case_sensitive=False, readonly=True) as store:
        return store.last_txn_id()


def test_java_mirror_replicates_from_hdlserver(our_primary: ServerProcess, java_mirror: JavaServer) -> None:
    with AdminClient(our_primary.address, ADMIN) as admin:
        admin.create_handle("TEST/j1", [url("http://example.org/j1")])
        admin.create_handle("TEST/j2", [url("http://example.org/j2")])
        admin.add_values("TEST/j1", [HandleValue(2, b"EMAIL", b"j1@example.org")])
        admin.modify_values("TEST/j2", [url("http://example.org/j2-modified")])
    newest = newest_txn_id(our_primary.directory)
    wait_for(lambda: txnstat_last_id(java_mirror.directory) == newest, 30, "the Java mirror's txnstat.dct")
    client = java_mirror.client_dir
    assert java_resolves(client, "TEST/j1", "j1@example.org")
    assert java_resolves(client, "TEST/j2", "j2-modified")
    with AdminClient(our_primary.address, ADMIN) as admin:
        admin.delete_handle("TEST/j2")
    wait_for(lambda: txnstat_last_id(java_mirror.directory) == newest + 1, 30, "the delete on the Java mirror")
    assert java_resolves(client, "TEST/j2", "HANDLE NOT FOUND")
    assert (java_mirror.directory / "txns" / "others" / "0%3Asources").is_dir()


def test_java_dumpfromprimary_against_hdlserver(tmp_path: Path, our_primary: ServerProcess) -> None:
    with AdminClient(our_primary.address, ADMIN) as admin:
        admin.create_handle("TEST/dumped", [url("http://example.org/dumped")])
    directory = tmp_path / "fresh"
    make_java_mirror(directory, our_primary.directory / "siteinfo.json", our_primary.directory / "admpriv.bin")
    run = run_java("hdl-repl", "dumpfromprimary", directory, config_dir=directory / "client", timeout=90)
    assert "REDUMP FINISHED" in run.output, run.describe()
    assert "---> TEST/DUMPED" in (directory / "logs" / "error.log").read_text(encoding="utf-8")
    assert txnstat_last_id(directory) == newest_txn_id(our_primary.directory)


# ---------------------------------------------------------------------------------------------------
# Java primary, hdlserver mirrors


@pytest.fixture(scope="module")
def java_primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaServer]:
    directory = tmp_path_factory.mktemp("repl-java") / "primary"
    port = setup_java(directory, "secret")
    set_java_server_config(directory, '"enable_txn_queue" = "yes"')
    server = start_java_repl_server(directory, port)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def our_mirror(tmp_path_factory: pytest.TempPathFactory, java_primary: JavaServer) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("repl-our-mirror") / "mirror"
    port = make_mirror(directory, java_primary.siteinfo, java_primary.directory / "admpriv.bin")
    server = start_server(directory, port)
    yield server
    server.stop()


def test_hdlserver_mirror_replicates_from_java(tmp_path: Path, java_primary: JavaServer,
                                               our_mirror: ServerProcess) -> None:
    log = java_batch(java_primary.client_dir, tmp_path, "create", f"""CREATE TEST/o1
{HS_ADMIN_LINE}
1 URL 86400 1110 UTF8 http://example.org/o1

CREATE TEST/o2
{HS_ADMIN_LINE}
1 URL 86400 1110 UTF8 http://example.org/o2

MODIFY TEST/o1
1 URL 86400 1110 UTF8 http://example.org/o1-modified

DELETE TEST/o2
""")
    assert log.count("==>SUCCESS[") == 4, log
    assert wait_for(lambda: resolved_urls(our_mirror.address, "TEST/o1") == [b"http://example.org/o1-modified"],
                    what="TEST/o1 modified on our mirror")
    assert wait_for(lambda: txnstat_last_id(our_mirror.directory) == 4, what="txnstat.dct at id 4")
    assert resolved_urls(our_mirror.address, "TEST/o2") is None


def test_our_dumpfromprimary_against_java(tmp_path: Path, java_primary: JavaServer) -> None:
    log = java_batch(java_primary.client_dir, tmp_path, "create", f"""CREATE TEST/for-dump
{HS_ADMIN_LINE}
1 URL 86400 1110 UTF8 http://example.org/for-dump
""")
    assert "==>SUCCESS[" in log, log
    directory = tmp_path / "fresh"
    port = make_mirror(directory, java_primary.siteinfo, java_primary.directory / "admpriv.bin")
    done = run_cli("hdlserver.cli.dumpfromprimary", directory)
    assert "dump finished" in done.stdout, done.stdout + done.stderr
    server = start_server(directory, port)
    try:
        assert resolved_urls(server.address, "TEST/for-dump") == [b"http://example.org/for-dump"]
        assert txnstat_last_id(directory) is not None and txnstat_last_id(directory) >= 1
    finally:
        server.stop()

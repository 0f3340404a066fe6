"""Multi-primary: two hdlserver primaries that each pull the other's transactions (replication.md 1, 8).

Both site records carry the multi-primary bit, so each server runs the pull loop beside its own
transaction queue and keeps replication dates: changes made on either reach the other, nothing loops
back, and when both edit a handle before seeing the other's edit, the later edit wins on both (the date
adjustment of 8.2 and the conflict rule of 8.1). Real processes, sockets, LMDB and keys on loopback.

The second primary joins the way an operator adds one: ``hdl-dumpfromprimary`` from the first, so both
hold the same prefix handle (and so the same replication identity, 301:0.NA/TEST with a's key).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from repl_support import add_server_config, resolved_urls, set_multi_primary, wait_for
from servers import ServerProcess, run_cli, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.replication.mirror import ReplicationState
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


def start_pair(root: Path, a_interval_ms: int = 300, b_interval_ms: int = 300
               ) -> tuple[ServerProcess, ServerProcess]:
    """Two running primaries whose site records carry the multi-primary bit, each pulling from the other;
    b was filled with a dump of a before its first start."""
    made = []
    for name in ("a", "b"):
        directory = root / name
        port = setup_server_dir(directory)
        set_multi_primary(directory / "siteinfo.json")
        made.append((directory, port))
    (a_dir, a_port), (b_dir, b_port) = made
    pull_from(a_dir, b_dir, a_dir / "admpriv.bin", a_interval_ms)
    pull_from(b_dir, a_dir, a_dir / "admpriv.bin", b_interval_ms)
    a = start_server(a_dir, a_port)
    try:
        run_cli("hdlserver.cli.dumpfromprimary", b_dir, "--retry-wait", "0")
        return a, start_server(b_dir, b_port)
    except BaseException:
        a.stop()
        raise


def pull_from(directory: Path, source: Path, key: Path, interval_ms: int) -> None:
    """``directory`` pulls from ``source``, authenticating as 301:0.NA/TEST with ``key``."""
    shutil.copyfile(source / "siteinfo.json", directory / "txnsrcsv.json")
    shutil.copyfile(key, directory / "replpriv.bin")
    add_server_config(directory, '"replication_authentication" = "privatekey:301:0.NA/TEST"',
                      f'"replication_interval" = "{interval_ms}"')


def own_log(directory: Path) -> list[bytes]:
    with open_store(directory, case_sensitive=False, readonly=True) as store:
        return [t.handle for t in store.transactions_since(0)]


def pulled_up_to(directory: Path, source: Path) -> bool:
    state = ReplicationState.load(directory / "txnstat.dct")
    with open_store(source, case_sensitive=False, readonly=True) as store:
        return state.queue("sources", 0).last_txn_id == store.last_txn_id()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a, b = start_pair(tmp_path_factory.mktemp("multi-primary"))
    yield a, b
    b.stop()
    a.stop()


def test_changes_on_either_primary_reach_the_other_and_do_not_loop(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    with AdminClient(a.address, ADMIN) as admin:
        admin.create_handle("TEST/from-a", [url("http://example.org/a")])
    with AdminClient(b.address, ADMIN) as admin:
        admin.create_handle("TEST/from-b", [url("http://example.org/b")])
    wait_for(lambda: resolved_urls(b.address, "TEST/from-a") == [b"http://example.org/a"], what="a's create on b")
    wait_for(lambda: resolved_urls(a.address, "TEST/from-b") == [b"http://example.org/b"], what="b's create on a")
    with AdminClient(b.address, ADMIN) as admin:
        admin.modify_values("TEST/from-a", [url("http://example.org/a-changed-on-b")])
    with AdminClient(a.address, ADMIN) as admin:
        admin.delete_handle("TEST/from-b")
    wait_for(lambda: resolved_urls(a.address, "TEST/from-a") == [b"http://example.org/a-changed-on-b"],
             what="b's change on a")
    wait_for(lambda: resolved_urls(b.address, "TEST/from-b") is None, what="a's delete on b")
    wait_for(lambda: pulled_up_to(a.directory, b.directory) and pulled_up_to(b.directory, a.directory),
             what="both caught up")
    # each log holds only the changes made on that server: what was pulled is not logged again
    assert own_log(a.directory)[-2:] == [b"TEST/FROM-A", b"TEST/FROM-B"]
    assert own_log(b.directory) == [b"TEST/FROM-B", b"TEST/FROM-A"]


def test_the_later_of_two_unseen_edits_wins_on_both(tmp_path: Path) -> None:
    """b pulls only when it starts, so both primaries edit the handle before seeing the other's edit."""
    a, b = start_pair(tmp_path, b_interval_ms=600_000)  # b pulls when it starts, then not again here
    a_dir, b_dir = a.directory, b.directory
    try:
        with AdminClient(a.address, ADMIN) as admin:
            admin.create_handle("TEST/both", [url("http://example.org/first")])
        b.stop()
        b = start_server(b_dir, b.port)  # its first round pulls the create
        wait_for(lambda: resolved_urls(b.address, "TEST/both") == [b"http://example.org/first"], what="the create")
        with AdminClient(a.address, ADMIN) as admin:
            admin.modify_values("TEST/both", [url("http://example.org/earlier-on-a")])
        with AdminClient(b.address, ADMIN) as admin:
            admin.modify_values("TEST/both", [url("http://example.org/later-on-b")])
        wait_for(lambda: resolved_urls(a.address, "TEST/both") == [b"http://example.org/later-on-b"],
                 what="b's later edit on a")
        b.stop()
        b = start_server(b_dir, b.port)  # pulls a's earlier edit now: it must lose
        wait_for(lambda: pulled_up_to(b_dir, a_dir), what="b pulling a's edit")
        assert resolved_urls(b.address, "TEST/both") == [b"http://example.org/later-on-b"]
        assert resolved_urls(a.address, "TEST/both") == [b"http://example.org/later-on-b"]
    finally:
        b.stop()
        a.stop()
    with open_store(a_dir, case_sensitive=False, readonly=True) as store:
        (date_on_a,) = [d for h, d, _ in store.replication_dates(False) if h == b"TEST/BOTH"]
    with open_store(b_dir, case_sensitive=False, readonly=True) as store:
        (date_on_b,) = [d for h, d, _ in store.replication_dates(False) if h == b"TEST/BOTH"]
    assert date_on_a == date_on_b  # both hold b's edit, dated as b logged it

"""Multi-primary with the Java Handle.Net 9.2 replication build: an hdlserver primary and a Java primary,
both with the multi-primary bit, each pulling the other's transactions (replication.md 1, 8, 8.1, 8.2).

The Java primary pulls only when it starts (a long ``replication_interval``), so the tests choose when
it sees hdlserver's changes; hdlserver pulls the Java primary every 300 ms. Both pull with the identity
301:0.NA/TEST and hdlserver's key: hdlserver's setup logs its prefix handle, so the Java primary's
first pull gives it the same 0.NA/TEST.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from java import JavaServer
from repl_support import add_server_config, resolved_urls, set_multi_primary, txnstat_last_id, wait_for
from servers import ServerProcess, setup_server_dir, start_server
from test_repl_java import (
    HS_ADMIN_LINE,
    _replication_build_present,  # noqa: F401 -- the autouse skip when the replication build is missing
    java_batch,
    java_resolves,
    newest_txn_id,
    set_java_server_config,
    setup_java,
    start_java_repl_server,
)

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


class Pair:
    """The two primaries; ``restart_java`` makes the Java one pull (it pulls once, when it starts)."""

    def __init__(self, ours: ServerProcess, java: JavaServer) -> None:
        self.ours = ours
        self.java = java

    def restart_java(self) -> None:
        self.java.stop()
        self.java = start_java_repl_server(self.java.directory, self.java.port)

    def java_caught_up(self) -> bool:
        return txnstat_last_id(self.java.directory) == newest_txn_id(self.ours.directory)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("multi-primary-java")
    ours_dir, java_dir = root / "ours", root / "java"
    ours_port = setup_server_dir(ours_dir)
    java_port = setup_java(java_dir, "secret")
    set_multi_primary(ours_dir / "siteinfo.json")
    set_multi_primary(java_dir / "siteinfo.json")
    shutil.copyfile(java_dir / "siteinfo.json", ours_dir / "txnsrcsv.json")
    shutil.copyfile(ours_dir / "admpriv.bin", ours_dir / "replpriv.bin")
    add_server_config(ours_dir, '"replication_authentication" = "privatekey:301:0.NA/TEST"',
                      '"replication_interval" = "300"')
    shutil.copyfile(ours_dir / "siteinfo.json", java_dir / "txnsrcsv.json")
    shutil.copyfile(ours_dir / "admpriv.bin", java_dir / "replpriv.bin")
    set_java_server_config(java_dir, '"enable_txn_queue" = "yes"',
                           '"replication_authentication" = "privatekey:301:0.NA/TEST"',
                           '"replication_interval" = "600000"')
    ours = start_server(ours_dir, ours_port)
    try:
        both = Pair(ours, start_java_repl_server(java_dir, java_port))
    except BaseException:
        ours.stop()
        raise
    yield both
    both.java.stop()
    both.ours.stop()


def test_changes_on_either_primary_reach_the_other(tmp_path: Path, pair: Pair) -> None:
    with AdminClient(pair.ours.address, ADMIN) as admin:
        admin.create_handle("TEST/made-here", [url("http://example.org/made-here")])
    log = java_batch(pair.java.client_dir, tmp_path, "create", f"""CREATE TEST/made-in-java
{HS_ADMIN_LINE}
1 URL 86400 1110 UTF8 http://example.org/made-in-java
""")
    assert "==>SUCCESS[" in log, log
    wait_for(lambda: resolved_urls(pair.ours.address, "TEST/made-in-java") == [b"http://example.org/made-in-java"],
             30, "the Java primary's create on ours")
    pair.restart_java()
    wait_for(pair.java_caught_up, 30, "the Java primary pulling ours")
    assert java_resolves(pair.java.client_dir, "TEST/made-here", "http://example.org/made-here")
    log = java_batch(pair.java.client_dir, tmp_path, "modify", """MODIFY TEST/made-here
1 URL 86400 1110 UTF8 http://example.org/changed-in-java
""")
    assert "==>SUCCESS[" in log, log
    wait_for(lambda: resolved_urls(pair.ours.address, "TEST/made-here") == [b"http://example.org/changed-in-java"],
             30, "the Java primary's change on ours")
    with AdminClient(pair.ours.address, ADMIN) as admin:
        admin.delete_handle("TEST/made-in-java")
    pair.restart_java()
    wait_for(pair.java_caught_up, 30, "the Java primary pulling the delete")
    assert java_resolves(pair.java.client_dir, "TEST/made-in-java", "HANDLE NOT FOUND")


def test_the_later_of_two_unseen_edits_wins_on_both(tmp_path: Path, pair: Pair) -> None:
    with AdminClient(pair.ours.address, ADMIN) as admin:
        admin.create_handle("TEST/both", [url("http://example.org/first")])
    pair.restart_java()
    wait_for(pair.java_caught_up, 30, "the Java primary pulling the create")
    # hdlserver edits first, Java later; Java does not see hdlserver's edit before its own
    with AdminClient(pair.ours.address, ADMIN) as admin:
        admin.modify_values("TEST/both", [url("http://example.org/earlier-here")])
    log = java_batch(pair.java.client_dir, tmp_path, "modify", """MODIFY TEST/both
1 URL 86400 1110 UTF8 http://example.org/later-in-java
""")
    assert "==>SUCCESS[" in log, log
    wait_for(lambda: resolved_urls(pair.ours.address, "TEST/both") == [b"http://example.org/later-in-java"],
             30, "Java's later edit on ours")
    pair.restart_java()  # now it pulls hdlserver's earlier edit, which must lose there too
    wait_for(pair.java_caught_up, 30, "the Java primary pulling the earlier edit")
    assert java_resolves(pair.java.client_dir, "TEST/both", "later-in-java")
    assert resolved_urls(pair.ours.address, "TEST/both") == [b"http://example.org/later-in-java"]
    # an edit here after pulling Java's is dated after it (date adjustment), so Java takes it
    with AdminClient(pair.ours.address, ADMIN) as admin:
        admin.modify_values("TEST/both", [url("http://example.org/last-here")])
    pair.restart_java()
    wait_for(pair.java_caught_up, 30, "the Java primary pulling the last edit")
    assert java_resolves(pair.java.client_dir, "TEST/both", "last-here")

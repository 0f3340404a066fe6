"""Proxied mirroring with the Java 9.2 replication build: the all-sources form of RETRIEVE_TXN_LOG
(replication.md 4.1, 6.2) both ways.

* Java primary -> Java mirror -> hdlserver mirror pulling other transactions: our request and reader
  against Java's all-sources answer from the queue copy it keeps in ``txns/others``;
* hdlserver primary -> hdlserver mirror -> Java mirror pulling other transactions: Java's request and
  reader against our all-sources answer from the queue copy we keep.
"""

from __future__ import annotations

from pathlib import Path

from java import JavaServer
from repl_support import make_mirror, resolved_urls, txnstat_last_id, wait_for
from servers import ServerProcess, setup_server_dir, start_server
from test_repl_java import (
    HS_ADMIN_LINE,
    _replication_build_present,  # noqa: F401 -- the autouse skip when the replication build is missing
    java_batch,
    java_resolves,
    make_java_mirror,
    set_java_server_config,
    setup_java,
    start_java_repl_server,
)

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.replication.mirror import ReplicationState
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def test_our_mirror_pulls_a_java_primarys_changes_through_a_java_mirror(tmp_path: Path) -> None:
    started: list[JavaServer | ServerProcess] = []
    try:
        primary_dir = tmp_path / "java-primary"
        port = setup_java(primary_dir, "secret")
        set_java_server_config(primary_dir, '"enable_txn_queue" = "yes"')
        primary = start_java_repl_server(primary_dir, port)
        started.append(primary)
        middle_dir = tmp_path / "java-mirror"
        port = make_java_mirror(middle_dir, primary.siteinfo, primary_dir / "admpriv.bin")
        middle = start_java_repl_server(middle_dir, port)
        started.append(middle)
        # Java's setup does not log the prefix handle: the Java mirror keeps its own 0.NA/TEST and key
        port = make_mirror(tmp_path / "ours", middle.siteinfo, middle_dir / "admpriv.bin", interval_ms=300,
                           extra=('"replication_pull_other_transactions" = "yes"',))
        ours = start_server(tmp_path / "ours", port)
        started.append(ours)
        log = java_batch(primary.client_dir, tmp_path, "create", f"""CREATE TEST/via-java-mirror
{HS_ADMIN_LINE}
1 URL 86400 1110 UTF8 http://example.org/first

MODIFY TEST/via-java-mirror
1 URL 86400 1110 UTF8 http://example.org/changed
""")
        assert log.count("==>SUCCESS[") == 2, log
        wait_for(lambda: resolved_urls(ours.address, "TEST/via-java-mirror") == [b"http://example.org/changed"],
                 45, "the Java primary's change on our mirror of the Java mirror")
        # under the queue name the Java mirror gave the primary's queue ("0:sources"), at its last id
        wait_for(lambda: ReplicationState.load(tmp_path / "ours" / "txnstat.dct").queue("sources", 0).last_txn_id == 2,
                 30, "txnstat.dct at the Java primary's id 2")
    finally:
        for server in reversed(started):
            server.stop()


def test_a_java_mirror_pulls_our_primarys_changes_through_our_mirror(tmp_path: Path) -> None:
    started: list[JavaServer | ServerProcess] = []
    try:
        port = setup_server_dir(tmp_path / "primary")
        primary = start_server(tmp_path / "primary", port)
        started.append(primary)
        key = primary.directory / "admpriv.bin"  # our mirror holds our primary's 0.NA/TEST once it pulled it
        port = make_mirror(tmp_path / "middle", primary.directory / "siteinfo.json", key, interval_ms=300)
        middle = start_server(tmp_path / "middle", port)
        started.append(middle)
        java_dir = tmp_path / "java-mirror"
        port = make_java_mirror(java_dir, middle.directory / "siteinfo.json", key,
                                '"replication_pull_other_transactions" = "yes"')
        java = start_java_repl_server(java_dir, port)
        started.append(java)
        with AdminClient(primary.address, ADMIN) as admin:
            admin.create_handle("TEST/via-our-mirror", [HandleValue(1, b"URL", b"http://example.org/first")])
            admin.modify_values("TEST/via-our-mirror", [HandleValue(1, b"URL", b"http://example.org/changed")])
        wait_for(lambda: java_resolves(java.client_dir, "TEST/via-our-mirror", "http://example.org/changed"), 45,
                 "our primary's change on the Java mirror of our mirror")
        wait_for(lambda: txnstat_last_id(java_dir) == txnstat_last_id(middle.directory), 30,
                 "the Java mirror's txnstat.dct at our mirror's position")
    finally:
        for server in reversed(started):
            server.stop()

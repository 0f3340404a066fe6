"""Proxied mirroring between hdlserver servers: primary -> mirror -> mirror pulling other transactions.

The middle mirror keeps a copy of the queue it pulls (``replication_keep_other_transactions``, the
default); the last one (``replication_pull_other_transactions = yes``) asks it in the all-sources form
and gets the primary's transactions from it, under the primary's queue name. Real processes on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from repl_support import make_mirror, resolved_urls, wait_for
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.replication.mirror import ReplicationState
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess, ServerProcess]]:
    root = tmp_path_factory.mktemp("proxied")
    started: list[ServerProcess] = []
    try:
        port = setup_server_dir(root / "primary")
        primary = start_server(root / "primary", port)
        started.append(primary)
        key = primary.directory / "admpriv.bin"  # the mirrors hold the primary's 0.NA/TEST once they pulled it
        port = make_mirror(root / "middle", primary.directory / "siteinfo.json", key, interval_ms=300)
        middle = start_server(root / "middle", port)
        started.append(middle)
        port = make_mirror(root / "last", middle.directory / "siteinfo.json", key, interval_ms=300,
                           extra=('"replication_pull_other_transactions" = "yes"',))
        last = start_server(root / "last", port)
        started.append(last)
        yield primary, middle, last
    finally:
        for server in reversed(started):
            server.stop()


def test_the_primarys_changes_reach_the_mirror_of_a_mirror(
        chain: tuple[ServerProcess, ServerProcess, ServerProcess]) -> None:
    primary, middle, last = chain
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/proxied", [url("http://example.org/first")])
        admin.modify_values("TEST/proxied", [url("http://example.org/changed")])
        admin.create_handle("TEST/gone", [url("http://example.org/gone")])
        admin.delete_handle("TEST/gone")
    wait_for(lambda: resolved_urls(last.address, "TEST/proxied") == [b"http://example.org/changed"], 30,
             "the change on the last mirror")
    wait_for(lambda: resolved_urls(last.address, "TEST/gone") is None, 30, "the delete on the last mirror")
    # the last mirror keeps the primary's queue as the middle one named it, with the same position
    def same_position() -> bool:  # txnstat.dct is saved just after a round's handles resolve
        middle_state = ReplicationState.load(middle.directory / "txnstat.dct").queue("sources", 0)
        last_state = ReplicationState.load(last.directory / "txnstat.dct").queue("sources", 0)
        return last_state.last_txn_id == middle_state.last_txn_id > 0

    wait_for(same_position, 30, "the last mirror at the middle one's position")


def test_a_single_source_pull_from_a_mirror_is_refused_as_java_refuses_it(
        tmp_path, chain: tuple[ServerProcess, ServerProcess, ServerProcess]) -> None:  # type: ignore[no-untyped-def]
    primary, middle, _last = chain
    port = make_mirror(tmp_path / "plain", middle.directory / "siteinfo.json", primary.directory / "admpriv.bin",
                       interval_ms=300)
    plain = start_server(tmp_path / "plain", port)
    try:
        wait_for(lambda: "Not a primary server" in plain.error_log(), 20, "the refusal in the log")
    finally:
        plain.stop()

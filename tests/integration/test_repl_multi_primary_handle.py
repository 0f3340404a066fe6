"""Multi-primary the way production prefixes are set up: the primaries are HS_SITE values of the prefix
handle (``replication_sites_handle = 0.NA/TEST``), site a at value index 1 and site b at index 2.

Each primary finds its own site among the values (same address and port), takes its index as its
replication priority and own name, and pulls the other: queues ``0:2:0.NA/TEST`` on a and
``0:1:0.NA/TEST`` on b. Equal dates are broken by the higher index (replication.md 8.1), so b's edit
wins when both carry the same date. Real processes, sockets, LMDB and keys on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from repl_support import SITES_HANDLE as SITES
from repl_support import resolved_urls, start_primaries_of_sites_handle, wait_for
from servers import ServerProcess

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.replication.mirror import ReplicationState
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a, b = start_primaries_of_sites_handle(tmp_path_factory.mktemp("multi-primary-handle"))
    yield a, b
    b.stop()
    a.stop()


def test_each_primary_pulls_the_other_site_named_by_its_value_index(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    with AdminClient(a.address, ADMIN) as admin:
        admin.create_handle("TEST/on-a", [url("http://example.org/on-a")])
    with AdminClient(b.address, ADMIN) as admin:
        admin.create_handle("TEST/on-b", [url("http://example.org/on-b")])
    wait_for(lambda: resolved_urls(b.address, "TEST/on-a") == [b"http://example.org/on-a"], what="a's create on b")
    wait_for(lambda: resolved_urls(a.address, "TEST/on-b") == [b"http://example.org/on-b"], what="b's create on a")
    def both_recorded() -> bool:  # txnstat.dct is saved just after a round's handles resolve
        on_a = ReplicationState.load(a.directory / "txnstat.dct")
        on_b = ReplicationState.load(b.directory / "txnstat.dct")
        named = set(on_a.sites) == {f"2:{SITES}"} and set(on_b.sites) == {f"1:{SITES}"}
        return named and on_b.queue(f"1:{SITES}", 0).last_txn_id > 0 and on_a.queue(f"2:{SITES}", 0).last_txn_id > 0

    wait_for(both_recorded, what="both queues in txnstat.dct")


def test_changes_are_recorded_with_the_own_value_index_as_priority(pair: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = pair
    with AdminClient(b.address, ADMIN) as admin:
        admin.create_handle("TEST/priority", [url("http://example.org/p")])
    wait_for(lambda: resolved_urls(a.address, "TEST/priority") == [b"http://example.org/p"], what="the create on a")

    def priorities(directory: Path) -> list[int]:
        with open_store(directory, case_sensitive=False, readonly=True) as store:
            return [p for h, _, p in store.replication_dates(False) if h == b"TEST/PRIORITY"]

    assert priorities(b.directory) == [2]  # made on b (value index 2)
    assert priorities(a.directory) == [2]  # applied on a from queue 0:2:0.NA/TEST

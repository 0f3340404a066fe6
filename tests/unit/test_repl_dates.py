"""Replication dates: the conflict rule for pulled changes, the date adjustment of changes made here, the
date records of dumps (sent, resumed and received), and ``read_only_txn_queue``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from stream_support import unsigned_reader

from hdlserver.errors import StorageError
from hdlserver.replication import streams
from hdlserver.replication.dump import DumpProgress, receive
from hdlserver.replication.source import dump_segments
from hdlserver.replication.streams import read_dump_stream
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_DELETE_HANDLE, TXN_HOME_NA, TXN_MODIFY_HANDLE
from hdlserver.store.lmdb_store import LmdbStore, ReplicatedTxn, open_store
from hdlserver.store.replication_dates import adjusted_date, is_more_recent
from hdlserver.wire.bodies import DumpHandlesRequest
from hdlserver.wire.values import HandleValue

NOW_MS = 1_800_000_000_000


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


class Clock:
    def __init__(self) -> None:
        self.ms = NOW_MS

    def __call__(self) -> float:
        return self.ms / 1000.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> LmdbStore:
    s = open_store(tmp_path, case_sensitive=False, partitions=3, sync=False, clock=clock)
    yield s  # type: ignore[misc]
    s.close()


def pulled(txn_id: int, date_ms: int, handle: bytes = b"TEST/A", action: int = TXN_MODIFY_HANDLE,
           text: str = "x") -> ReplicatedTxn:
    values = (url(text),) if action in (TXN_ADD_HANDLE, TXN_MODIFY_HANDLE) else None
    return ReplicatedTxn(txn_id, date_ms, action, handle, values)


def test_the_conflict_rule_prefers_the_newer_date_then_the_higher_priority() -> None:
    assert is_more_recent(None, 5, 0)
    assert is_more_recent((4, 9), 5, 0)
    assert not is_more_recent((6, 0), 5, 9)
    assert is_more_recent((5, 1), 5, 1) and is_more_recent((5, 1), 5, 2)
    assert not is_more_recent((5, 2), 5, 1)


def test_a_change_made_here_is_dated_after_the_stored_date() -> None:
    assert adjusted_date(None, 100) == 100
    assert adjusted_date((99, 3), 100) == 100
    assert adjusted_date((100, 3), 100) == 101
    assert adjusted_date((500, 3), 100) == 501


def test_without_dates_pulled_changes_apply_whatever_their_dates(store: LmdbStore) -> None:
    assert store.apply_replicated(b"0:sources", [pulled(1, 2000, text="new")]) == 1
    assert store.apply_replicated(b"0:sources", [pulled(2, 1000, text="old")]) == 1
    assert store.get_values(b"TEST/A") == (url("old"),)
    assert list(store.replication_dates(False)) == []


def test_with_dates_an_older_pulled_change_loses(store: LmdbStore) -> None:
    store.track_replication_dates(1)
    assert store.apply_replicated(b"0:2:0.NA/TEST", [pulled(1, 2000, text="new")], priority=2) == 1
    assert store.apply_replicated(b"0:2:0.NA/TEST", [pulled(2, 1000, text="old")], priority=2) == 0
    assert store.get_values(b"TEST/A") == (url("new"),)
    assert list(store.replication_dates(False)) == [(b"TEST/A", 2000, 2)]
    # the losing transaction still moved the queue's mark: it is not asked for again
    assert store.replication_mark(b"0:2:0.NA/TEST")[0] == 2


def test_with_equal_dates_the_higher_priority_wins(store: LmdbStore) -> None:
    store.track_replication_dates(0)
    store.apply_replicated(b"0:3:0.NA/TEST", [pulled(1, 2000, text="from 3")], priority=3)
    assert store.apply_replicated(b"0:2:0.NA/TEST", [pulled(1, 2000, text="from 2")], priority=2) == 0
    assert store.apply_replicated(b"0:4:0.NA/TEST", [pulled(1, 2000, text="from 4")], priority=4) == 1
    assert store.get_values(b"TEST/A") == (url("from 4"),)


def test_a_pulled_delete_older_than_a_local_edit_does_not_delete(store: LmdbStore, clock: Clock) -> None:
    store.track_replication_dates(1)
    store.create_handle(b"TEST/A", [url("here")])
    assert store.apply_replicated(b"0:2:0.NA/TEST", [pulled(1, NOW_MS - 5, action=TXN_DELETE_HANDLE)],
                                  priority=2) == 0
    assert store.get_values(b"TEST/A") == (url("here"),)


def test_an_edit_here_after_a_pulled_change_from_the_future_is_dated_after_it(store: LmdbStore) -> None:
    store.track_replication_dates(1)
    ahead = NOW_MS + 60_000  # the other primary's clock is a minute ahead
    store.apply_replicated(b"0:2:0.NA/TEST", [pulled(1, ahead, action=TXN_ADD_HANDLE, text="there")], priority=2)
    store.replace_values(b"TEST/A", [url("here")])
    (txn,) = store.transactions_since(0)
    assert txn.date_ms == ahead + 1
    assert list(store.replication_dates(False)) == [(b"TEST/A", ahead + 1, 1)]
    # ... so the other primary, applying it with the conflict rule, takes it
    assert is_more_recent((ahead, 2), txn.date_ms, 1)


def test_changes_here_record_their_dates_and_prefix_dates_are_separate(store: LmdbStore, clock: Clock) -> None:
    store.track_replication_dates(5)
    store.create_handles([(b"TEST/A", [url("a")]), (b"TEST/B", [url("b")])])
    clock.ms += 10
    store.delete_handle(b"TEST/B")
    store.home_prefix(b"0.NA/TEST")
    assert list(store.replication_dates(False)) == [(b"TEST/A", NOW_MS, 5), (b"TEST/B", NOW_MS + 10, 5)]
    assert list(store.replication_dates(True)) == [(b"0.NA/TEST", NOW_MS + 10, 5)]
    assert [t.date_ms for t in store.transactions_since(0)] == [NOW_MS, NOW_MS, NOW_MS + 10, NOW_MS + 10]
    assert store.apply_replicated(b"0:2:0.NA/TEST", [pulled(1, NOW_MS, b"0.NA/TEST", TXN_HOME_NA)], priority=2) == 0


def test_without_dates_changes_here_are_dated_now(store: LmdbStore) -> None:
    store.create_handle(b"TEST/A", [url("a")])
    assert [t.date_ms for t in store.transactions_since(0)] == [NOW_MS]
    assert list(store.replication_dates(False)) == []


def test_a_read_only_transaction_queue_refuses_logged_changes_and_changes_nothing(store: LmdbStore) -> None:
    store.create_handle(b"TEST/A", [url("a")])
    store.refuse_txn_log_writes()
    with pytest.raises(StorageError, match="read_only_txn_queue"):
        store.replace_values(b"TEST/A", [url("b")])
    with pytest.raises(StorageError, match="read_only_txn_queue"):
        store.create_handle(b"TEST/B", [url("b")])
    with pytest.raises(StorageError, match="read_only_txn_queue"):
        store.home_prefix(b"0.NA/TEST")
    assert store.get_values(b"TEST/A") == (url("a"),)
    assert not store.exists(b"TEST/B") and not store.is_homed(b"0.NA/TEST")
    assert store.last_txn_id() == 1
    # pulled and unlogged writes are not logged here: they still work
    assert store.apply_replicated(b"0:sources", [pulled(1, NOW_MS, text="pulled")]) == 1
    store.create_handle(b"TEST/C", [url("c")], log=False)
    assert store.exists(b"TEST/C")


def _dump(store: LmdbStore, request: DumpHandlesRequest) -> list[object]:
    state = SimpleNamespace(store=store, mirror=None, primary=True)
    return list(read_dump_stream(unsigned_reader(dump_segments(state, request, NOW_MS), streams.DUMP_DONE)))


def _dated_store(store: LmdbStore) -> None:
    store.track_replication_dates(1)
    handles = [f"TEST/H{i:02d}".encode() for i in range(12)]
    store.create_handles([(h, [url(h.decode())]) for h in handles])
    store.home_prefix(b"0.NA/TEST")
    store.home_prefix(b"0.NA/OTHER")


def test_a_dump_carries_the_dates_in_key_order_across_partitions(store: LmdbStore) -> None:
    _dated_store(store)
    events = _dump(store, DumpHandlesRequest(0, 1, 0))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["DumpThisServerInfo"] + ["DumpDate"] * 14 + ["DumpHandle"] * 12 + ["DumpHomedPrefix"] * 2 + [
        "DumpDone"]
    handle_dates = [e.handle for e in events if isinstance(e, streams.DumpDate) and not e.prefix]
    assert handle_dates == sorted(handle_dates) and len(handle_dates) == 12
    prefix_dates = [(e.handle, e.date_ms, e.priority) for e in events if isinstance(e, streams.DumpDate) and e.prefix]
    assert prefix_dates == [(b"0.NA/OTHER", NOW_MS, 1), (b"0.NA/TEST", NOW_MS, 1)]


def test_a_dump_resumed_after_a_date_continues_with_the_rest(store: LmdbStore) -> None:
    _dated_store(store)
    events = _dump(store, DumpHandlesRequest(0, 1, 0, b"TEST/H05", 0))
    dates = [e for e in events if isinstance(e, streams.DumpDate)]
    assert [d.handle for d in dates if not d.prefix] == [f"TEST/H{i:02d}".encode() for i in range(6, 12)]
    assert len([d for d in dates if d.prefix]) == 2
    assert not any(isinstance(e, streams.DumpThisServerInfo) for e in events)
    events = _dump(store, DumpHandlesRequest(0, 1, 0, b"0.NA/OTHER", 1))
    assert [e.handle for e in events if isinstance(e, streams.DumpDate)] == [b"0.NA/TEST"]
    assert len([e for e in events if isinstance(e, streams.DumpHandle)]) == 12


def test_a_received_dump_seeds_the_dates(store: LmdbStore, tmp_path: Path) -> None:
    _dated_store(store)
    events = _dump(store, DumpHandlesRequest(0, 1, 0))
    with open_store(tmp_path / "mirror", case_sensitive=False, partitions=2, sync=False) as mirror:
        progress = DumpProgress()
        assert receive(mirror, iter(events), progress, None)
        assert progress.dates == 14 and progress.handles == 12
        assert list(mirror.replication_dates(False)) == list(store.replication_dates(False))
        assert list(mirror.replication_dates(True)) == list(store.replication_dates(True))
        # a pulled change older than the dumped state loses once the mirror tracks dates
        mirror.track_replication_dates(0)
        assert mirror.apply_replicated(b"0:sources", [pulled(1, NOW_MS - 1, b"TEST/H01")]) == 0


def test_pruning_also_prunes_the_kept_copies_of_pulled_queues_but_never_a_queues_newest(store: LmdbStore) -> None:
    old, new = NOW_MS - 40 * 86_400_000, NOW_MS
    store.apply_replicated(b"0:a", [pulled(1, old), pulled(2, old), pulled(3, new), pulled(4, old)], keep_copies=True)
    store.apply_replicated(b"0:b", [pulled(7, old, b"TEST/B"), pulled(8, old, b"TEST/B")], keep_copies=True)
    assert store.prune_transactions(NOW_MS - 30 * 86_400_000) == 3
    assert [t.txn_id for t in store.other_queue_transactions(b"0:a")] == [3, 4]  # stops at the first newer one
    assert [t.txn_id for t in store.other_queue_transactions(b"0:b")] == [8]
    assert [t.txn_id for t in store.other_queue_transactions(b"0:a", after=3)] == [4]

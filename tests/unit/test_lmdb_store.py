"""The hash-partitioned LMDB store (hdlserver.store.lmdb_store) on real LMDB directories."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from hdlserver.errors import ProtocolError, StorageError
from hdlserver.store import lmdb_store
from hdlserver.store.base import (
    TXN_ADD_HANDLE,
    TXN_DELETE_HANDLE,
    TXN_HOME_NA,
    TXN_MODIFY_HANDLE,
    TXN_UNHOME_NA,
    HandleExistsError,
    HandleNotFoundError,
    NotPrefixHandleError,
    ReadOnlyStoreError,
    UnstorableHandleError,
)
from hdlserver.store.lmdb_store import LmdbStore, open_store
from hdlserver.store.records import encode_record, txn_key
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.handles import HASH_BY_ALL, site_hash
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, HandleValue, encode_values

URL = HandleValue(1, b"URL", b"http://example.org/", timestamp=1_700_000_000)
EMAIL = HandleValue(2, b"EMAIL", b"a@example.org", timestamp=1_700_000_000)
SECRET = HandleValue(3, b"SECRET", b"s3cret", permissions=PERM_ADMIN_READ | PERM_ADMIN_WRITE)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[LmdbStore]:
    # sync=False keeps the tests fast; durability itself is tested with the default (sync) below.
    s = open_store(tmp_path, case_sensitive=False, sync=False, clock=clock)
    yield s
    s.close()


def raw_keys(partition_dir: Path, db_name: bytes) -> list[bytes]:
    """Keys of one named DB, read with lmdb directly (not through the store)."""
    env = lmdb.open(str(partition_dir), max_dbs=8, readonly=True)
    try:
        db = env.open_db(db_name, create=False)
        with env.begin(db=db) as txn:
            return [key for key, _ in txn.cursor()]
    finally:
        env.close()


def reopen(tmp_path: Path, **kwargs: object) -> LmdbStore:
    options: dict = {"case_sensitive": False, "sync": False, **kwargs}
    return open_store(tmp_path, **options)


# -- CRUD


def test_create_get_replace_delete(store: LmdbStore) -> None:
    assert store.get_record(b"TEST/1") is None
    assert not store.exists(b"TEST/1")
    assert store.create_handle(b"TEST/1", [URL, EMAIL]) is False
    assert store.exists(b"TEST/1")
    assert store.get_values(b"TEST/1") == (URL, EMAIL)
    store.replace_values(b"TEST/1", [EMAIL])
    assert store.get_values(b"TEST/1") == (EMAIL,)
    assert store.delete_handle(b"TEST/1") is True
    assert store.delete_handle(b"TEST/1") is False
    assert store.get_values(b"TEST/1") is None
    assert store.count_handles() == 0


def test_create_existing_without_overwrite_is_rc_101(store: LmdbStore) -> None:
    store.create_handle(b"TEST/1", [URL])
    with pytest.raises(HandleExistsError) as info:
        store.create_handle(b"TEST/1", [EMAIL])
    assert isinstance(info.value, ProtocolError)
    assert info.value.response_code == ResponseCode.HANDLE_ALREADY_EXISTS
    assert info.value.message == ""  # Java sends RC 101 without text
    assert store.get_values(b"TEST/1") == (URL,)


def test_create_with_overwrite_replaces_and_says_so(store: LmdbStore) -> None:
    assert store.create_handle(b"TEST/1", [URL], overwrite=True) is False
    assert store.create_handle(b"TEST/1", [EMAIL], overwrite=True) is True
    assert store.get_values(b"TEST/1") == (EMAIL,)


def test_replace_missing_is_rc_100(store: LmdbStore) -> None:
    with pytest.raises(HandleNotFoundError) as info:
        store.replace_values(b"TEST/none", [URL])
    assert info.value.response_code == ResponseCode.HANDLE_NOT_FOUND
    assert "TEST/none" in str(info.value)
    assert not store.exists(b"TEST/none")


def test_zero_values_handle(store: LmdbStore) -> None:
    store.create_handle(b"TEST/empty", [])
    record = store.get_record(b"TEST/empty")
    assert record is not None
    assert record.encoded_values == b"\x00\x00\x00\x00"
    assert record.all_public_read is True
    assert store.get_values(b"TEST/empty") == ()


def test_stored_bytes_are_encode_values(store: LmdbStore, clock: FakeClock) -> None:
    store.create_handle(b"TEST/1", [URL, SECRET, EMAIL])
    record = store.get_record(b"TEST/1")
    assert record is not None
    assert record.encoded_values == encode_values([URL, SECRET, EMAIL])
    assert record.handle == b"TEST/1"
    assert record.modified == int(clock.now)
    assert record.values() == (URL, SECRET, EMAIL)


def test_all_public_read_flag_follows_the_values(store: LmdbStore) -> None:
    store.create_handle(b"TEST/pub", [URL, EMAIL])
    store.create_handle(b"TEST/mixed", [URL, SECRET])
    assert store.get_record(b"TEST/pub").all_public_read is True  # type: ignore[union-attr]
    assert store.get_record(b"TEST/mixed").all_public_read is False  # type: ignore[union-attr]
    store.replace_values(b"TEST/mixed", [URL])
    assert store.get_record(b"TEST/mixed").all_public_read is True  # type: ignore[union-attr]
    store.replace_values(b"TEST/pub", [SECRET])
    assert store.get_record(b"TEST/pub").all_public_read is False  # type: ignore[union-attr]


def test_modified_time_follows_changes(store: LmdbStore, clock: FakeClock) -> None:
    store.create_handle(b"TEST/1", [URL])
    clock.now += 100
    store.replace_values(b"TEST/1", [EMAIL])
    assert store.get_record(b"TEST/1").modified == int(clock.now)  # type: ignore[union-attr]


def test_unstorable_handles(store: LmdbStore) -> None:
    too_long = b"TEST/" + b"x" * 600
    for bad in (b"", too_long):
        with pytest.raises(UnstorableHandleError) as info:
            store.create_handle(bad, [URL])
        assert info.value.response_code == ResponseCode.INVALID_HANDLE
        assert store.get_record(bad) is None
        assert not store.exists(bad)
        assert store.delete_handle(bad) is False
    assert store.last_txn_id() == 0


# -- case folding


def test_case_insensitive_store_folds_whole_handle(store: LmdbStore) -> None:
    store.create_handle(b"Test/abc", [URL])
    assert store.get_values(b"TEST/ABC") == (URL,)
    assert store.get_record(b"test/Abc").handle == b"TEST/ABC"  # type: ignore[union-attr]
    with pytest.raises(HandleExistsError):
        store.create_handle(b"TEST/ABC", [EMAIL])
    assert list(store.list_handles(b"test")) == [b"TEST/ABC"]
    assert store.delete_handle(b"tEsT/aBc") is True


def test_case_sensitive_store_folds_prefix_only(tmp_path: Path) -> None:
    with open_store(tmp_path, case_sensitive=True, sync=False) as s:
        s.create_handle(b"test/abc", [URL])
        s.create_handle(b"test/ABC", [EMAIL])
        assert s.get_values(b"TEST/abc") == (URL,)
        assert s.get_values(b"Test/ABC") == (EMAIL,)
        assert s.get_values(b"test/Abc") is None
        assert s.get_record(b"test/abc").handle == b"TEST/abc"  # type: ignore[union-attr]
        assert list(s.list_handles(b"test")) == [b"TEST/ABC", b"TEST/abc"]
        assert s.storage_key(b"nosl") == b"NOSL"


def test_bytes_upper_touches_only_ascii(store: LmdbStore) -> None:
    handle = "Test/é-ß".encode()
    store.create_handle(handle, [URL])
    assert store.get_record("TEST/é-ß".encode()).handle == "TEST/é-ß".encode()  # type: ignore[union-attr]


# -- partitions


def test_partition_matches_site_hash(tmp_path: Path) -> None:
    handles = [b"TEST/%d" % i for i in range(60)] + [b"0.NA/TEST", b"OTHER/X"]
    with reopen(tmp_path, partitions=3) as s:
        s.create_handles([(h, [URL]) for h in handles])
        for h in handles:
            assert s.partition_index(h) == site_hash(h, HASH_BY_ALL) % 3
    found = {key: i for i in range(3) for key in raw_keys(tmp_path / "hdldb" / f"part-{i}", b"handles")}
    assert found == {h: site_hash(h, HASH_BY_ALL) % 3 for h in handles}
    assert len(set(found.values())) == 3  # all partitions are used


def test_partition_count_is_recorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reopen(tmp_path, partitions=2).close()
    assert sorted(p.name for p in (tmp_path / "hdldb").iterdir() if p.is_dir()) == ["part-0", "part-1"]
    with caplog.at_level("INFO", logger="hdlserver.store.lmdb_store"), reopen(tmp_path) as s:
        assert s.partitions == 2
    assert "2 partitions" in caplog.text
    with reopen(tmp_path, partitions=2) as s:
        assert s.partitions == 2
    with pytest.raises(StorageError, match="has 2 partitions"):
        reopen(tmp_path, partitions=4)


def test_default_partition_count(store: LmdbStore) -> None:
    assert store.partitions == lmdb_store.DEFAULT_PARTITIONS == 4


def test_single_partition_store(tmp_path: Path) -> None:
    with reopen(tmp_path, partitions=1) as s:
        s.create_handles([(b"A/%d" % i, [URL]) for i in range(5)])
        assert list(s.list_handles(b"A")) == [b"A/%d" % i for i in range(5)]


def test_bad_partition_counts(tmp_path: Path) -> None:
    for bad in (0, lmdb_store.MAX_PARTITIONS + 1):
        with pytest.raises(StorageError, match="between 1 and"):
            reopen(tmp_path, partitions=bad)


def test_missing_partition_is_an_error(tmp_path: Path) -> None:
    reopen(tmp_path, partitions=3).close()
    for name in ("data.mdb", "lock.mdb"):
        (tmp_path / "hdldb" / "part-2" / name).unlink()
    with pytest.raises(StorageError, match="partition 2 of 3 is missing"):
        reopen(tmp_path)


def test_db_directory_option(tmp_path: Path) -> None:
    with reopen(tmp_path, db_directory="elsewhere") as s:
        s.create_handle(b"A/1", [URL])
    assert (tmp_path / "elsewhere" / "part-0" / "data.mdb").is_file()
    assert not (tmp_path / "hdldb").exists()


def test_no_store_readonly_or_without_create(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no handle store"):
        reopen(tmp_path, readonly=True)
    with pytest.raises(StorageError, match="no handle store"):
        reopen(tmp_path, create=False)
    assert not (tmp_path / "hdldb").exists()


# -- homed prefixes


def test_home_and_unhome(store: LmdbStore) -> None:
    store.home_prefix(b"test")
    store.home_prefix(b"0.na/Other")
    assert store.is_homed(b"0.NA/TEST")
    assert store.is_homed(b"TEST")
    assert store.is_homed(b"0.na/test")
    assert not store.is_homed(b"0.NA/NONE")
    assert store.homed_prefixes() == [b"0.NA/OTHER", b"0.NA/TEST"]
    assert not store.exists(b"0.NA/TEST")  # homing does not create the prefix handle
    assert store.unhome_prefix(b"test") is True
    assert store.unhome_prefix(b"0.NA/TEST") is False
    assert store.homed_prefixes() == [b"0.NA/OTHER"]


def test_home_rejects_non_prefix_handles(store: LmdbStore) -> None:
    for bad in (b"1234/abc", b"0.NA/"):
        with pytest.raises(NotPrefixHandleError) as info:
            store.home_prefix(bad)
        assert info.value.response_code == ResponseCode.INVALID_HANDLE
        assert info.value.message == "Handle is not a prefix handle"
    assert not store.is_homed(b"1234/abc")
    assert store.homed_prefixes() == []


# -- listing


def test_list_handles_sorted_across_partitions(store: LmdbStore) -> None:
    names = [b"TEST/%03d" % i for i in range(40)] + [b"TEST/Z", b"TEST/a-b"]
    store.create_handles([(n, [URL]) for n in reversed(names)] + [(b"TESTX/1", [URL]), (b"TES/1", [URL])])
    expected = sorted(n.upper() for n in names)
    assert list(store.list_handles(b"TEST")) == expected
    assert list(store.list_handles(b"0.NA/TEST")) == expected
    assert list(store.list_handles(b"0.na/test")) == expected
    assert list(store.list_handles(b"NONE")) == []
    assert list(store.iter_handles()) == sorted([*expected, b"TESTX/1", b"TES/1"])
    assert [r.handle for r in store.iter_records()] == list(store.iter_handles())


def test_list_derived_prefixes(store: LmdbStore) -> None:
    store.create_handles([(h, [URL]) for h in (b"0.NA/P", b"0.NA/P.A", b"0.NA/p.b", b"0.NA/P.B.C",
                                                  b"0.NA/PX", b"0.NA/Q.A", b"P.A/1")])
    assert list(store.list_handles(b"0.NA/0.NA/P")) == [b"0.NA/P.A", b"0.NA/P.B", b"0.NA/P.B.C"]
    assert list(store.list_handles(b"0.na/0.na/p")) == [b"0.NA/P.A", b"0.NA/P.B", b"0.NA/P.B.C"]
    assert list(store.list_handles(b"0.NA")) == [b"0.NA/P", b"0.NA/P.A", b"0.NA/P.B", b"0.NA/P.B.C",
                                                 b"0.NA/PX", b"0.NA/Q.A"]


def test_list_derived_prefixes_case_sensitive(tmp_path: Path) -> None:
    with open_store(tmp_path, case_sensitive=True, sync=False) as s:
        s.create_handles([(h, [URL]) for h in (b"0.NA/p.a", b"0.NA/P.B", b"0.NA/PX", b"0.NA/q.a")])
        assert list(s.list_handles(b"0.NA/0.NA/p")) == [b"0.NA/P.B", b"0.NA/p.a"]


def test_list_rejects_non_prefix(store: LmdbStore) -> None:
    with pytest.raises(NotPrefixHandleError):
        list(store.list_handles(b"TEST/abc"))


def test_listing_streams_in_short_read_transactions(store: LmdbStore, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    monkeypatch.setattr(lmdb_store, "_SCAN_BATCH", 2)
    names = [b"TEST/%02d" % i for i in range(30)]
    store.create_handles([(n, [URL]) for n in names])
    listing = store.list_handles(b"TEST")
    first = [next(listing) for _ in range(3)]
    # No read transaction stays open between items: a change made now is seen by later batches.
    for part in store._parts:
        assert all(line.split()[-1] == "-" for line in part.env.readers().splitlines()[1:])
    store.delete_handle(b"TEST/29")
    store.create_handle(b"TEST/99", [URL])
    assert first + list(listing) == [*names[:29], b"TEST/99"]


# -- transaction log


def test_every_change_is_logged(store: LmdbStore, clock: FakeClock) -> None:
    store.create_handle(b"Test/1", [URL])
    store.create_handle(b"TEST/1", [EMAIL], overwrite=True)
    store.replace_values(b"test/1", [URL])
    store.create_handle(b"TEST/2", [URL])
    store.delete_handle(b"test/1")
    store.home_prefix(b"test")
    store.unhome_prefix(b"0.NA/TEST")
    log = list(store.transactions_since(0))
    assert [(t.txn_id, t.action, t.handle) for t in log] == [
        (1, TXN_ADD_HANDLE, b"TEST/1"),
        (2, TXN_MODIFY_HANDLE, b"TEST/1"),
        (3, TXN_MODIFY_HANDLE, b"TEST/1"),
        (4, TXN_ADD_HANDLE, b"TEST/2"),
        (5, TXN_DELETE_HANDLE, b"TEST/1"),
        (6, TXN_HOME_NA, b"0.NA/TEST"),
        (7, TXN_UNHOME_NA, b"0.NA/TEST"),
    ]
    assert all(t.date_ms == int(clock.now * 1000) for t in log)
    assert all(t.hash_on_all == site_hash(t.handle, HASH_BY_ALL) for t in log)
    assert store.last_txn_id() == 7
    assert [t.txn_id for t in store.transactions_since(5)] == [6, 7]
    assert list(store.transactions_since(7)) == []


def test_no_change_no_log(store: LmdbStore) -> None:
    store.delete_handle(b"TEST/none")
    store.unhome_prefix(b"NONE")
    with pytest.raises(HandleExistsError):
        store.create_handle(b"TEST/1", [URL])
        store.create_handle(b"TEST/1", [URL])
    with pytest.raises(HandleNotFoundError):
        store.replace_values(b"TEST/none", [URL])
    assert [t.txn_id for t in store.transactions_since(0)] == [1]


def test_log_false_changes_without_logging(store: LmdbStore) -> None:
    store.create_handle(b"TEST/1", [URL], log=False)
    store.replace_values(b"TEST/1", [EMAIL], log=False)
    store.home_prefix(b"TEST", log=False)
    store.create_handles([(b"TEST/2", [URL])], log=False)
    assert store.get_values(b"TEST/1") == (EMAIL,)
    assert store.is_homed(b"TEST")
    assert store.last_txn_id() == 0
    store.delete_handle(b"TEST/1")
    assert [(t.txn_id, t.action) for t in store.transactions_since(0)] == [(1, TXN_DELETE_HANDLE)]


def test_txn_ids_are_global_and_each_record_is_in_its_partition(tmp_path: Path) -> None:
    handles = [b"TEST/%d" % i for i in range(40)]
    with reopen(tmp_path, partitions=4) as s:
        for h in handles[:20]:
            s.create_handle(h, [URL])
        s.create_handles([(h, [URL]) for h in handles[20:]])
        s.home_prefix(b"TEST")
        log = list(s.transactions_since(0))
        assert [t.txn_id for t in log] == list(range(1, 42))
    part_dirs = [tmp_path / "hdldb" / f"part-{i}" for i in range(4)]
    per_partition = {i: [int.from_bytes(k, "big") for k in raw_keys(d, b"txns")]
                     for i, d in enumerate(part_dirs)}
    by_id = {t.txn_id: t for t in log}
    for index, ids in per_partition.items():
        for txn_id in ids:
            t = by_id[txn_id]
            expected = 0 if t.action == TXN_HOME_NA else site_hash(t.handle, HASH_BY_ALL) % 4
            assert index == expected
    assert sum(len(ids) for ids in per_partition.values()) == 41


def test_txn_ids_continue_after_reopen(tmp_path: Path) -> None:
    with reopen(tmp_path) as s:
        for i in range(5):
            s.create_handle(b"A/%d" % i, [URL])
    with reopen(tmp_path) as s:
        assert s.last_txn_id() == 5
        s.delete_handle(b"A/0")
        assert [t.txn_id for t in s.transactions_since(3)] == [4, 5, 6]


def test_bulk_create_is_all_or_nothing(store: LmdbStore) -> None:
    store.create_handle(b"TEST/5", [URL])
    batch = [(b"TEST/%d" % i, [EMAIL]) for i in range(10)]
    with pytest.raises(HandleExistsError, match="TEST/5"):
        store.create_handles(batch)
    assert store.count_handles() == 1
    with pytest.raises(HandleExistsError, match="test/1"):
        store.create_handles([(b"TEST/1", [URL]), (b"test/1", [URL])])
    assert store.count_handles() == 1
    assert store.create_handles(batch, overwrite=True) == 10
    assert store.get_values(b"TEST/5") == (EMAIL,)
    actions = {t.handle: t.action for t in store.transactions_since(1)}
    assert actions[b"TEST/5"] == TXN_MODIFY_HANDLE
    assert actions[b"TEST/4"] == TXN_ADD_HANDLE
    assert [t.txn_id for t in store.transactions_since(0)] == list(range(1, 12))


def test_bulk_create_commits_ids_partition_by_partition(store: LmdbStore, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(lmdb_store, "_WRITE_BATCH", 3)
    store.create_handles([(b"B/%d" % i, [URL]) for i in range(30)])
    log = list(store.transactions_since(0))
    assert [t.txn_id for t in log] == list(range(1, 31))
    partitions_in_id_order = [store.partition_index(t.handle) for t in log]
    assert partitions_in_id_order == sorted(partitions_in_id_order)


# -- durability, growth, corruption


def test_durable_across_close_and_reopen(tmp_path: Path) -> None:
    with open_store(tmp_path, case_sensitive=False) as s:  # sync on, the default
        s.create_handle(b"TEST/1", [URL, SECRET])
        s.home_prefix(b"TEST")
    assert (tmp_path / "hdldb" / "part-0" / "data.mdb").is_file()
    with open_store(tmp_path, case_sensitive=False, readonly=True) as s:
        assert s.get_values(b"test/1") == (URL, SECRET)
        assert s.homed_prefixes() == [b"0.NA/TEST"]
        assert s.last_txn_id() == 2


def test_map_grows_when_full(tmp_path: Path) -> None:
    small = 64 * 1024
    big = HandleValue(1, b"DATA", b"x" * 3000)
    with reopen(tmp_path, partitions=2, map_size=small) as s:
        for i in range(40):
            s.create_handle(b"G/%d" % i, [big])
        s.create_handles([(b"H/%d" % i, [big]) for i in range(100)])
        sizes = [p.env.info()["map_size"] for p in s._parts]
        assert all(size > small for size in sizes)
    with reopen(tmp_path, map_size=small) as s:
        assert s.count_handles() == 140
        assert s.get_values(b"H/99") == (big,)
        s.create_handle(b"G/more", [big])


def test_corrupt_record_is_storage_error(tmp_path: Path) -> None:
    with reopen(tmp_path, partitions=1) as s:
        s.create_handle(b"TEST/good", [URL])
    env = lmdb.open(str(tmp_path / "hdldb" / "part-0"), max_dbs=8)
    handles = env.open_db(b"handles")
    with env.begin(write=True, db=handles) as txn:
        txn.put(b"TEST/BAD", b"\x07garbage")
        txn.put(b"TEST/BADVALUES", encode_record([URL], 0)[:-4] + b"\x00\x00\x00\x09")
    env.close()
    with reopen(tmp_path) as s:
        with pytest.raises(StorageError, match="TEST/BAD"):
            s.get_record(b"TEST/bad")
        assert s.get_record(b"TEST/BADVALUES") is not None  # header is fine: the hot path does not decode
        with pytest.raises(StorageError, match="TEST/BADVALUES"):
            s.get_values(b"TEST/badvalues")
        with pytest.raises(StorageError):
            list(s.iter_records())
        assert s.get_values(b"TEST/good") == (URL,)


def test_corrupt_meta_is_storage_error(tmp_path: Path) -> None:
    reopen(tmp_path, partitions=2).close()
    env = lmdb.open(str(tmp_path / "hdldb" / "part-1"), max_dbs=8)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"partition", (7).to_bytes(8, "big"))
    env.close()
    with pytest.raises(StorageError, match="partition 1 records partition = 7"):
        reopen(tmp_path)


def test_readonly_store_refuses_changes(tmp_path: Path) -> None:
    reopen(tmp_path).close()
    with reopen(tmp_path, readonly=True) as s:
        for change in (lambda: s.create_handle(b"A/1", [URL]), lambda: s.delete_handle(b"A/1"),
                       lambda: s.home_prefix(b"A"), lambda: s.create_handles([(b"A/1", [URL])])):
            with pytest.raises(ReadOnlyStoreError):
                change()
        assert s.count_handles() == 0


def test_closed_store_is_storage_error(tmp_path: Path) -> None:
    s = reopen(tmp_path)
    s.close()
    s.close()  # idempotent
    for op in (lambda: s.get_record(b"A/1"), lambda: s.create_handle(b"A/1", [URL]),
               lambda: list(s.list_handles(b"A")), s.last_txn_id, s.homed_prefixes):
        with pytest.raises(StorageError, match="closed"):
            op()


# -- concurrency


def test_readers_while_another_thread_writes_and_grows_the_map(tmp_path: Path) -> None:
    payload = HandleValue(1, b"DATA", b"y" * 2000)
    errors: list[BaseException] = []
    reads: list[int] = []
    done = threading.Event()
    with reopen(tmp_path, partitions=2, map_size=64 * 1024) as s:
        s.create_handle(b"R/base", [URL])

        def writer() -> None:
            try:
                for i in range(150):
                    s.create_handle(b"R/%03d" % i, [payload])
            except BaseException as e:
                errors.append(e)
            finally:
                done.set()

        def reader() -> None:
            count = 0
            try:
                while not done.is_set() or count < 5:
                    assert s.get_values(b"R/base") == (URL,)
                    for record in s.iter_records():
                        assert record.handle == b"R/BASE" or record.values() == (payload,)
                    rec = s.get_record(b"R/010")
                    assert rec is None or rec.values() == (payload,)
                    count += 1
            except BaseException as e:
                errors.append(e)
            reads.append(count)

        threads = [threading.Thread(target=f) for f in (reader, reader, writer)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        assert len(reads) == 2 and min(reads) >= 5
        assert s.count_handles() == 151
        assert [t.txn_id for t in s.transactions_since(0)] == list(range(1, 152))
        assert any(p.env.info()["map_size"] > 64 * 1024 for p in s._parts)


def test_writers_in_two_processes_get_distinct_ordered_ids(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        from pathlib import Path
        from hdlserver.store.lmdb_store import open_store
        from hdlserver.wire.values import HandleValue
        with open_store(Path({str(tmp_path)!r}), case_sensitive=False, sync=False) as s:
            for i in range(200):
                s.create_handle(b"CHILD/%d" % i, [HandleValue(1, b"URL", b"x")])
    """)
    reopen(tmp_path).close()
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        with reopen(tmp_path) as s:
            while not s.exists(b"CHILD/0") and child.poll() is None:
                time.sleep(0.001)  # start writing once the child does, so the writes interleave
            for i in range(200):
                s.create_handle(b"PARENT/%d" % i, [URL])
    finally:
        assert child.wait(timeout=60) == 0
    expected = {b"CHILD/%d" % i for i in range(200)} | {b"PARENT/%d" % i for i in range(200)}
    with reopen(tmp_path) as s:
        log = list(s.transactions_since(0))
        assert [t.txn_id for t in log] == list(range(1, 401))
        assert {t.handle for t in log} == expected
        assert s.count_handles() == 400


def test_map_grown_by_another_process_is_adopted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adopted: list[int] = []
    adopt = lmdb_store._Partition._adopt_grown_map

    def spy(part: lmdb_store._Partition) -> None:
        adopted.append(part.index)
        adopt(part)

    monkeypatch.setattr(lmdb_store._Partition, "_adopt_grown_map", spy)
    small = 64 * 1024
    script = textwrap.dedent(f"""
        from pathlib import Path
        from hdlserver.store.lmdb_store import open_store
        from hdlserver.wire.values import HandleValue
        with open_store(Path({str(tmp_path)!r}), case_sensitive=False, sync=False, map_size={small}) as s:
            s.create_handles([(b"BIG/%d" % i, [HandleValue(1, b"DATA", b"z" * 3000)]) for i in range(200)])
    """)
    with reopen(tmp_path, partitions=1, map_size=small) as s:
        s.create_handle(b"A/1", [URL])
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        assert s.get_values(b"BIG/199") == (HandleValue(1, b"DATA", b"z" * 3000),)  # read after the growth
        assert adopted == [0]
        assert s.count_handles() == 201
        s.create_handle(b"A/2", [URL])
        assert s._parts[0].env.info()["map_size"] > small


def test_txn_key_layout_on_disk(tmp_path: Path) -> None:
    with reopen(tmp_path, partitions=1) as s:
        s.create_handle(b"A/1", [URL])
    assert raw_keys(tmp_path / "hdldb" / "part-0", b"txns") == [txn_key(1)]

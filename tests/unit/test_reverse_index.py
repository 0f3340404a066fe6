"""The reverse-lookup index (hdlserver.store.reverse_index) kept by every write path of the LMDB store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from hdlserver.errors import StorageError
from hdlserver.store import reverse_index
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_DELETE_HANDLE, TXN_MODIFY_HANDLE, HandleExistsError
from hdlserver.store.lmdb_store import LmdbStore, ReplicatedTxn, open_store
from hdlserver.store.reverse_index import SearchTooBroadError, condition
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, HandleValue

BUDGET = 100_000


def url(data: bytes, index: int = 1) -> HandleValue:
    return HandleValue(index, b"URL", data)


def checksum(data: bytes) -> HandleValue:
    return HandleValue(2, b"CHECKSUM", data)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LmdbStore]:
    with open_store(tmp_path, case_sensitive=False, partitions=4, sync=False) as s:
        yield s


def find(store: LmdbStore, *pairs: tuple[str, str], limit: int = 100, offset: int = 0,
         prefix: bytes | None = None) -> list[bytes]:
    return store.search([condition(t, p) for t, p in pairs], prefix=prefix, limit=limit, offset=offset,
                        max_scanned=BUDGET)


def index_entries(store: LmdbStore) -> set[tuple[bytes, bytes]]:
    entries: set[tuple[bytes, bytes]] = set()
    for part in store._parts:
        entries |= part.read(lambda txn, part=part: set(txn.cursor(part.revidx).iternext(keys=True, values=True)))
    return entries


def test_create_replace_delete_keep_the_index(store: LmdbStore) -> None:
    store.create_handle(b"T/1", [url(b"http://a.example/x")])
    assert find(store, ("URL", "http://a.example/x")) == [b"T/1"]
    store.replace_values(b"T/1", [url(b"http://b.example/y")])
    assert find(store, ("URL", "http://a.example/x")) == []
    assert find(store, ("URL", "http://b.example/y")) == [b"T/1"]
    store.create_handle(b"T/1", [url(b"http://c.example/")], overwrite=True)
    assert find(store, ("URL", "http://b.example/y")) == []
    assert find(store, ("URL", "http://c.example/")) == [b"T/1"]
    assert store.delete_handle(b"T/1")
    assert find(store, ("URL", "http://c.example/")) == []
    assert index_entries(store) == set()


def test_bulk_create_and_replication_apply_keep_the_index(store: LmdbStore) -> None:
    store.create_handles([(f"T/{i}".encode(), [url(f"http://bulk/{i}".encode())]) for i in range(600)])
    assert find(store, ("URL", "http://bulk/599")) == [b"T/599"]
    txns = [ReplicatedTxn(1, 0, TXN_ADD_HANDLE, b"T/r", (url(b"http://repl/1"),)),
            ReplicatedTxn(2, 0, TXN_MODIFY_HANDLE, b"T/0", (url(b"http://repl/0"),)),
            ReplicatedTxn(3, 0, TXN_DELETE_HANDLE, b"T/1", None)]
    assert store.apply_replicated(b"q", txns) == 3
    assert find(store, ("URL", "http://repl/*")) == [b"T/0", b"T/R"]  # stored names: case-folded
    assert find(store, ("URL", "http://bulk/0")) == []
    assert find(store, ("URL", "http://bulk/1")) == []


def test_failed_bulk_create_leaves_the_index_unchanged(store: LmdbStore) -> None:
    store.create_handle(b"T/exists", [url(b"http://old/")])
    before = index_entries(store)
    with pytest.raises(HandleExistsError):
        store.create_handles([(b"T/new", [url(b"http://new/")]), (b"T/exists", [url(b"http://new/")])])
    assert index_entries(store) == before
    assert find(store, ("URL", "http://new/")) == []


def test_aborted_write_transaction_leaves_the_index_unchanged(store: LmdbStore) -> None:
    store.create_handle(b"T/1", [url(b"http://kept/")])
    before = index_entries(store)
    key = store.storage_key(b"T/1")
    part = store._partition(key)

    def change_then_fail(txn: lmdb.Transaction) -> None:
        part.put_record(txn, key, b"\x01\x01" + bytes(8) + bytes(4))  # a valid, empty record
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        part.write(change_then_fail)
    assert index_entries(store) == before
    assert find(store, ("URL", "http://kept/")) == [b"T/1"]


def test_only_public_read_values_are_found(store: LmdbStore) -> None:
    hidden = HandleValue(3, b"URL", b"http://secret/", permissions=PERM_ADMIN_READ | PERM_ADMIN_WRITE)
    store.create_handle(b"T/1", [hidden])
    assert find(store, ("URL", "http://secret/")) == []
    assert find(store, ("URL", "*secret*")) == []


def test_wildcards(store: LmdbStore) -> None:
    store.create_handle(b"T/1", [url(b"http://dkrz.de/a")])
    store.create_handle(b"T/2", [url(b"http://example.org/dkrz")])
    store.create_handle(b"T/3", [url(b"https://other/")])
    assert find(store, ("URL", "http://*")) == [b"T/1", b"T/2"]
    assert find(store, ("URL", "*dkrz*")) == [b"T/1", b"T/2"]
    assert find(store, ("URL", "*/a")) == [b"T/1"]
    assert find(store, ("URL", "http://*.org/*")) == [b"T/2"]
    assert find(store, ("URL", "http://dkrz.de/")) == []  # exact: no prefix matches
    assert find(store, ("url", "https://other/")) == [b"T/3"]  # types ignore ASCII case


def test_and_of_two_types(store: LmdbStore) -> None:
    store.create_handle(b"T/1", [url(b"http://x/"), checksum(b"abc")])
    store.create_handle(b"T/2", [url(b"http://x/"), checksum(b"def")])
    store.create_handle(b"T/3", [url(b"http://y/"), checksum(b"abc")])
    assert find(store, ("URL", "http://x/"), ("CHECKSUM", "abc")) == [b"T/1"]
    assert find(store, ("URL", "http://*"), ("CHECKSUM", "d*")) == [b"T/2"]
    assert find(store, ("URL", "http://y/"), ("CHECKSUM", "def")) == []


def test_limit_offset_and_prefix(store: LmdbStore) -> None:
    store.create_handles([(f"{p}/{i:02}".encode(), [url(b"http://same/")]) for p in ("A", "B") for i in range(10)])
    everything = find(store, ("URL", "http://same/"))
    assert everything == sorted(everything) and len(everything) == 20
    assert find(store, ("URL", "http://same/"), limit=3) == everything[:3]
    assert find(store, ("URL", "http://same/"), limit=3, offset=18) == everything[18:]
    assert find(store, ("URL", "http://same/"), prefix=b"b") == [f"B/{i:02}".encode() for i in range(10)]


def test_a_handle_with_two_matching_values_is_listed_once(store: LmdbStore) -> None:
    store.create_handle(b"T/1", [url(b"http://one/", 1), url(b"http://two/", 2)])
    assert find(store, ("URL", "http://*")) == [b"T/1"]


def test_values_longer_than_the_key_limit_are_matched_on_the_record(store: LmdbStore) -> None:
    long_a = b"http://long/" + b"a" * 900
    long_b = b"http://long/" + b"a" * 899 + b"b"
    store.create_handle(b"T/A", [url(long_a)])
    store.create_handle(b"T/B", [url(long_b)])
    assert find(store, ("URL", long_a.decode())) == [b"T/A"]
    assert find(store, ("URL", "*ab")) == [b"T/B"]
    assert find(store, ("URL", "http://long/*")) == [b"T/A", b"T/B"]


def test_scan_budget(store: LmdbStore) -> None:
    store.create_handles([(f"T/{i}".encode(), [url(f"http://many/{i}".encode())]) for i in range(50)])
    with pytest.raises(SearchTooBroadError):
        store.search([condition("URL", "*nothing*")], limit=10, max_scanned=20)
    assert store.search([condition("URL", "http://many/7")], limit=10, max_scanned=5) == [b"T/7"]


def test_index_is_built_at_open_of_a_store_without_it(tmp_path: Path) -> None:
    with open_store(tmp_path, case_sensitive=False, partitions=2, sync=False) as s:
        s.create_handles([(f"T/{i}".encode(), [url(f"http://old/{i}".encode())]) for i in range(1200)])
        for part in s._parts:  # make it look like a store written before the index existed
            part.write(lambda txn, part=part: txn.drop(part.revidx, delete=True))
            part.write(lambda txn, part=part: txn.delete(reverse_index.META_VERSION, db=part.meta))
    with open_store(tmp_path, case_sensitive=False, readonly=True) as ro, \
            pytest.raises(StorageError, match="no reverse index"):
        ro.search([condition("URL", "http://old/1")], limit=10, max_scanned=BUDGET)
    with open_store(tmp_path, case_sensitive=False, sync=False) as s:
        assert find(s, ("URL", "http://old/1199")) == [b"T/1199"]
        assert len(find(s, ("URL", "http://old/*"), limit=5000)) == 1200
        assert s.build_reverse_index() == 0  # recorded in meta: not rebuilt again
    with open_store(tmp_path, case_sensitive=False, readonly=True) as ro:
        assert ro.search([condition("URL", "http://old/5")], limit=10, max_scanned=BUDGET) == [b"T/5"]

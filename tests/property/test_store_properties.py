"""Property tests of the LMDB store: it behaves like a dict model; its record codecs round-trip and fail
cleanly."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hdlserver.errors import StorageError
from hdlserver.store.base import (
    TXN_ADD_HANDLE,
    TXN_DELETE_HANDLE,
    TXN_HOME_NA,
    TXN_MODIFY_HANDLE,
    TXN_UNHOME_NA,
    HandleExistsError,
    HandleNotFoundError,
    Transaction,
)
from hdlserver.store.lmdb_store import open_store
from hdlserver.store.records import all_public_read, decode_record, decode_txn, encode_record, encode_txn
from hdlserver.wire.values import HandleValue, ValueReference, encode_values

type_names = st.sampled_from([b"URL", b"EMAIL", b"HS_ADMIN", b"DESC", b"x.y"])
references = st.lists(st.builds(ValueReference, st.binary(max_size=12), st.integers(0, 2**31 - 1)),
                      max_size=2)
handle_values = st.builds(
    HandleValue,
    index=st.integers(1, 2**31 - 1),
    type=type_names,
    data=st.binary(max_size=40),
    permissions=st.integers(0, 15),
    ttl_type=st.integers(0, 1),
    ttl=st.integers(-(2**31), 2**31 - 1),
    timestamp=st.integers(-(2**31), 2**31 - 1),
    references=references.map(tuple),
)
value_lists = st.lists(handle_values, max_size=4)
# Few names in mixed case, so operations collide and case folding is exercised.
handles = st.builds(lambda p, s: p + b"/" + s, st.sampled_from([b"test", b"TEST", b"Te", b"0.NA"]),
                    st.sampled_from([b"a", b"A", b"b", b"xy", b"XY", b"Te"]))
prefixes = st.sampled_from([b"test", b"TEST", b"0.NA/te", b"other"])


@settings(max_examples=200, deadline=None)
@given(value_lists, st.integers(-(2**63), 2**63 - 1))
def test_record_round_trip(values: list[HandleValue], modified: int) -> None:
    record = decode_record(b"K/1", encode_record(values, modified))
    assert record.encoded_values == encode_values(values)
    assert record.values() == tuple(values)
    assert record.all_public_read == all_public_read(values)
    assert record.modified == modified


# Arbitrary bytes, and valid records or transaction records with a few bytes changed.
damaged = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda values, at, byte: _patch(encode_record(values, 0), at, byte), value_lists,
              st.integers(0, 200), st.integers(0, 255)),
    st.builds(lambda at, byte: _patch(encode_txn(Transaction(1, 1, b"A/B", 0, 0)), at, byte),
              st.integers(0, 40), st.integers(0, 255)),
)


def _patch(raw: bytes, at: int, byte: int) -> bytes:
    at %= len(raw)
    return raw[:at] + bytes([byte]) + raw[at + 1 :]


@settings(max_examples=500, deadline=None)
@given(damaged)
def test_decoding_damaged_bytes_raises_only_storage_error(raw: bytes) -> None:
    with contextlib.suppress(StorageError):
        decode_record(b"K/1", raw).values()
    with contextlib.suppress(StorageError):
        decode_txn(raw[:8], raw)


class StoreMatchesDict(RuleBasedStateMachine):
    """Random create/replace/delete/home/unhome sequences against a dict model, over a reopen now and then."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="hdl-store-prop-"))
        self.store = open_store(self.dir, case_sensitive=False, partitions=3, sync=False, map_size=128 * 1024)
        self.model: dict[bytes, tuple[HandleValue, ...]] = {}
        self.homed: set[bytes] = set()
        self.actions: list[tuple[int, bytes]] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(handle=handles, values=value_lists, overwrite=st.booleans())
    def create(self, handle: bytes, values: list[HandleValue], overwrite: bool) -> None:
        key = handle.upper()
        existed = key in self.model
        try:
            replaced = self.store.create_handle(handle, values, overwrite=overwrite)
        except HandleExistsError:
            assert existed and not overwrite
            return
        assert replaced == existed
        self.model[key] = tuple(values)
        self.actions.append((TXN_MODIFY_HANDLE if existed else TXN_ADD_HANDLE, key))

    @rule(items=st.lists(st.tuples(handles, value_lists), max_size=5), overwrite=st.booleans())
    def create_many(self, items: list[tuple[bytes, list[HandleValue]]], overwrite: bool) -> None:
        keys = [h.upper() for h, _ in items]
        refused = not overwrite and (len(set(keys)) < len(keys) or any(k in self.model for k in keys))
        try:
            self.store.create_handles(items, overwrite=overwrite)
        except HandleExistsError:
            assert refused
            return
        assert not refused
        # The store writes partition by partition: log order follows the partitions, then the input.
        order = sorted(range(len(items)), key=lambda i: self.store.partition_index(keys[i]))
        for i in order:
            self.actions.append((TXN_MODIFY_HANDLE if keys[i] in self.model else TXN_ADD_HANDLE, keys[i]))
            self.model[keys[i]] = tuple(items[i][1])

    @rule(handle=handles, values=value_lists)
    def replace(self, handle: bytes, values: list[HandleValue]) -> None:
        key = handle.upper()
        try:
            self.store.replace_values(handle, values)
        except HandleNotFoundError:
            assert key not in self.model
            return
        assert key in self.model
        self.model[key] = tuple(values)
        self.actions.append((TXN_MODIFY_HANDLE, key))

    @rule(handle=handles)
    def delete(self, handle: bytes) -> None:
        key = handle.upper()
        assert self.store.delete_handle(handle) == (key in self.model)
        if self.model.pop(key, None) is not None:
            self.actions.append((TXN_DELETE_HANDLE, key))

    @rule(prefix=prefixes)
    def home(self, prefix: bytes) -> None:
        key = (prefix if b"/" in prefix else b"0.NA/" + prefix).upper()
        self.store.home_prefix(prefix)
        self.homed.add(key)
        self.actions.append((TXN_HOME_NA, key))

    @rule(prefix=prefixes)
    def unhome(self, prefix: bytes) -> None:
        key = (prefix if b"/" in prefix else b"0.NA/" + prefix).upper()
        assert self.store.unhome_prefix(prefix) == (key in self.homed)
        if key in self.homed:
            self.homed.discard(key)
            self.actions.append((TXN_UNHOME_NA, key))

    @precondition(lambda self: len(self.actions) % 7 == 3)
    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = open_store(self.dir, case_sensitive=False, sync=False, map_size=128 * 1024)

    @invariant()
    def same_records(self) -> None:
        assert list(self.store.iter_handles()) == sorted(self.model)
        assert self.store.count_handles() == len(self.model)
        for key, values in self.model.items():
            record = self.store.get_record(key.lower())
            assert record is not None
            assert record.encoded_values == encode_values(values)
            assert record.all_public_read == all_public_read(values)
        for prefix in (b"TEST", b"TE", b"0.NA"):
            assert list(self.store.list_handles(prefix)) == sorted(k for k in self.model
                                                                   if k.startswith(prefix + b"/"))

    @invariant()
    def same_homes_and_log(self) -> None:
        assert self.store.homed_prefixes() == sorted(self.homed)
        log = list(self.store.transactions_since(0))
        assert [t.txn_id for t in log] == list(range(1, len(self.actions) + 1))
        assert [(t.action, t.handle) for t in log] == self.actions


StoreMatchesDict.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
TestStoreMatchesDict = StoreMatchesDict.TestCase

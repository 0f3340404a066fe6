"""Reverse lookup: which handles have a value of a type whose data matches a pattern (``/hrls/handles``).

Each partition holds a DUPSORT DB ``revidx`` written in the same LMDB transaction as every record change
(lmdb_store.py funnels all record writes through ``apply_change``), so the index can never disagree with
the records. An entry is::

    key   byte n | TYPE (n bytes, ASCII upper-cased) | data, cut so the key fits LMDB's key limit
    dup   the handle's storage key

Only public-read values are indexed: a value the public cannot resolve must not be findable through
search either (its existence and its data would leak). Types match ignoring ASCII case, as the SQL servlet
pyhandle was written against does; data match exactly (URLs are case-sensitive).

A search drives one condition through a cursor range scan on the literal text before its first ``*``
(an exact value or ``abc*`` touch only matching entries; ``*abc`` scans that type's entries and filters the
keys), and checks the other conditions, and data cut by the key limit, against the record itself. Of ANDed
conditions the one with the fewest entries drives (LMDB counts an exact value's duplicates at once).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import lmdb

from hdlserver.errors import DecodeError, StorageError
from hdlserver.wire.values import HandleValue, decode_values

T = TypeVar("T")

INDEX_VERSION = 1  # recorded in every partition's meta; a store without it (or older) is reindexed at open
DB_NAME = b"revidx"
META_VERSION = b"revidx-version"
MAX_TYPE_BYTES = 255
WILDCARD = b"*"
_SCAN_BATCH = 512  # index entries per short read transaction
_ESTIMATE_CAP = 1024  # entries counted when choosing which condition drives an AND

Reader = Callable[[Callable[[lmdb.Transaction], T]], T]


class SearchTooBroadError(ValueError):
    """The pattern would make the server walk more index entries than it allows for one request."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``TYPE=pattern``: some public-read value of that type has data matching the pattern (``*`` = any run)."""

    type: bytes  # ASCII upper-cased
    pattern: bytes

    @property
    def literal_prefix(self) -> bytes:
        return self.pattern.split(WILDCARD, 1)[0]

    @property
    def exact(self) -> bool:
        return WILDCARD not in self.pattern

    def compile(self) -> re.Pattern[bytes]:
        return re.compile(b".*".join(re.escape(part) for part in self.pattern.split(WILDCARD)), re.DOTALL)


def condition(type_text: str, pattern: str) -> Condition:
    return Condition(type_text.encode("utf-8").upper(), pattern.encode("utf-8"))


def type_key(value_type: bytes) -> bytes:
    return bytes((len(value_type),)) + value_type.upper()


def index_keys(encoded_values: bytes | memoryview, max_key: int) -> set[bytes]:
    """The index keys of a record's values (``int4 count | values``): one per distinct public-read value."""
    try:
        values = decode_values(bytes(encoded_values))
    except DecodeError as e:
        raise StorageError(f"cannot index a record whose values do not decode: {e.message}") from e
    return {_entry_key(v, max_key) for v in values if v.public_read and len(v.type) <= MAX_TYPE_BYTES}


def _entry_key(value: HandleValue, max_key: int) -> bytes:
    prefix = type_key(value.type)
    return prefix + value.data[: max_key - len(prefix)]


def apply_change(txn: lmdb.Transaction, db: lmdb._Database, handle_key: bytes, old: set[bytes],
                 new: set[bytes]) -> None:
    """Move ``handle_key``'s entries from the ``old`` keys to the ``new`` ones, inside the caller's write txn."""
    for key in old - new:
        txn.delete(key, handle_key, db=db)
    for key in new - old:
        txn.put(key, handle_key, dupdata=True, db=db)


@dataclass(frozen=True, slots=True)
class PartitionIndex:
    """What a search needs of one partition: its short-read runner, its DBs and the key limit."""

    read: Reader
    index_db: lmdb._Database
    handles_db: lmdb._Database
    max_key: int
    record_values: Callable[[bytes, bytes], Sequence[HandleValue]]  # (handle key, raw record) -> values


def _matches_all(values: Sequence[HandleValue], checks: Sequence[tuple[bytes, re.Pattern[bytes]]]) -> bool:
    return all(any(v.public_read and v.type.upper() == t and rx.fullmatch(v.data) for v in values)
               for t, rx in checks)


def scan_partition(part: PartitionIndex, conditions: Sequence[Condition], handle_prefix: bytes,
                   budget: list[int]) -> Iterator[tuple[bytes, bytes]]:
    """(index key, handle key) of this partition's matches, in index order. ``conditions[0]`` drives the
    scan; ``budget`` is the request's remaining count of index entries it may walk (shared by partitions)."""
    driver = conditions[0]
    start = (type_key(driver.type) + driver.literal_prefix)[: part.max_key]  # cut as the entries are
    data_at = len(type_key(driver.type))
    driver_rx = driver.compile()
    checks = [(c.type, c.compile()) for c in conditions]
    after: tuple[bytes, bytes] | None = None

    def batch(txn: lmdb.Transaction) -> tuple[list[tuple[bytes, bytes]], tuple[bytes, bytes] | None, bool]:
        cur = txn.cursor(part.index_db)
        if after is None:
            ok = cur.set_range(start)
        else:
            ok = cur.set_range_dup(*after)
            if ok and (cur.key(), cur.value()) == after:
                ok = cur.next()
            elif not ok:  # the resume key lost its last entry meanwhile: go on from the next key
                ok = cur.set_range(after[0]) and (cur.key() != after[0] or cur.next_nodup())
        out: list[tuple[bytes, bytes]] = []
        last = None
        for _ in range(_SCAN_BATCH):
            if not ok:
                return out, last, True
            key, handle = cur.key(), cur.value()
            if not key.startswith(start) or (driver.exact and len(key) < part.max_key and key != start):
                return out, last, True
            last = (key, handle)
            budget[0] -= 1
            if budget[0] < 0:
                raise SearchTooBroadError("the search walks too many index entries: give a longer text before "
                                          "the first '*'")
            cut = len(key) >= part.max_key
            if handle.startswith(handle_prefix) and (cut or driver_rx.fullmatch(key, data_at)):
                if cut or len(checks) > 1:
                    raw = txn.get(handle, db=part.handles_db)
                    if raw is not None and _matches_all(part.record_values(handle, raw), checks):
                        out.append(last)
                else:
                    out.append(last)
            ok = cur.next()
        return out, last, not ok

    while True:
        out, last, finished = part.read(batch)
        yield from out
        if finished:
            return
        after = last


def estimate(part: PartitionIndex, cond: Condition) -> int:
    """How many index entries driving the scan with ``cond`` would walk in this partition, counted up to
    ``_ESTIMATE_CAP`` (an exact value's entries are counted by LMDB at once)."""
    start = (type_key(cond.type) + cond.literal_prefix)[: part.max_key]

    def count(txn: lmdb.Transaction) -> int:
        cur = txn.cursor(part.index_db)
        if cond.exact and len(start) < part.max_key:
            return cur.count() if cur.set_key(start) else 0
        seen = 0
        ok = cur.set_range(start)
        while ok and seen < _ESTIMATE_CAP and cur.key().startswith(start):
            seen += 1
            ok = cur.next()
        return seen

    return part.read(count)


def order_conditions(conditions: Sequence[Condition], parts: Sequence[PartitionIndex]) -> list[Condition]:
    """The condition that walks the fewest index entries first: it drives the scan, the others are checked
    on the records it finds (one record read each)."""
    if len(conditions) == 1:
        return list(conditions)
    return sorted(conditions, key=lambda c: (sum(estimate(p, c) for p in parts), not c.exact))

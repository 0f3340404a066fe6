"""A bounded per-process cache of looked-up records for the resolution hot path (design.md 7).

Entries are validated on every use, never trusted by age: each remembers the LMDB transaction id of the
snapshot its record (or its absence) was read from, and the store uses it only while a new read
transaction of that partition starts from the same id. LMDB gives each committed write transaction of an
environment the next id, whichever process commits it (this server, another worker, hdl-loadjson,
hdl-dbremove, a mirror's replication thread), so an unchanged id means an unchanged partition and the
cached answer is the one a fresh read would give. That check is a read transaction begun and aborted
(~0.5 us), against ~10 us for hashing the name to its partition, reading and parsing the record.

Keys are handles exactly as asked for (each spelling has its own entry, all pointing at the same
case-folded storage key). The cache is bounded in entries and in stored bytes; when full, the oldest
insertions go first.
"""

from __future__ import annotations

from typing import NamedTuple

from hdlserver.bounded_cache import BoundedCache
from hdlserver.store.base import StoredRecord

DEFAULT_MAX_ENTRIES = 16_384
DEFAULT_MAX_BYTES = 16 << 20
_ENTRY_OVERHEAD = 200  # bytes of bookkeeping per entry (tuples, dict slot), a rough figure for the bound


class CachedRecord(NamedTuple):
    partition: int  # index of the partition holding ``key``
    key: bytes  # storage (case-folded) key
    txn_id: int  # LMDB id of the read snapshot ``record`` comes from
    record: StoredRecord | None  # None: the handle was not stored in that snapshot


def entry_size(handle: bytes, entry: CachedRecord) -> int:
    values = 0 if entry.record is None else len(entry.record.encoded_values)
    return _ENTRY_OVERHEAD + len(handle) + len(entry.key) + values


class RecordCache(BoundedCache[bytes, CachedRecord]):
    """handle -> CachedRecord, at most ``max_entries`` entries and about ``max_bytes`` bytes."""

    __slots__ = ()

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(entry_size, max_entries, max_bytes)

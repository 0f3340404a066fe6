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

import threading
from collections import OrderedDict
from typing import NamedTuple

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


class RecordCache:
    """handle -> CachedRecord, at most ``max_entries`` entries and about ``max_bytes`` bytes.

    ``get`` is a plain (ordered) dict lookup (atomic under the GIL); ``put`` takes a lock so that threads inserting
    and evicting at the same time keep the byte count right.
    """

    __slots__ = ("_bytes", "_entries", "_lock", "get", "max_bytes", "max_entries")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, CachedRecord] = OrderedDict()  # oldest first: O(1) eviction
        self._bytes = 0
        self._lock = threading.Lock()
        self.get = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def put(self, handle: bytes, entry: CachedRecord) -> None:
        size = entry_size(handle, entry)
        if size > self.max_bytes or self.max_entries <= 0:
            return
        entries = self._entries
        with self._lock:
            old = entries.pop(handle, None)
            if old is not None:
                self._bytes -= entry_size(handle, old)
            while entries and (len(entries) >= self.max_entries or self._bytes + size > self.max_bytes):
                oldest, evicted = entries.popitem(last=False)  # a plain dict's first key is found by a scan
                self._bytes -= entry_size(oldest, evicted)
            entries[handle] = entry
            self._bytes += size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

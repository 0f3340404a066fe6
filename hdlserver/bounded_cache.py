"""A key -> value table bounded in entries and in (estimated) bytes, the oldest insertion going first.

The base of the hot path's caches (store/record_cache.py, core/answer_templates.py). ``get`` is a bare
ordered-dict lookup, bound once, because it runs on every request and is atomic under the GIL; ``put``
takes a lock so that threads inserting and evicting at the same time keep the byte count right. The
eviction pops the front of an OrderedDict: a plain dict finds its first key by scanning the slots that
earlier evictions left empty, which made a working set larger than the cache slower than no cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    __slots__ = ("_bytes", "_entries", "_lock", "_size_of", "get", "max_bytes", "max_entries")

    def __init__(self, size_of: Callable[[K, V], int], max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.get = self._entries.get

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def put(self, key: K, value: V, max_size: int | None = None) -> None:
        """Insert (or replace) ``key``; nothing is kept when the entry alone exceeds ``max_size`` (default:
        the whole byte bound) or when the cache holds no entries at all."""
        size = self._size_of(key, value)
        if size > min(self.max_bytes, max_size if max_size is not None else self.max_bytes) or self.max_entries <= 0:
            return
        entries = self._entries
        with self._lock:
            old = entries.pop(key, None)
            if old is not None:
                self._bytes -= self._size_of(key, old)
            while entries and (len(entries) >= self.max_entries or self._bytes + size > self.max_bytes):
                oldest, evicted = entries.popitem(last=False)
                self._bytes -= self._size_of(oldest, evicted)
            entries[key] = value
            self._bytes += size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

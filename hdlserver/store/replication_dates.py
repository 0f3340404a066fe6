"""Replication dates (Java's ``replicationDb``): the date and source priority of the last change applied to
each handle and each homed prefix, on servers that run the pull loop as a primary (multi-primary) or from
handle-based or proxied sources (replication.md 3, 8.1, 8.2, 10).

Two decisions, pure over the stored entry (``None`` when there is none):

* the conflict rule: a pulled change is applied only if it is newer, or equally new from a source whose
  priority (the index of its HS_SITE value) is at least the stored one;
* the date adjustment: a change made here at wall-clock time ``now`` is dated one millisecond after the
  stored date when that is not earlier, so every later edit of a handle wins everywhere, whatever the
  clocks of the primaries say.

An entry is ``int8 date ms | int4 priority``, as Java stores it and as dumps carry it.
"""

from __future__ import annotations

import struct

from hdlserver.errors import StorageError

_ENTRY = struct.Struct(">qi")
ENTRY_SIZE = _ENTRY.size


def encode_date(date_ms: int, priority: int) -> bytes:
    return _ENTRY.pack(date_ms, priority)


def decode_date(raw: bytes | memoryview) -> tuple[int, int]:
    """(date ms, priority) of a stored entry."""
    if len(raw) != ENTRY_SIZE:
        raise StorageError(f"corrupt replication date entry ({len(raw)} bytes, expected {ENTRY_SIZE})")
    date_ms, priority = _ENTRY.unpack(raw)
    return date_ms, priority


def is_more_recent(stored: tuple[int, int] | None, date_ms: int, priority: int) -> bool:
    """The conflict rule of replication.md 8.1."""
    if stored is None:
        return True
    stored_date, stored_priority = stored
    return date_ms > stored_date or (date_ms == stored_date and priority >= stored_priority)


def adjusted_date(stored: tuple[int, int] | None, now_ms: int) -> int:
    """The date of a change made here (replication.md 8.2)."""
    if stored is None or stored[0] < now_ms:
        return now_ms
    return stored[0] + 1

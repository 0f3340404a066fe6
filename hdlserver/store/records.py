"""On-disk layout of the LMDB store's entries (design.md 4). Pure byte codecs, no LMDB here.

Handle record (DB ``handles``, key = case-folded handle)::

    byte  format version (1)
    byte  flags (bit 0: every value is public-read)
    int8  last-modified, seconds since 1970
    int4  value count | values        (exactly hdlserver.wire.values.encode_values)

Transaction record (DB ``txns``, key = int8 big-endian txn id), the layout of Java's ``txnLogDatabase``
(replication.md 3)::

    int8 txnId | byte action | int8 date ms | int4 hashOnAll | int4 hashOnNA | int4 hashOnId | int4 n, handle

Homed prefix (DB ``nas``, key = ``0.NA/X`` upper-cased): int8 seconds since 1970 when it was homed.
Meta entries (DB ``meta``): int8 values.

Stored bytes that do not parse raise ``StorageError``: they were written by us, so bad bytes mean a
damaged store, not a bad request.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from hdlserver.errors import StorageError
from hdlserver.store.base import StoredRecord, Transaction
from hdlserver.wire.values import MIN_VALUE_SIZE, PERM_PUBLIC_READ, HandleValue, encode_values

RECORD_FORMAT = 1
FLAG_ALL_PUBLIC_READ = 0x01
_KNOWN_FLAGS = FLAG_ALL_PUBLIC_READ

_HEADER = struct.Struct(">BBq")
HEADER_SIZE = _HEADER.size  # 10
_COUNT = struct.Struct(">i")
_INT8 = struct.Struct(">q")
_TXN_FIXED = struct.Struct(">qBqiiii")

KNOWN_TXN_ACTIONS = frozenset(range(7))  # replication.md 2.2


def _text(handle: bytes | memoryview) -> str:
    return bytes(handle).decode("utf-8", "backslashreplace")


def all_public_read(values: Sequence[HandleValue]) -> bool:
    """True when a public-only resolution may return every value (vacuously true for no values)."""
    return all(v.permissions & PERM_PUBLIC_READ for v in values)


def record_header(public_read: bool, modified: int) -> bytes:
    """The header that precedes ``encode_values(values)``; ``public_read`` = ``all_public_read(values)``."""
    return _HEADER.pack(RECORD_FORMAT, FLAG_ALL_PUBLIC_READ if public_read else 0, modified)


def encode_record(values: Sequence[HandleValue], modified: int) -> bytes:
    return record_header(all_public_read(values), modified) + encode_values(values)


def decode_record(key: bytes, raw: bytes | memoryview) -> StoredRecord:
    """Parse a stored record: the header is checked, the values are copied out but not decoded.

    ``raw`` may be a memoryview into the LMDB map (valid only inside its read transaction): the values
    are copied exactly once, into ``encoded_values``.
    """
    size = len(raw)
    if size < HEADER_SIZE + _COUNT.size:
        raise StorageError(f"corrupt stored record for {_text(key)}: {size} bytes is shorter than a header")
    version, flags, modified = _HEADER.unpack_from(raw, 0)
    if version != RECORD_FORMAT:
        raise StorageError(f"corrupt stored record for {_text(key)}: unknown record format {version}")
    if flags & ~_KNOWN_FLAGS:
        raise StorageError(f"corrupt stored record for {_text(key)}: unknown flags 0x{flags:02x}")
    (count,) = _COUNT.unpack_from(raw, HEADER_SIZE)
    if count < 0 or count * MIN_VALUE_SIZE > size - HEADER_SIZE - _COUNT.size:
        raise StorageError(f"corrupt stored record for {_text(key)}: value count {count} does not fit")
    return StoredRecord(key, bytes(raw[HEADER_SIZE:]), bool(flags & FLAG_ALL_PUBLIC_READ), modified)


def encode_int8(n: int) -> bytes:
    return _INT8.pack(n)


def decode_int8(raw: bytes | memoryview, what: str) -> int:
    if len(raw) != _INT8.size:
        raise StorageError(f"corrupt {what}: {len(raw)} bytes, expected 8")
    return _INT8.unpack(raw)[0]


def txn_key(txn_id: int) -> bytes:
    """Big-endian int8, so LMDB's byte order is id order (ids are positive)."""
    return _INT8.pack(txn_id)


def encode_txn(t: Transaction) -> bytes:
    fixed = _TXN_FIXED.pack(t.txn_id, t.action, t.date_ms, t.hash_on_all, t.hash_on_na, t.hash_on_id,
                            len(t.handle))
    return fixed + t.handle


def decode_txn(key: bytes | memoryview, raw: bytes | memoryview) -> Transaction:
    if len(raw) < _TXN_FIXED.size:
        raise StorageError(f"corrupt transaction record: {len(raw)} bytes is too short")
    txn_id, action, date_ms, hash_on_all, _na, _id, n = _TXN_FIXED.unpack_from(raw, 0)
    if n != len(raw) - _TXN_FIXED.size:
        raise StorageError(f"corrupt transaction record {txn_id}: handle length {n} does not match")
    if bytes(key) != txn_key(txn_id):
        raise StorageError(f"corrupt transaction record {txn_id}: stored under another key")
    if action not in KNOWN_TXN_ACTIONS:
        raise StorageError(f"corrupt transaction record {txn_id}: unknown action {action}")
    return Transaction(txn_id, action, bytes(raw[_TXN_FIXED.size :]), date_ms, hash_on_all)

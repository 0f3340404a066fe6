"""Handle values: the binary layout of values.md section 1 and the two type-matching rules of 1.4.

Types, data and reference handles are kept as bytes, exactly as on the wire, so that a decoded value
re-encodes byte-exact. Type-specific data formats live in ``hdlserver.wire.valuedata``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hdlserver.wire.buffer import Reader, Writer

# Permission bits (values.md 1.2).
PERM_ADMIN_READ = 0x08
PERM_ADMIN_WRITE = 0x04
PERM_PUBLIC_READ = 0x02
PERM_PUBLIC_WRITE = 0x01
DEFAULT_PERMISSIONS = PERM_ADMIN_READ | PERM_ADMIN_WRITE | PERM_PUBLIC_READ  # "1110"

TTL_RELATIVE = 0
TTL_ABSOLUTE = 1
DEFAULT_TTL = 86_400

MAX_HANDLE_VALUES = 2_048  # Java clients reject more values in one response


@dataclass(frozen=True, slots=True)
class ValueReference:
    handle: bytes
    index: int


@dataclass(frozen=True, slots=True)
class HandleValue:
    index: int
    type: bytes
    data: bytes
    permissions: int = DEFAULT_PERMISSIONS
    ttl_type: int = TTL_RELATIVE
    ttl: int = DEFAULT_TTL
    timestamp: int = 0
    references: tuple[ValueReference, ...] = ()

    @property
    def public_read(self) -> bool:
        return bool(self.permissions & PERM_PUBLIC_READ)

    @property
    def admin_read(self) -> bool:
        return bool(self.permissions & PERM_ADMIN_READ)

    @property
    def admin_write(self) -> bool:
        return bool(self.permissions & PERM_ADMIN_WRITE)

    @property
    def public_write(self) -> bool:
        return bool(self.permissions & PERM_PUBLIC_WRITE)

    def with_timestamp(self, timestamp: int) -> HandleValue:
        return HandleValue(self.index, self.type, self.data, self.permissions, self.ttl_type, self.ttl,
                           timestamp, self.references)

    def same_ignoring_timestamp(self, other: HandleValue) -> bool:
        return self.with_timestamp(0) == other.with_timestamp(0)


def write_value(w: Writer, v: HandleValue) -> None:
    w.put_int4(v.index).put_int4(v.timestamp).put_byte(v.ttl_type).put_int4(v.ttl).put_byte(v.permissions)
    w.put_utf8(v.type).put_byte_array(v.data)
    w.put_int4(len(v.references))
    for ref in v.references:
        w.put_utf8(ref.handle).put_int4(ref.index)


def encode_value(v: HandleValue) -> bytes:
    w = Writer()
    write_value(w, v)
    return w.getvalue()


def read_value(r: Reader) -> HandleValue:
    index = r.get_int4()
    timestamp = r.get_int4()
    ttl_type = r.get_byte()
    ttl = r.get_int4()
    permissions = r.get_byte()
    vtype = r.get_utf8()
    data = r.get_byte_array()
    nrefs = r.get_count(8, "value reference")
    refs = tuple(ValueReference(r.get_utf8(), r.get_int4()) for _ in range(nrefs))
    return HandleValue(index, vtype, data, permissions, ttl_type, ttl, timestamp, refs)


def decode_value(data: bytes) -> HandleValue:
    r = Reader(data)
    v = read_value(r)
    r.expect_end("handle value")
    return v


MIN_VALUE_SIZE = 4 + 4 + 1 + 4 + 1 + 4 + 4 + 4


def read_values(r: Reader) -> tuple[HandleValue, ...]:
    """``int4 count | count x HandleValue``."""
    n = r.get_count(MIN_VALUE_SIZE, "handle value")
    return tuple(read_value(r) for _ in range(n))


def write_values(w: Writer, values: Sequence[HandleValue]) -> None:
    w.put_int4(len(values))
    for v in values:
        write_value(w, v)


def encode_values(values: Sequence[HandleValue]) -> bytes:
    w = Writer()
    write_values(w, values)
    return w.getvalue()


def decode_values(data: bytes) -> tuple[HandleValue, ...]:
    r = Reader(data)
    values = read_values(r)
    r.expect_end("handle values")
    return values


def split_encoded_values(data: bytes) -> list[tuple[HandleValue, bytes]]:
    """Decode ``count | values`` and keep each value's exact encoded bytes beside it."""
    r = Reader(data)
    n = r.get_count(MIN_VALUE_SIZE, "handle value")
    out = []
    for _ in range(n):
        start = r.pos
        v = read_value(r)
        out.append((v, data[start : r.pos]))
    r.expect_end("handle values")
    return out


def ascii_upper(b: bytes) -> bytes:
    """Upper-case a-z only (Handle.Net folds ASCII letters and compares other bytes exactly)."""
    return b.upper()  # bytes.upper() touches ASCII letters only


def type_matches_query(value_type: bytes, query: bytes) -> bool:
    """Query filter rule (values.md 1.4 rule 1): ``URL.`` matches ``URL`` and ``URL.us``; ``URL`` only ``URL``."""
    t = value_type.upper()
    q = query.upper()
    if q.endswith(b"."):
        return t.startswith(q) or t == q[:-1]
    return t == q


def has_type(value_type: bytes, wanted: bytes) -> bool:
    """hasType rule (values.md 1.4 rule 2): equal, or a subtype ``wanted.x`` of it, ignoring ASCII case."""
    t = value_type.upper()
    s = wanted.upper()
    return t == s or (t.startswith(s) and t[len(s) : len(s) + 1] == b".")


def filter_values(values: Iterable[HandleValue], indexes: Sequence[int], types: Sequence[bytes]
                  ) -> list[HandleValue]:
    """Resolution filter (wire.md 9.1): no lists = all; else index in ``indexes`` or type matches ``types``."""
    values = list(values)
    if not indexes and not types:
        return values
    idx = set(indexes)
    return [v for v in values if v.index in idx or any(type_matches_query(v.type, q) for q in types)]


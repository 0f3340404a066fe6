"""Bounds-checked reading and writing of the Handle protocol primitives (wire.md section 1).

Every decoder reads through a ``Reader``; it raises ``DecodeError`` and nothing else on bad input, and
never allocates more than the bytes it was given (counts are checked against the bytes remaining).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from hdlserver.errors import DecodeError

MAX_ARRAY_SIZE = 1_048_576  # Java Encoder.MAX_ARRAY_SIZE: the largest ByteArray a reader accepts

_INT2 = struct.Struct(">h")
_UINT2 = struct.Struct(">H")
_INT4 = struct.Struct(">i")
_UINT4 = struct.Struct(">I")
_INT8 = struct.Struct(">q")


class Reader:
    """Reads primitives from ``data[pos:end]``; every read is checked against ``end``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.data = bytes(data) if not isinstance(data, bytes) else data
        self.pos = pos
        self.end = len(self.data) if end is None else end
        if not 0 <= self.pos <= self.end <= len(self.data):
            raise DecodeError("reader bounds outside the buffer")

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _need(self, n: int, what: str) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise DecodeError(f"truncated {what}: need {n} bytes at offset {start}, have {self.end - start}")
        self.pos = start + n
        return start

    def get_byte(self) -> int:
        start = self._need(1, "byte")
        return self.data[start]

    def get_int2(self) -> int:
        return _INT2.unpack_from(self.data, self._need(2, "int2"))[0]

    def get_uint2(self) -> int:
        return _UINT2.unpack_from(self.data, self._need(2, "int2"))[0]

    def get_int4(self) -> int:
        return _INT4.unpack_from(self.data, self._need(4, "int4"))[0]

    def get_uint4(self) -> int:
        return _UINT4.unpack_from(self.data, self._need(4, "int4"))[0]

    def get_int8(self) -> int:
        return _INT8.unpack_from(self.data, self._need(8, "int8"))[0]

    def get_raw(self, n: int) -> bytes:
        start = self._need(n, "bytes")
        return self.data[start : start + n]

    def get_byte_array(self) -> bytes:
        n = self.get_int4()
        if n < 0 or n > MAX_ARRAY_SIZE:
            raise DecodeError(f"byte array length {n} out of range")
        return self.get_raw(n)

    get_utf8 = get_byte_array  # UTF8Strings are kept as their bytes; callers decode where text is needed

    def get_count(self, min_item_size: int, what: str) -> int:
        """Read an int4 count and check that ``count`` items of at least ``min_item_size`` bytes fit."""
        n = self.get_int4()
        if n < 0 or n * min_item_size > self.remaining:
            raise DecodeError(f"{what} count {n} does not fit in the {self.remaining} bytes left")
        return n

    def get_int_array(self) -> tuple[int, ...]:
        n = self.get_count(4, "int array")
        start = self._need(4 * n, "int array")
        return struct.unpack_from(f">{n}i", self.data, start)

    def get_string_array(self) -> tuple[bytes, ...]:
        n = self.get_count(4, "string array")
        return tuple(self.get_byte_array() for _ in range(n))

    def sub_reader(self, n: int) -> Reader:
        """A reader over the next ``n`` bytes; this reader skips past them."""
        start = self._need(n, "block")
        return Reader(self.data, start, start + n)

    def rest(self) -> bytes:
        start = self.pos
        self.pos = self.end
        return self.data[start : self.end]

    def expect_end(self, what: str) -> None:
        if self.pos != self.end:
            raise DecodeError(f"{self.end - self.pos} unexpected trailing bytes after {what}")


class Writer:
    """Appends primitives to a growing buffer."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def put_byte(self, v: int) -> Writer:
        self.buf.append(v & 0xFF)
        return self

    def put_int2(self, v: int) -> Writer:
        self.buf += _UINT2.pack(v & 0xFFFF)
        return self

    def put_int4(self, v: int) -> Writer:
        self.buf += _UINT4.pack(v & 0xFFFFFFFF)
        return self

    def put_int8(self, v: int) -> Writer:
        self.buf += _INT8.pack(v)
        return self

    def put_raw(self, b: bytes | bytearray | memoryview) -> Writer:
        self.buf += b
        return self

    def put_byte_array(self, b: bytes | bytearray | memoryview) -> Writer:
        self.buf += _UINT4.pack(len(b))
        self.buf += b
        return self

    put_utf8 = put_byte_array

    def put_int_array(self, values: Sequence[int]) -> Writer:
        self.put_int4(len(values))
        for v in values:
            self.put_int4(v)
        return self

    def put_string_array(self, values: Sequence[bytes]) -> Writer:
        self.put_int4(len(values))
        for v in values:
            self.put_byte_array(v)
        return self

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def __len__(self) -> int:
        return len(self.buf)


def encode_byte_array(b: bytes) -> bytes:
    return _UINT4.pack(len(b)) + b


def encode_string_array(values: Iterable[bytes]) -> bytes:
    w = Writer()
    items = list(values)
    return w.put_string_array(items).getvalue()


def to_utf8(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")

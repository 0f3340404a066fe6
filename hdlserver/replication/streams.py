"""The streams that follow a RETRIEVE_TXN_LOG or DUMP_HANDLES response (replication.md 5-7), both ways.

Pure bytes: encoders build one segment (the bytes between two sign points) at a time, so a stream is
produced lazily from the store; the decoders read through a ``ByteSource`` callback and yield one event
per record, so a stream is consumed in constant memory. In PK mode every segment is followed by
``int4 length | signature`` over exactly that segment; in TLS mode the channel is trusted and there are
no signature blocks.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

from hdlserver.auth import keys
from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Writer
from hdlserver.wire.values import HandleValue, decode_value, split_encoded_values

STREAM_PK = 0x00000000
STREAM_UNSIGNED = -1
STREAM_TLS = 0x544C5300  # "TLS\0"
TLS_MARKER = b"TLS\x00"
PK_HASH_ALGORITHM = b"SHA1"  # what Java always names; the signature is SHA1with<RSA|DSA>

TXN_FORMAT_SINGLE = 1
TXN_FORMAT_ALL_SOURCES = 2
STATUS_NEED_TO_REDUMP = 1
STATUS_SENDING_TRANSACTIONS = 2

# transaction stream record types (6.1, 6.2)
REC_END = 0
REC_HANDLE = 1
REC_QUEUE_NAME = 2
REC_QUEUE_LAST_TIMESTAMP = 3

# dump stream (7)
DUMP_FORMAT = 2
DUMP_THIS_SERVER_INFO = 0
DUMP_HANDLE = 1
DUMP_HOMED_PREFIX = 2
DUMP_HANDLE_DATE = 3
DUMP_PREFIX_DATE = 4
DUMP_OTHER_SITE_INFO = 5
DUMP_ABSOLUTELY_DONE = 0xFF

ACTIONS_WITH_VALUES = frozenset({1, 3})  # create and update carry the handle's current values
MAX_SIGNATURE = 4096
MAX_STREAM_HANDLE = 65_536
MAX_STREAM_VALUES = 65_536
MAX_STREAM_VALUE = 4 << 20
MAX_INFO_TEXT = 16 << 20

_INT4 = struct.Struct(">i")


class StreamMode(Enum):
    PK = "pk"  # signature blocks at every sign point (HDL-TCP before 2.8, HTTP)
    TLS = "tls"  # "TLS\0", then a TLS handshake on the same socket; no signature blocks (HDL-TCP >= 2.8)
    UNSIGNED = "unsigned"  # -1, then bare segments: over HTTPS, whose handshake pinned the server key


class StreamError(DecodeError):
    """A replication stream that is malformed, cut short, or whose signature does not verify."""


# ---------------------------------------------------------------------------------------------------
# Writing


class SegmentSigner:
    """Frames segments for one stream: the preamble, then each segment (+ its signature in PK mode)."""

    def __init__(self, mode: StreamMode, private_key: keys.PrivateKey | None) -> None:
        if mode is StreamMode.PK and private_key is None:
            raise ValueError("a PK-signed stream needs the server's private key")
        self.mode = mode
        self.private_key = private_key

    def preamble(self) -> bytes:
        if self.mode is StreamMode.TLS:
            return TLS_MARKER
        if self.mode is StreamMode.UNSIGNED:
            return _INT4.pack(STREAM_UNSIGNED)
        return _INT4.pack(STREAM_PK) + Writer().put_byte_array(PK_HASH_ALGORITHM).getvalue()

    def segment(self, data: bytes) -> bytes:
        if self.mode is not StreamMode.PK:
            return data
        assert self.private_key is not None
        signature = keys.sign(self.private_key, data, PK_HASH_ALGORITHM)
        return data + _INT4.pack(len(signature)) + signature

    def unsigned(self, data: bytes) -> bytes:
        """Bytes outside any signed segment (the dump's final 0xFF)."""
        return data


def txn_stream_head(data_format: int, status: int) -> bytes:
    return Writer().put_int4(data_format).put_int4(status).getvalue()


def encode_txn_record(txn_id: int, handle: bytes, action: int, date_ms: int,
                      encoded_values: list[bytes] | None) -> bytes:
    """One HANDLE_RECORD; ``encoded_values`` (each one encoded HandleValue) for create and update."""
    w = Writer().put_byte(REC_HANDLE).put_int8(txn_id).put_byte_array(handle).put_byte(action).put_int8(date_ms)
    if action in ACTIONS_WITH_VALUES:
        values = encoded_values or []
        w.put_int4(len(values))
        for v in values:
            w.put_byte_array(v)
    return w.getvalue()


def txn_end(date_ms: int | None) -> bytes:
    """END; the single-source format carries the date the requester sends back next time."""
    w = Writer().put_byte(REC_END)
    if date_ms is not None:
        w.put_int8(date_ms)
    return w.getvalue()


def queue_name_record(name: bytes) -> bytes:
    return Writer().put_byte(REC_QUEUE_NAME).put_byte_array(name).getvalue()


def queue_last_timestamp_record(date_ms: int) -> bytes:
    return Writer().put_byte(REC_QUEUE_LAST_TIMESTAMP).put_int8(date_ms).getvalue()


def dump_head() -> bytes:
    return _INT4.pack(DUMP_FORMAT)


def dump_other_site_info(dct_text: str) -> bytes:
    return Writer().put_byte(DUMP_OTHER_SITE_INFO).put_byte_array(dct_text.encode("utf-8")).getvalue()


def dump_this_server_info(now_ms: int, last_txn_id: int) -> bytes:
    return Writer().put_byte(DUMP_THIS_SERVER_INFO).put_int8(now_ms).put_int8(last_txn_id).getvalue()


def dump_date(prefix: bool, handle: bytes, date_ms: int, priority: int) -> bytes:
    """A handle-date (3) or prefix-date (4) record: the replication date of one handle or homed prefix."""
    kind = DUMP_PREFIX_DATE if prefix else DUMP_HANDLE_DATE
    return Writer().put_byte(kind).put_byte_array(handle).put_int8(date_ms).put_int4(priority).getvalue()


def dump_handle(handle: bytes, encoded_values: list[bytes]) -> bytes:
    w = Writer().put_byte(DUMP_HANDLE).put_byte_array(handle).put_int4(len(encoded_values))
    for v in encoded_values:
        w.put_byte_array(v)
    return w.getvalue()


def dump_homed_prefix(prefix_handle: bytes) -> bytes:
    return Writer().put_byte(DUMP_HOMED_PREFIX).put_byte_array(prefix_handle).getvalue()


DUMP_DONE = bytes([DUMP_ABSOLUTELY_DONE])


# ---------------------------------------------------------------------------------------------------
# Reading

ByteSource = Callable[[int], bytes]
"""``read(n)`` returns exactly ``n`` bytes or raises (ConnectionError / OSError / StreamError)."""


class SegmentReader:
    """Reads a stream's primitives and checks the signature at each sign point (PK mode).

    ``public_key`` None means the channel is trusted (TLS pinned to the HS_SITE key): sign points are
    no-ops.
    """

    def __init__(self, read: ByteSource, public_key: keys.PublicKey | None) -> None:
        self._read = read
        self._public_key = public_key
        self._segment = bytearray()

    def raw(self, n: int) -> bytes:
        data = self._read(n)
        if len(data) != n:
            raise StreamError(f"replication stream cut short: wanted {n} bytes, got {len(data)}")
        if self._public_key is not None:
            self._segment += data
        return data

    def byte(self) -> int:
        return self.raw(1)[0]

    def int4(self) -> int:
        return _INT4.unpack(self.raw(4))[0]

    def int8(self) -> int:
        return struct.unpack(">q", self.raw(8))[0]

    def byte_array(self, limit: int, what: str) -> bytes:
        n = self.int4()
        if not 0 <= n <= limit:
            raise StreamError(f"replication stream: {what} of {n} bytes (at most {limit})")
        return self.raw(n)

    def sign_point(self) -> None:
        if self._public_key is None:
            return
        data = bytes(self._segment)
        self._segment.clear()
        n = _INT4.unpack(self._read(4))[0]
        if not 0 < n <= MAX_SIGNATURE:
            raise StreamError(f"replication stream: signature block of {n} bytes")
        signature = self._read(n)
        if not keys.verify(self._public_key, signature, data, PK_HASH_ALGORITHM):
            raise StreamError("replication stream: a signature does not verify")


def read_stream_type(read: ByteSource) -> int:
    """The int4 stream type; for PK also consumes the hash algorithm name."""
    kind = _INT4.unpack(read(4))[0]
    if kind == STREAM_PK:
        n = _INT4.unpack(read(4))[0]
        if not 0 <= n <= 64:
            raise StreamError(f"replication stream: hash algorithm name of {n} bytes")
        read(n)
    elif kind not in (STREAM_TLS, STREAM_UNSIGNED):
        raise StreamError(f"replication stream: unknown stream type 0x{kind & 0xFFFFFFFF:08x}")
    return kind


@dataclass(frozen=True, slots=True)
class TxnStreamHead:
    data_format: int
    status: int


@dataclass(frozen=True, slots=True)
class TxnRecord:
    txn_id: int
    handle: bytes
    action: int
    date_ms: int
    values: tuple[HandleValue, ...] | None


@dataclass(frozen=True, slots=True)
class QueueName:
    name: bytes


@dataclass(frozen=True, slots=True)
class QueueLastTimestamp:
    date_ms: int


@dataclass(frozen=True, slots=True)
class TxnStreamEnd:
    date_ms: int | None  # None in the all-sources format


TxnEvent = TxnStreamHead | TxnRecord | QueueName | QueueLastTimestamp | TxnStreamEnd


def _values(r: SegmentReader) -> tuple[HandleValue, ...]:
    count = r.int4()
    if not 0 <= count <= MAX_STREAM_VALUES:
        raise StreamError(f"replication stream: {count} values")
    out = []
    for _ in range(count):
        raw = r.byte_array(MAX_STREAM_VALUE, "value")
        try:
            out.append(decode_value(raw))
        except DecodeError as e:
            raise StreamError(f"replication stream: a value does not decode: {e}") from e
    return tuple(out)


def read_txn_stream(r: SegmentReader) -> Iterator[TxnEvent]:
    """Events of a transaction stream, ending with ``TxnStreamEnd`` (a NEED_TO_REDUMP head is followed
    directly by the end)."""
    data_format = r.int4()
    if data_format not in (TXN_FORMAT_SINGLE, TXN_FORMAT_ALL_SOURCES):
        raise StreamError(f"replication stream: unknown transaction stream format {data_format}")
    status = r.int4()
    r.sign_point()
    yield TxnStreamHead(data_format, status)
    while True:
        kind = r.byte()
        if kind == REC_END:
            date = r.int8() if data_format == TXN_FORMAT_SINGLE else None
            r.sign_point()
            yield TxnStreamEnd(date)
            return
        if kind == REC_HANDLE:
            txn_id = r.int8()
            handle = r.byte_array(MAX_STREAM_HANDLE, "handle")
            action = r.byte()
            date = r.int8()
            values = _values(r) if action in ACTIONS_WITH_VALUES else None
            r.sign_point()
            yield TxnRecord(txn_id, handle, action, date, values)
        elif kind == REC_QUEUE_NAME:
            name = r.byte_array(MAX_STREAM_HANDLE, "queue name")
            r.sign_point()
            yield QueueName(name)
        elif kind == REC_QUEUE_LAST_TIMESTAMP:
            date = r.int8()
            r.sign_point()
            yield QueueLastTimestamp(date)
        else:
            raise StreamError(f"replication stream: unknown transaction record type {kind}")


@dataclass(frozen=True, slots=True)
class DumpThisServerInfo:
    date_ms: int
    last_txn_id: int


@dataclass(frozen=True, slots=True)
class DumpOtherSiteInfo:
    dct_text: str


@dataclass(frozen=True, slots=True)
class DumpDate:
    prefix: bool  # a prefix-date (nasDates) record, else a handle-date one
    handle: bytes
    date_ms: int
    priority: int


@dataclass(frozen=True, slots=True)
class DumpHandle:
    handle: bytes
    values: tuple[HandleValue, ...]


@dataclass(frozen=True, slots=True)
class DumpHomedPrefix:
    prefix_handle: bytes


@dataclass(frozen=True, slots=True)
class DumpDone:
    pass


DumpEvent = DumpThisServerInfo | DumpOtherSiteInfo | DumpDate | DumpHandle | DumpHomedPrefix | DumpDone


def read_dump_stream(r: SegmentReader) -> Iterator[DumpEvent]:
    """Events of a dump stream; a stream without the final 0xFF raises (a failed dump)."""
    data_format = r.int4()
    r.sign_point()
    if data_format < 1:
        raise StreamError(f"replication stream: unknown dump format {data_format}")
    while True:
        kind = r.byte()
        if kind == DUMP_ABSOLUTELY_DONE:
            yield DumpDone()
            return
        if kind == DUMP_THIS_SERVER_INFO:
            event: DumpEvent = DumpThisServerInfo(r.int8(), r.int8())
        elif kind == DUMP_OTHER_SITE_INFO:
            event = DumpOtherSiteInfo(r.byte_array(MAX_INFO_TEXT, "replication info").decode("utf-8", "replace"))
        elif kind in (DUMP_HANDLE_DATE, DUMP_PREFIX_DATE):
            event = DumpDate(kind == DUMP_PREFIX_DATE, r.byte_array(MAX_STREAM_HANDLE, "handle"), r.int8(), r.int4())
        elif kind == DUMP_HANDLE:
            event = DumpHandle(r.byte_array(MAX_STREAM_HANDLE, "handle"), _values(r))
        elif kind == DUMP_HOMED_PREFIX:
            event = DumpHomedPrefix(r.byte_array(MAX_STREAM_HANDLE, "prefix"))
        else:
            raise StreamError(f"replication stream: unknown dump record type {kind}")
        r.sign_point()
        yield event
        if data_format < 2 and isinstance(event, DumpThisServerInfo):
            yield DumpDone()
            return


def split_values(encoded: bytes) -> list[bytes]:
    """``int4 count | values`` as stored, as one encoded value per item (the streams length-prefix each)."""
    return [raw for _value, raw in split_encoded_values(encoded)]

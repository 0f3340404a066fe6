"""The 20-byte message envelope, protocol version rules and UDP splitting/reassembly (wire.md 3, 6, 12.2).

Sans-IO: the reassembler is fed datagrams and a clock value by its caller and never sets timers.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from hdlserver.errors import DecodeError
from hdlserver.wire.codes import EnvelopeFlag

ENVELOPE_SIZE = 20
MAX_MESSAGE_LENGTH = 262_144  # Java Common.MAX_MESSAGE_LENGTH
UDP_MAX_DATAGRAM = 512  # Java's receive buffer on both sides
UDP_PAYLOAD = UDP_MAX_DATAGRAM - ENVELOPE_SIZE  # message bytes per datagram
SERVER_VERSION = (2, 11)

_ENVELOPE = struct.Struct(">BBBBiiii")
_ENVELOPE_OUT = struct.Struct(">BBBBIIII")  # ids may be given signed or unsigned; both encode alike


@dataclass(slots=True)
class Envelope:
    major: int
    minor: int
    suggested_major: int
    suggested_minor: int
    encrypted: bool = False
    truncated: bool = False
    compressed: bool = False
    session_id: int = 0  # signed int4, as Java reads it
    request_id: int = 0  # signed int4: -1 is the early-error id
    sequence: int = 0  # UDP packet number
    message_length: int = 0  # bytes after the envelope (whole message, not one datagram)

    @property
    def version(self) -> tuple[int, int]:
        return (self.major, self.minor)

    @property
    def suggested(self) -> tuple[int, int]:
        return (self.suggested_major, self.suggested_minor)


def decode_envelope(data: bytes | bytearray | memoryview, offset: int = 0) -> Envelope:
    if offset < 0 or len(data) - offset < ENVELOPE_SIZE:
        raise DecodeError("message envelope shorter than 20 bytes")
    major, minor, flags, sugg_minor, session_id, request_id, sequence, length = _ENVELOPE.unpack_from(
        data, offset)
    if not 0 <= length <= MAX_MESSAGE_LENGTH:
        raise DecodeError(f"Invalid message length: {length}")
    sugg_major = flags & EnvelopeFlag.SUGGESTED_MAJOR_MASK
    if sugg_major == 0:  # wire.md 3 rule 1: "not stated" means the message's own version
        sugg_major, sugg_minor = major, minor
    return Envelope(major, minor, sugg_major, sugg_minor,
                    encrypted=bool(flags & EnvelopeFlag.EC), truncated=bool(flags & EnvelopeFlag.TC),
                    compressed=bool(flags & EnvelopeFlag.CP), session_id=session_id,
                    request_id=request_id, sequence=sequence, message_length=length)


def encode_envelope(env: Envelope) -> bytes:
    for name in ("major", "minor", "suggested_minor"):
        if not 0 <= getattr(env, name) <= 0xFF:
            raise ValueError(f"envelope {name} {getattr(env, name)} does not fit in a byte")
    # Java ORs the whole suggested-major byte into the flag byte; above 3 it would corrupt the flags.
    if not 0 <= env.suggested_major <= EnvelopeFlag.SUGGESTED_MAJOR_MASK:
        raise ValueError(f"suggested major version {env.suggested_major} does not fit in 2 bits")
    flags = env.suggested_major
    if env.compressed:
        flags |= EnvelopeFlag.CP
    if env.encrypted:
        flags |= EnvelopeFlag.EC
    if env.truncated:
        flags |= EnvelopeFlag.TC
    mask = 0xFFFFFFFF
    return _ENVELOPE_OUT.pack(env.major, env.minor, flags, env.suggested_minor, env.session_id & mask,
                              env.request_id & mask, env.sequence & mask, env.message_length & mask)


def version_at_least(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Java ``hasEqualOrGreaterVersion``: is version ``a`` >= ``b`` (wire.md 6, incl. the 5.x rule)?"""
    if a[0] == 5:  # an old client bug sent 5.0 for 2.0: 5.x only compares against 5.x
        return b[0] == 5 and a[1] >= b[1]
    if b[0] == 5:
        return True
    return a >= b


def response_version(request_suggested: tuple[int, int]) -> tuple[int, int]:
    """Version of the response to a request that suggested ``request_suggested`` (wire.md 6 rule 3)."""
    if version_at_least(request_suggested, SERVER_VERSION):
        return SERVER_VERSION
    return request_suggested


def split_for_udp(env: Envelope, message: bytes) -> list[bytes]:
    """Whole datagrams carrying ``message``: 492-byte chunks numbered from 0, TC set when more than one.

    Every datagram repeats the envelope with MessageLength = the whole message length (wire.md 12.2).
    """
    chunks = [message[i : i + UDP_PAYLOAD] for i in range(0, len(message), UDP_PAYLOAD)] or [b""]
    multi = len(chunks) > 1
    return [encode_envelope(replace(env, truncated=multi, sequence=seq, message_length=len(message))) + chunk
            for seq, chunk in enumerate(chunks)]


def _packet_count(message_length: int) -> int:
    return max(1, -(-message_length // UDP_PAYLOAD))


@dataclass(slots=True)
class _Pending:
    started: float
    message_length: int
    count: int
    first: Envelope  # envelope of packet 0 once it has arrived, else of the first packet seen
    chunks: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class UdpReassembler:
    """Joins the datagrams of multi-packet UDP messages (wire.md 12.2).

    Messages are keyed by (source host, RequestId); packets may come in any order and duplicates are
    ignored. Memory is bounded: at most ``max_pending`` incomplete messages and ``max_bytes`` buffered
    payload bytes; the oldest incomplete messages are dropped to make room, and a packet that still does
    not fit is refused. ``expire(now)`` drops messages whose first packet is older than ``timeout``.

    A datagram without TC is a whole message, except that a MessageLength above one datagram's payload
    is reassembled too: Java servers leave TC clear on their multi-packet responses (wire.md 12.2 quirk).
    """

    def __init__(self, max_pending: int = 1024, timeout: float = 5.0, max_bytes: int = 16 * 1024 * 1024
                 ) -> None:
        if max_pending < 1 or max_bytes < UDP_PAYLOAD:
            raise ValueError("reassembler limits too small")
        self.max_pending = max_pending
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._pending: OrderedDict[tuple[object, int], _Pending] = OrderedDict()  # oldest first
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def add(self, source: tuple, datagram: bytes, now: float) -> tuple[Envelope, bytes] | None:
        env = decode_envelope(datagram)
        payload = bytes(datagram[ENVELOPE_SIZE:])
        length = env.message_length
        if not env.truncated and length <= UDP_PAYLOAD:
            if env.sequence != 0 or len(payload) != length:
                raise DecodeError(f"single datagram carries {len(payload)} bytes for a message of {length}")
            return env, payload
        count = _packet_count(length)
        if not 0 <= env.sequence < count:
            raise DecodeError(f"sequence number {env.sequence} outside 0..{count - 1}")
        expected = UDP_PAYLOAD if env.sequence < count - 1 else length - UDP_PAYLOAD * (count - 1)
        if len(payload) != expected:
            raise DecodeError(f"packet {env.sequence} carries {len(payload)} bytes, expected {expected}")

        key = (source[0], env.request_id)
        entry = self._pending.get(key)
        if entry is not None and now - entry.started > self.timeout:
            self._drop(key)
            entry = None
        if entry is None:
            entry = self._start(key, env, now)
        elif entry.message_length != length:
            raise DecodeError(f"packet {env.sequence} gives message length {length}, "
                              f"earlier packets {entry.message_length}")
        if env.sequence in entry.chunks:
            return None
        if not self._make_room(len(payload), keep=key):
            self._drop(key)
            return None
        entry.chunks[env.sequence] = payload
        entry.size += len(payload)
        self._bytes += len(payload)
        if env.sequence == 0:
            entry.first = env
        if len(entry.chunks) < entry.count:
            return None
        self._drop(key)
        return replace(entry.first, sequence=0), b"".join(entry.chunks[i] for i in range(entry.count))

    def expire(self, now: float) -> int:
        """Drop incomplete messages older than the timeout; returns how many were dropped."""
        stale = [key for key, entry in self._pending.items() if now - entry.started > self.timeout]
        for key in stale:
            self._drop(key)
        return len(stale)

    def _start(self, key: tuple[object, int], env: Envelope, now: float) -> _Pending:
        while len(self._pending) >= self.max_pending:
            self._drop(next(iter(self._pending)))
        entry = _Pending(started=now, message_length=env.message_length,
                         count=_packet_count(env.message_length), first=env)
        self._pending[key] = entry
        return entry

    def _make_room(self, n: int, keep: tuple[object, int]) -> bool:
        """Drop the oldest other messages until ``n`` more bytes fit; False if they cannot."""
        while self._bytes + n > self.max_bytes:
            victim = next((k for k in self._pending if k != keep), None)
            if victim is None:
                return False
            self._drop(victim)
        return True

    def _drop(self, key: tuple[object, int]) -> None:
        entry = self._pending.pop(key)
        self._bytes -= entry.size

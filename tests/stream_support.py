"""Replication streams in memory, for tests: bytes read as a connection reads them, and a scripted source
standing in for ``puller.open_stream``."""

from __future__ import annotations

import socket
from collections.abc import Iterator

from hdlserver.auth import keys
from hdlserver.replication.puller import StreamConnection
from hdlserver.replication.streams import ByteSource, SegmentReader, SegmentSigner, StreamMode
from hdlserver.wire.site import ServerInfo


def byte_source(data: bytes) -> ByteSource:
    """``read(n)``: the next ``n`` bytes, or ConnectionError when fewer are left (a cut connection)."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ConnectionError("connection closed by the server")
        pos += n
        return data[pos - n : pos]

    return read


def unsigned_reader(segments: Iterator[bytes], trailer: bytes = b"") -> SegmentReader:
    """A reader over segments framed without signature blocks (what a TLS stream carries inside TLS)."""
    signer = SegmentSigner(StreamMode.UNSIGNED, None)
    return SegmentReader(byte_source(b"".join(signer.segment(s) for s in segments) + trailer), None)


class ScriptedSource:
    """``fetch`` for the mirror and the dump: each call records its request body and takes the next scripted
    answer (the bytes of a stream signed by ``key``'s private half, or an exception to raise)."""

    def __init__(self, key: keys.PrivateKey, body_type: type, *answers: bytes | Exception) -> None:
        self.key = key
        self.body_type = body_type
        self.answers: list[bytes | Exception] = list(answers)
        self.requests: list[object] = []

    def __call__(self, server: ServerInfo, opcode: int, body: object, identity: object,
                 timeout: float) -> StreamConnection:
        assert isinstance(body, self.body_type)
        self.requests.append(body)
        answer = self.answers.pop(0) if self.answers else b""
        if isinstance(answer, Exception):
            raise answer
        return StreamConnection(socket.socket(), SegmentReader(byte_source(answer), self.key.public_key()))

"""One native message POSTed over HTTP or HTTPS and its answer read back, for the pull side (blocking, one
connection per request, as Java's ``HandleResolver.sendHttpOrHttpsRequest``).

The request is ``POST /`` with Accept and Content-Type ``application/x-hdl-message`` and the envelope +
message as the body. The answer's body starts with the response message; after a RETRIEVE_TXN_LOG or
DUMP_HANDLES success the replication stream follows in the same body. Java's server leaves the length of
such a body open, so all three framings are read: Content-Length, chunked, and up to the close. Every read
is bounded: the head by ``MAX_HEAD_LINE`` per line and ``MAX_HEAD_LINES`` lines, chunk-size lines likewise,
and the socket by its timeout.
"""

from __future__ import annotations

import socket

from hdlserver.client.resolver import HandleResponseError
from hdlserver.replication.streams import StreamError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope

HDL_MESSAGE_TYPE = "application/x-hdl-message"
USER_AGENT = "hdlserver-mirror"
MAX_HEAD_LINE = 8192
MAX_HEAD_LINES = 100
RECV_SIZE = 65536


class _Buffered:
    """A socket read through a buffer: lines for the head and chunk sizes, bytes for the body."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(RECV_SIZE)
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def line(self, what: str) -> bytes:
        while True:
            at = self.buffer.find(b"\n")
            if at >= 0:
                line = bytes(self.buffer[:at])
                del self.buffer[: at + 1]
                return line.rstrip(b"\r")
            if len(self.buffer) > MAX_HEAD_LINE:
                raise StreamError(f"HTTP answer: {what} longer than {MAX_HEAD_LINE} bytes")
            if not self._fill():
                raise ConnectionError(f"the connection closed in the HTTP {what}")

    def some(self, limit: int) -> bytes:
        """Up to ``limit`` bytes (at least one), b"" only at the end of the connection."""
        if not self.buffer:
            self._fill()
        data = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        return data


class HttpBody:
    """The body of one HTTP answer, read in its framing; ``read_exact`` is a ``streams.ByteSource``."""

    def __init__(self, conn: _Buffered, length: int | None, chunked: bool) -> None:
        self._conn = conn
        self._left = length  # bytes left: of the body (Content-Length) or of the current chunk
        self._chunked = chunked
        self._done = length == 0 and not chunked

    def _next_chunk(self) -> None:
        size_line = self._conn.line("chunk size").split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise StreamError(f"HTTP answer: bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            for _ in range(MAX_HEAD_LINES):  # trailer fields up to the blank line
                if not self._conn.line("trailer"):
                    break
            self._done = True
        self._left = size

    def _some(self, limit: int) -> bytes:
        if self._done:
            return b""
        if self._chunked and not self._left:
            self._next_chunk()
            if self._done:
                return b""
        if self._left is not None:
            limit = min(limit, self._left)
        data = self._conn.some(limit)
        if self._left is not None:
            if not data:
                raise ConnectionError("the connection closed before the end of the HTTP body")
            self._left -= len(data)
            if self._chunked and not self._left:
                self._conn.line("chunk end")
            elif not self._chunked and not self._left:
                self._done = True
        return data

    def read_exact(self, n: int) -> bytes:
        parts = []
        while n:
            data = self._some(n)
            if not data:
                raise ConnectionError("the HTTP body ended before the stream did")
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def message(self) -> bytes:
        """The next envelope + message of the body."""
        head = self.read_exact(ENVELOPE_SIZE)
        return head + self.read_exact(decode_envelope(head).message_length)


def request_head(host: str, port: int, secure: bool, length: int) -> bytes:
    """The head Java's resolver sends (a handle-less request goes to "/")."""
    default_port = 443 if secure else 80
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    lines = ["POST / HTTP/1.1", f"Host: {host_header}", f"Accept: {HDL_MESSAGE_TYPE}", f"User-Agent: {USER_AGENT}",
             f"Content-Type: {HDL_MESSAGE_TYPE}", f"Content-Length: {length}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def read_answer_head(conn: _Buffered) -> HttpBody:
    """Parse the status line and headers; anything but 200 is a failed exchange."""
    status_line = conn.line("status line")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise StreamError(f"not an HTTP answer: {status_line[:60]!r}")
    headers: dict[bytes, bytes] = {}
    for _ in range(MAX_HEAD_LINES):
        line = conn.line("header")
        if not line:
            break
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise StreamError(f"HTTP answer with more than {MAX_HEAD_LINES} header lines")
    if parts[1] != b"200":
        raise HandleResponseError(ResponseCode.ERROR, f"HTTP {status_line[9:].decode('latin-1', 'replace')}")
    chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    length = headers.get(b"content-length")
    if chunked or length is None:
        return HttpBody(conn, None, chunked)
    try:
        return HttpBody(conn, int(length), False)
    except ValueError:
        raise StreamError(f"HTTP answer: bad Content-Length {length[:40]!r}") from None


def post_message(sock: socket.socket, host: str, port: int, secure: bool, request: bytes) -> HttpBody:
    """POST ``request`` (envelope + message) on the connected ``sock``; the answer's body, unread."""
    sock.sendall(request_head(host, port, secure, len(request)) + request)
    return read_answer_head(_Buffered(sock))

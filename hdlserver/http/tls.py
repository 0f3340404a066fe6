"""HTTP and HTTPS on one port (server.md 3.2, wire.md 13.2): a connection whose first byte is 0x16 (a TLS
handshake record) or >= 0x80 (an SSLv2-style hello) is TLS, anything else is plain HTTP.

The listener accepts connections itself so that it can peek at the first byte before any transport reads
it; the socket is then handed to the event loop with or without TLS (``loop.connect_accepted_socket``).
Interfaces with ``http_only`` never look for TLS; ``https`` interfaces always expect it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
import tempfile
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from hdlserver.http.certificate import ServerCertificate

log = logging.getLogger("hdlserver.http")

TLS_HANDSHAKE_RECORD = 0x16


class TlsMode(Enum):
    PLAIN = "plain"  # http_only
    TLS = "tls"  # https: every connection is TLS
    DETECT = "detect"  # port unification by the first byte


def is_tls_first_byte(first: int) -> bool:
    return first == TLS_HANDSHAKE_RECORD or first >= 0x80


def server_ssl_context(certificate: ServerCertificate) -> ssl.SSLContext:
    """A server context presenting ``certificate``; TLS 1.2 and later, no client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    password = secrets.token_hex(16).encode("ascii")
    key_pem = certificate.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.BestAvailableEncryption(password))
    # ssl reads keys only from files: write them to a private directory, the key encrypted with a password
    # that only lives in memory, and remove them right away.
    with tempfile.TemporaryDirectory(prefix="hdl-tls-") as directory:
        cert_file = Path(directory) / "chain.pem"
        key_file = Path(directory) / "key.pem"
        cert_file.write_bytes(certificate.chain_pem)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        context.load_cert_chain(cert_file, key_file, password=password)
    return context


class UnifiedListener(asyncio.AbstractServer):
    """A listening socket whose connections are plain or TLS, chosen per connection by ``mode``.

    ``protocol_factory`` builds the protocol of each accepted connection; ``max_connections`` counts the
    connections whose start is still pending plus ``open_connections()`` (the protocols' own count).
    """

    def __init__(self, sock: socket.socket, protocol_factory: Callable[[], asyncio.Protocol], mode: TlsMode,
                 ssl_context: ssl.SSLContext | None, start_timeout: float, max_connections: int,
                 open_connections: Callable[[], int], close_connections: Callable[[], None]) -> None:
        if mode is not TlsMode.PLAIN and ssl_context is None:
            raise ValueError("a TLS-capable listener needs an SSL context")
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._factory = protocol_factory
        self._mode = mode
        self._ssl = ssl_context
        self._start_timeout = start_timeout
        self._max_connections = max_connections
        self._open_connections = open_connections
        self._close_connections = close_connections
        self._starting: set[asyncio.Task[None]] = set()
        self._accepting = self._loop.create_task(self._accept_loop())

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._sock.fileno() < 0 else (self._sock,)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._accepting.done()

    async def start_serving(self) -> None:
        """Serving starts at construction."""

    async def serve_forever(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._accepting

    def close(self) -> None:
        """Stop accepting, abandon connections still being started and close the open ones."""
        self._accepting.cancel()
        for task in list(self._starting):
            task.cancel()
        self._sock.close()
        self._close_connections()

    async def wait_closed(self) -> None:
        await asyncio.gather(self._accepting, *self._starting, return_exceptions=True)

    async def _accept_loop(self) -> None:
        while True:
            try:
                conn, _addr = await self._loop.sock_accept(self._sock)
            except OSError as exc:
                if self._sock.fileno() < 0:
                    return
                log.warning("accept failed on the HTTP interface: %s", exc)
                await asyncio.sleep(0.1)  # e.g. out of file descriptors: do not spin
                continue
            if len(self._starting) + self._open_connections() >= self._max_connections:
                log.warning("refusing an HTTP connection: %d connections open", self._max_connections)
                conn.close()
                continue
            conn.setblocking(False)
            task = self._loop.create_task(self._start(conn))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start(self, conn: socket.socket) -> None:
        try:
            use_tls = self._mode is TlsMode.TLS
            if self._mode is TlsMode.DETECT:
                first = await asyncio.wait_for(self._peek_first_byte(conn), self._start_timeout)
                if first is None:  # closed before sending anything
                    conn.close()
                    return
                use_tls = is_tls_first_byte(first)
            await self._loop.connect_accepted_socket(
                self._factory, conn, ssl=self._ssl if use_tls else None,
                ssl_handshake_timeout=self._start_timeout if use_tls else None)
        except asyncio.CancelledError:
            conn.close()
            raise
        except Exception as exc:
            # garbage that looked like TLS, a client that never spoke or left during the handshake
            log.debug("HTTP connection not started: %r", exc)
            conn.close()

    async def _peek_first_byte(self, conn: socket.socket) -> int | None:
        """The first byte the client sent, left in the socket; None when it closed without sending."""
        fd = conn.fileno()
        while True:
            readable: asyncio.Future[None] = self._loop.create_future()
            self._loop.add_reader(fd, lambda f=readable: f.done() or f.set_result(None))
            try:
                await readable
            finally:
                self._loop.remove_reader(fd)
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except BlockingIOError:  # a spurious wake-up: wait again
                continue
            return first[0] if first else None


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock

"""Writing a replication stream on the connection that carried the request (the asyncio adapter).

The TCP protocol (or the HTTP tunnel, after the HTTP head) hands its transport over after writing the
response; from then on this module owns the connection: it writes the preamble, upgrades to TLS as the TLS
server when the preamble is "TLS\\0" (only HDL-TCP streams are; with the self-signed certificate of the
HS_SITE key, as Java does, so a Java mirror's key pinning accepts it), writes the segments with flow
control (at most ``HIGH_WATER`` bytes buffered; a mirror that stops reading for ``replication_timeout`` is
dropped) and closes.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from cryptography.hazmat.primitives.asymmetric import dsa

from hdlserver.auth import keys
from hdlserver.core.context import ServerState
from hdlserver.http.certificate import CERTIFICATE_KEY_BITS, ServerCertificate, self_signed_certificate
from hdlserver.http.tls import server_ssl_context
from hdlserver.replication.source import OutgoingStream
from hdlserver.replication.streams import TLS_MARKER

log = logging.getLogger("hdlserver.replication")

HIGH_WATER = 256 * 1024
CHUNK = 64 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0
YIELD_EVERY = 64  # segments between chances for other connections to run

_contexts: dict[int, ssl.SSLContext] = {}  # by id() of the server key, which lives as long as the server
_tasks: set[asyncio.Task[None]] = set()


def stream_ssl_context(state: ServerState) -> ssl.SSLContext:
    """The TLS server context for streams, made once per server key: a self-signed certificate of the server
    key itself (Java mirrors pin the HS_SITE key, so an operator's serverCertificate.pem for HTTPS does not
    serve here); for DSA keys, whose holders' certificates Java accepts unpinned, a fresh RSA key signs."""
    key = state.signer.private_key
    context = _contexts.get(id(key))
    if context is None:
        tls_key = keys.generate_key_pair("RSA", CERTIFICATE_KEY_BITS) if isinstance(key, dsa.DSAPrivateKey) else key
        context = server_ssl_context(ServerCertificate((self_signed_certificate(tls_key),), tls_key))
        _contexts[id(key)] = context
    return context


class _StreamProtocol(asyncio.Protocol):
    """Flow control and close notice for the handed-over connection; the peer sends nothing more."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.lost = False

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        pass  # a mirror sends nothing while it reads the stream

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.writable.set()


def start_stream(state: ServerState, transport: asyncio.Transport, stream: OutgoingStream, peer: str) -> None:
    """Take over ``transport`` and write ``stream`` in a task of its own."""
    protocol = _StreamProtocol()
    transport.set_protocol(protocol)
    transport.set_write_buffer_limits(high=HIGH_WATER)
    task = asyncio.get_running_loop().create_task(_send(state, transport, protocol, stream, peer))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _send(state: ServerState, transport: asyncio.Transport, protocol: _StreamProtocol,
                stream: OutgoingStream, peer: str) -> None:
    sent = 0
    try:
        preamble = stream.preamble()
        transport.write(preamble)
        if preamble == TLS_MARKER:  # what the client reads as "the TLS handshake follows"
            loop = asyncio.get_running_loop()
            upgraded = await loop.start_tls(transport, protocol, stream_ssl_context(state), server_side=True,
                                            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
            if upgraded is None:
                raise ConnectionError("the TLS upgrade did not complete")
            transport = upgraded
        stall = state.settings.server.replication_timeout_ms / 1000.0
        pending: list[bytes] = []
        size = 0
        for count, chunk in enumerate(stream.body(), 1):
            pending.append(chunk)
            size += len(chunk)
            if size >= CHUNK:
                sent += await _write(transport, protocol, pending, stall)
                pending, size = [], 0
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        sent += await _write(transport, protocol, pending, stall)
        log.info("sent the replication %s to %s (%d bytes)", stream.what, peer, sent)
    except (ConnectionError, OSError, ssl.SSLError, TimeoutError) as e:
        log.warning("replication %s to %s stopped after %d bytes: %s", stream.what, peer, sent, e)
    except Exception:
        log.exception("replication %s to %s failed after %d bytes", stream.what, peer, sent)
    finally:
        transport.close()


async def _write(transport: asyncio.Transport, protocol: _StreamProtocol, chunks: list[bytes], stall: float) -> int:
    """Write, then wait until the buffer drains below the high-water mark; a mirror that reads nothing for
    ``stall`` seconds (``replication_timeout``) loses its connection."""
    if protocol.lost:
        raise ConnectionError("the mirror closed the connection")
    data = b"".join(chunks)
    if data:
        transport.write(data)
    await asyncio.wait_for(protocol.writable.wait(), stall)
    if protocol.lost:
        raise ConnectionError("the mirror closed the connection")
    return len(data)

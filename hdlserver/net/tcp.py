"""TCP listener: framed messages on a stream (wire.md 12.1).

Several requests may follow one another on a connection and are answered in order: plain resolutions
here, on the event loop, any other request in the slow path's worker thread (slow_path.py), during which
the connection reads nothing more. The connection closes after ``max_idle_time`` without data (not while
a request of it is in the worker), on a framing error (after an RC 4 answer), or when the client closes it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from hdlserver.core.context import TRANSPORT_TCP, InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher, Outcome
from hdlserver.core.resolve import fast_answer
from hdlserver.core.responder import encode_early_error
from hdlserver.errors import DecodeError
from hdlserver.net.access import AccessLog
from hdlserver.net.slow_path import SlowPath, SlowPathClosed
from hdlserver.replication.sender import start_stream
from hdlserver.replication.source import OutgoingStream
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope

log = logging.getLogger("hdlserver.tcp")

TOO_BUSY = "Server too busy"


class TcpConnections:
    """Counts open connections so that a listener can refuse more than its limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: set[TcpHandleProtocol] = set()

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()


class TcpHandleProtocol(asyncio.Protocol):
    def __init__(self, state: ServerState, dispatcher: Dispatcher, role: InterfaceRole, access: AccessLog,
                 connections: TcpConnections, idle_timeout: float, slow: SlowPath) -> None:
        self.state = state
        self.dispatcher = dispatcher
        self.slow = slow
        self.waiting = False  # a request of this connection is in the slow path
        self.role = role
        self.access = access
        self.connections = connections
        self.idle_timeout = idle_timeout
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.idle_handle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        if len(self.connections.open) >= self.connections.limit:
            log.warning("refusing TCP connection from %s: %d connections open", self.peer,
                        len(self.connections.open))
            transport.close()
            return
        self.connections.open.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.open.discard(self)
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm_idle_timer(self) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        self.idle_handle = asyncio.get_running_loop().call_later(self.idle_timeout, self._idle)

    def _idle(self) -> None:
        if self.waiting:  # the client waits for us, not the other way round
            self._arm_idle_timer()
        else:
            self.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm_idle_timer()
        self._process_safely()

    def _process_safely(self) -> None:
        try:
            self._process_buffer()
        except Exception:
            log.exception("TCP request from %s failed", self.peer)
            self.close()

    def _process_buffer(self) -> None:
        while self.transport is not None and not self.waiting and len(self.buffer) >= ENVELOPE_SIZE:
            started = time.monotonic()
            try:
                envelope = decode_envelope(self.buffer)
            except DecodeError as exc:
                self._refuse_garbage(str(exc))
                return
            end = ENVELOPE_SIZE + envelope.message_length
            if len(self.buffer) < end:
                return
            frame = bytes(self.buffer[:end])
            del self.buffer[:end]
            fast = fast_answer(self.state, frame)
            if fast is not None:
                self.transport.write(fast.response)
                if self.access.enabled:
                    self.access.record(self.peer, fast.suggested, started, fast.opcode, fast.response_code,
                                       fast.handle)
                continue
            if self.slow.full:
                self.transport.write(encode_early_error(self.state, ResponseCode.SERVER_TOO_BUSY, TOO_BUSY,
                                                        envelope.request_id))
                continue
            info = RequestInfo(TRANSPORT_TCP, self.peer, self.role, started)
            try:
                future = self.slow.run(self.dispatcher.handle, envelope, frame[ENVELOPE_SIZE:], info)
            except SlowPathClosed:
                self.close()
                return
            self.waiting = True
            self.transport.pause_reading()
            future.add_done_callback(functools.partial(self._answered, started=started))
            return

    def _answered(self, done: asyncio.Future[Outcome], *, started: float) -> None:
        """The slow path's answer (on the event loop): send it, then go on with what arrived meanwhile."""
        self.waiting = False
        try:
            outcome = done.result()
        except Exception:
            log.exception("TCP request from %s failed", self.peer)
            self.close()
            return
        if self.transport is None:
            return  # the client went away meanwhile
        self.transport.writelines(outcome.messages)
        self.access.record(self.peer, outcome.suggested, started, outcome.opcode, outcome.response_code,
                           outcome.handle, outcome.identity)
        stream = outcome.extra.get("stream")
        if stream is not None:  # replication: the connection now carries the stream, then closes
            self._hand_over(stream)
            return
        if outcome.close:
            self.close()
            return
        self.transport.resume_reading()
        self._arm_idle_timer()
        self._process_safely()

    def _hand_over(self, stream: OutgoingStream) -> None:
        transport, self.transport = self.transport, None
        self.connections.open.discard(self)
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if transport is not None:
            start_stream(self.state, transport, stream, self.peer)

    def _refuse_garbage(self, reason: str) -> None:
        """A frame whose envelope cannot be read: answer RC 4 (wire.md 12.6 rule 1) and close."""
        request_id = int.from_bytes(self.buffer[8:12], "big", signed=True) if len(self.buffer) >= 12 else -1
        log.info("closing TCP connection from %s: %s", self.peer, reason)
        if self.transport is not None:
            self.transport.write(encode_early_error(self.state, ResponseCode.PROTOCOL_ERROR,
                                                    f"Invalid message: {reason}", request_id=request_id))
        self.buffer.clear()
        self.close()

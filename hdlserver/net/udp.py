"""UDP listener: datagrams in, datagrams out (wire.md 12.2). A thin adapter over the sans-IO core.

Plain resolutions are answered here, on the event loop; every other request goes to the slow path's
worker thread (slow_path.py) and is answered when it completes.
"""

from __future__ import annotations

import asyncio
import logging
import time

from hdlserver.core.context import TRANSPORT_UDP, InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher, Outcome
from hdlserver.core.resolve import fast_answer
from hdlserver.core.responder import encode_early_error
from hdlserver.errors import DecodeError
from hdlserver.net.access import AccessLog
from hdlserver.net.slow_path import SlowPath, SlowPathClosed
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import (
    ENVELOPE_SIZE,
    UDP_MAX_DATAGRAM,
    UdpReassembler,
    decode_envelope,
    split_for_udp,
)

log = logging.getLogger("hdlserver.udp")

TOO_BUSY = "Server too busy"


def datagrams_of(response: bytes) -> list[bytes]:
    """One response message (envelope + message) as the datagrams that carry it."""
    if len(response) <= UDP_MAX_DATAGRAM:
        return [response]
    return split_for_udp(decode_envelope(response), response[ENVELOPE_SIZE:])


class UdpHandleProtocol(asyncio.DatagramProtocol):
    def __init__(self, state: ServerState, dispatcher: Dispatcher, role: InterfaceRole, access: AccessLog,
                 max_pending: int, slow: SlowPath) -> None:
        self.state = state
        self.dispatcher = dispatcher
        self.slow = slow
        self.role = role
        self.access = access
        self.reassembler = UdpReassembler(max_pending=max_pending)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        started = time.monotonic()
        transport = self.transport
        if transport is None:
            return
        try:
            fast = fast_answer(self.state, data)
            if fast is not None:
                response = fast.response
                if len(response) <= UDP_MAX_DATAGRAM:  # nearly always: skip the split (the hot path)
                    transport.sendto(response, addr)
                else:
                    for datagram in datagrams_of(response):
                        transport.sendto(datagram, addr)
                if self.access.enabled:
                    self.access.record(addr[0], fast.suggested, started, fast.opcode, fast.response_code,
                                       fast.handle)
                return
            try:
                complete = self.reassembler.add(addr[:2], data, started)
            except DecodeError:
                return  # unparseable UDP is dropped silently (wire.md 12.6)
            if complete is None:
                return
            envelope, message = complete
            if self.slow.full:
                transport.sendto(encode_early_error(self.state, ResponseCode.SERVER_TOO_BUSY, TOO_BUSY,
                                                    envelope.request_id), addr)
                return
            info = RequestInfo(TRANSPORT_UDP, addr[0], self.role, started)
            try:
                future = self.slow.run(self.dispatcher.handle, envelope, message, info)
            except SlowPathClosed:
                return  # stopping: as if the datagram had come a moment later
            future.add_done_callback(lambda done: self._answer(done, addr, started))
        except Exception:
            log.exception("UDP request from %s failed", addr[0])

    def _answer(self, done: asyncio.Future[Outcome], addr: tuple[str, int], started: float) -> None:
        """Send what the slow path answered (on the event loop)."""
        transport = self.transport
        try:
            outcome = done.result()
        except Exception:
            log.exception("UDP request from %s failed", addr[0])
            return
        if transport is None or transport.is_closing():
            return
        for response in outcome.messages:
            for datagram in datagrams_of(response):
                transport.sendto(datagram, addr)
        self.access.record(addr[0], outcome.suggested, started, outcome.opcode, outcome.response_code,
                           outcome.handle, outcome.identity)

    def expire(self) -> None:
        self.reassembler.expire(time.monotonic())

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)

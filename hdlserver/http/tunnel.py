"""Native Handle messages over HTTP (wire.md 13.2): the body of a POST is envelope + message, exactly as on
TCP, and the answer is a 200 whose body holds the response messages -- every part of a multi-part (CN)
answer, one after the other. Errors found before the request is decoded are Handle errors in a 200 too.

A RETRIEVE_TXN_LOG or DUMP_HANDLES success goes on with its replication stream in the same body, as Java's
native servlet writes it: PK-signed over HTTP, unsigned over HTTPS when the server key is not DSA
(replication/stream_choice.py). replication/sender.py writes the stream with the flow control of HDL-TCP,
and the body ends when the connection closes (protocol.HandOverResponse).
"""

from __future__ import annotations

import asyncio

from hdlserver.core.context import TRANSPORT_HTTP, TRANSPORT_HTTPS, InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.core.resolve import fast_answer
from hdlserver.core.responder import encode_early_error
from hdlserver.errors import DecodeError
from hdlserver.http.messages import HttpRequest, HttpResponse, empty_response
from hdlserver.http.protocol import HandOverResponse
from hdlserver.net.access import AccessLog
from hdlserver.replication.sender import start_stream
from hdlserver.replication.source import OutgoingStream
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope

HDL_MESSAGE_TYPE = "application/x-hdl-message"
INVALID_LENGTH = "Invalid message length"


def _header_mentions(request: HttpRequest, name: str, text: str) -> bool:
    return any(key == name and text in value.lower() for key, value in request.headers)


def is_native_request(request: HttpRequest) -> bool:
    """A POST whose Accept and Content-Type both name ``application/x-hdl-message`` (Java's test)."""
    return (request.method == "POST" and _header_mentions(request, "accept", HDL_MESSAGE_TYPE)
            and _header_mentions(request, "content-type", HDL_MESSAGE_TYPE))


class NativeTunnel:
    """Answers tunnelled messages; ``role`` applies to plain HTTP, ``tls_role`` to HTTPS connections."""

    def __init__(self, state: ServerState, dispatcher: Dispatcher, role: InterfaceRole, tls_role: InterfaceRole,
                 access: AccessLog) -> None:
        self.state = state
        self.dispatcher = dispatcher
        self.role = role
        self.tls_role = tls_role
        self.access = access

    def handle(self, request: HttpRequest) -> HttpResponse:
        data = request.body
        if data[:1] in (b"\n", b"\r"):  # Java clients may send one extra line break first
            data = data[1:]
        if len(data) < ENVELOPE_SIZE:
            return self._early_error(request, INVALID_LENGTH, data)
        try:
            envelope = decode_envelope(data)
        except DecodeError:
            return self._early_error(request, INVALID_LENGTH, data)
        end = ENVELOPE_SIZE + envelope.message_length
        if len(data) < end:
            text = f"Expecting {envelope.message_length} bytes, only received {len(data) - ENVELOPE_SIZE}"
            return self._early_error(request, text, data)
        frame = data[:end]
        fast = fast_answer(self.state, frame)
        if fast is not None:
            if self.state.metrics is not None:  # the dispatcher counts the others (MeteredDispatcher)
                self.state.metrics.recorder(TRANSPORT_HTTP).record(fast.opcode, fast.response_code,
                                                                   request.received)
            self.access.record(request.client, fast.suggested, request.received, fast.opcode, fast.response_code,
                               fast.handle)
            return self._answer([fast.response])
        role = self.tls_role if request.secure else self.role
        transport = TRANSPORT_HTTPS if request.secure else TRANSPORT_HTTP
        info = RequestInfo(transport, request.client, role, request.received)
        outcome = self.dispatcher.handle(envelope, frame[ENVELOPE_SIZE:], info)
        self.access.record(request.client, outcome.suggested, request.received, outcome.opcode,
                           outcome.response_code, outcome.handle, outcome.identity)
        stream = outcome.extra.get("stream")
        if isinstance(stream, OutgoingStream):
            return self._streamed(outcome.messages, stream, request.client)
        return self._answer(outcome.messages, close=outcome.close)

    def _streamed(self, messages: list[bytes], stream: OutgoingStream, peer: str) -> HandOverResponse:
        def take_over(transport: asyncio.Transport) -> None:
            start_stream(self.state, transport, stream, peer)

        return HandOverResponse(200, [("Content-Type", HDL_MESSAGE_TYPE)], b"".join(messages), take_over=take_over)

    def redirect_to_api(self, request: HttpRequest) -> HttpResponse:
        """GET on the native handler (proxy pages disabled): 302 to the REST resolution of the path."""
        return empty_response(302, ("Location", "/api/handles" + request.path))

    def _early_error(self, request: HttpRequest, text: str, data: bytes) -> HttpResponse:
        readable_id = len(data) >= 12 and not self.state.settings.server.java_compatible_early_errors
        request_id = int.from_bytes(data[8:12], "big", signed=True) if readable_id else -1
        self.access.record(request.client, (2, 3), request.received, 0, ResponseCode.PROTOCOL_ERROR, b"")
        return self._answer([encode_early_error(self.state, ResponseCode.PROTOCOL_ERROR, text,
                                                request_id=request_id)])

    @staticmethod
    def _answer(messages: list[bytes], close: bool = False) -> HttpResponse:
        return HttpResponse(200, [("Content-Type", HDL_MESSAGE_TYPE)], b"".join(messages), close=close)

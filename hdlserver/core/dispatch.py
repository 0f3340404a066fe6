"""From request bytes to response bytes: early checks, decoding, the op-code table, error mapping.

``Dispatcher.handle`` never raises for anything a client sends: every failure becomes a Handle error
response (wire.md 12), and a bug becomes RC 2 with the traceback in the error log.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from hdlserver.core.context import RequestInfo, ServerState
from hdlserver.core.resolve import resolve, site_info
from hdlserver.core.responder import RequestView, encode_early_error, encode_response
from hdlserver.errors import DecodeError, ProtocolError
from hdlserver.wire.bodies import ErrorBody
from hdlserver.wire.codes import ADMIN_OPCODES, OpCode, ResponseCode
from hdlserver.wire.envelope import Envelope
from hdlserver.wire.message import HEADER_SIZE, Message, decode_message

log = logging.getLogger("hdlserver.dispatch")

_HEADER = struct.Struct(">iiiHBBii")

# Admin operations a mirror refuses (wire.md 12.4); list operations are allowed on mirrors.
_PRIMARY_ONLY = frozenset({100, 101, 102, 103, 104, 300, 301, 1000, 1001, 1002, 1003})


@dataclass(slots=True)
class Outcome:
    """The response messages (each envelope + message) and what the access log records of them."""

    messages: list[bytes]
    opcode: int
    response_code: int
    handle: bytes = b""
    suggested: tuple[int, int] = (2, 11)
    identity: str = ""
    close: bool = False
    extra: dict[str, object] = field(default_factory=dict)


Handler = Callable[[ServerState, Message, RequestInfo], tuple[int, object]]


def _resolution(state: ServerState, msg: Message, info: RequestInfo) -> tuple[int, object]:
    return resolve(state, msg.body, msg.header.flags)  # type: ignore[arg-type]


def _site_info(state: ServerState, msg: Message, info: RequestInfo) -> tuple[int, object]:
    return site_info(state)


HANDLERS: dict[int, Handler] = {
    OpCode.RESOLUTION: _resolution,
    OpCode.GET_SITE_INFO: _site_info,
}


class Dispatcher:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.java_early_errors = state.settings.server.java_compatible_early_errors

    def _early(self, env: Envelope, code: int, text: str, opcode: int = 0) -> Outcome:
        rid = -1 if self.java_early_errors else env.request_id
        response = encode_early_error(self.state, code, text, request_id=rid, opcode=opcode)
        return Outcome([response], opcode, code, suggested=(env.suggested_major, env.suggested_minor))

    def handle(self, env: Envelope, message: bytes, info: RequestInfo) -> Outcome:
        self.state.stats.requests += 1
        suggested = (env.suggested_major, env.suggested_minor)
        if env.encrypted:
            if env.session_id <= 0:
                return self._early(env, ResponseCode.SESSION_FAILED,
                                   "Invalid session id. Unable to decrypt request message.")
            return self._early(env, ResponseCode.SESSION_TIMEOUT,
                               "Session information not available or time out. "
                               "Unable to decrypt request message.")
        if len(message) < HEADER_SIZE:
            return self._early(env, ResponseCode.PROTOCOL_ERROR, "Invalid message length")
        opcode, _rc, flags, _serial, recursion, _res, _exp, body_len = _HEADER.unpack_from(message)
        if opcode == 0:
            return self._early(env, ResponseCode.PROTOCOL_ERROR, "Unknown opCode in message: 0")
        view = RequestView(opcode=opcode, flags=flags & 0xFFFFFFFF, recursion=recursion,
                           session_id=env.session_id, request_id=env.request_id, suggested=suggested,
                           header_body=message[: HEADER_SIZE + max(0, body_len)])
        try:
            msg = decode_message(message, (env.major, env.minor))
        except DecodeError as exc:
            return self._error(view, ResponseCode.PROTOCOL_ERROR, f"Unable to parse request: {exc}")
        if msg.header.response_code != 0:
            return self._error(view, ResponseCode.PROTOCOL_ERROR, "Expected a request, got a response")
        handle = getattr(msg.body, "handle", b"")
        refusal = self._interface_refusal(opcode, info)
        if refusal:
            rid = -1 if self.java_early_errors else env.request_id
            return Outcome([encode_early_error(self.state, ResponseCode.PROTOCOL_ERROR, refusal,
                                               request_id=rid, opcode=opcode)],
                           opcode, ResponseCode.PROTOCOL_ERROR, handle, suggested)
        if env.session_id > 0:
            return self._error(view, ResponseCode.SESSION_TIMEOUT,
                               "Session information not available or time out", handle)
        if opcode in _PRIMARY_ONLY and not self.state.primary:
            return self._error(view, ResponseCode.SERVER_NOT_RESP, "Not a primary server", handle)
        handler = HANDLERS.get(opcode)
        if handler is None:
            return self._error(view, ResponseCode.OPERATION_NOT_SUPPORTED,
                               f"Operation {OpCode.name_of(opcode)} is not supported by this server", handle)
        try:
            code, body = handler(self.state, msg, info)
        except ProtocolError as exc:
            return self._error(view, exc.response_code, exc.message, handle)
        except Exception:
            log.exception("error processing %s request", OpCode.name_of(opcode))
            return self._error(view, ResponseCode.ERROR, "Server error processing request, see server logs",
                               handle)
        response_handle = getattr(body, "handle", None) or handle
        return Outcome([encode_response(self.state, view, code, body)], opcode, code, response_handle,
                       suggested)

    def _error(self, view: RequestView, code: int, text: str, handle: bytes = b"") -> Outcome:
        self.state.stats.errors += 1
        response = encode_response(self.state, view, code, ErrorBody(text.encode("utf-8")))
        return Outcome([response], view.opcode, code, handle, view.suggested)

    def _interface_refusal(self, opcode: int, info: RequestInfo) -> str:
        if opcode in ADMIN_OPCODES and not info.role.admin:
            return "Received admin request on non-admin interface"
        if opcode == OpCode.RESOLUTION and not info.role.query:
            return "Received query request on non-query interface"
        return ""

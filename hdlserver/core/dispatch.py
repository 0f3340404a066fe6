"""From request bytes to response bytes: early checks, decoding, challenges, the op-code table.

``Dispatcher.handle`` never raises for anything a client sends: every failure becomes a Handle error
response (wire.md 12), and a bug becomes RC 2 with the traceback in the error log.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from hdlserver.auth.challenges import new_challenge
from hdlserver.core.admin_ops import OPERATION_HANDLERS
from hdlserver.core.authorizer import PresentedAnswer, RequestAuthorizer
from hdlserver.core.context import RequestInfo, ServerState
from hdlserver.core.handler_api import AdminContext, AuthenticationNeeded, HandlerResult
from hdlserver.core.resolve import resolve, site_info
from hdlserver.core.responder import RequestView, encode_early_error, encode_response
from hdlserver.core.verify import verify_challenge
from hdlserver.errors import DecodeError, ProtocolError
from hdlserver.wire.bodies import ChallengeAnswerRequest, ChallengeBody, ErrorBody
from hdlserver.wire.codes import ADMIN_OPCODES, OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import Envelope, response_version
from hdlserver.wire.message import HEADER_SIZE, Message, decode_message

log = logging.getLogger("hdlserver.dispatch")

_HEADER = struct.Struct(">iiiHBBii")

# Admin operations a mirror refuses (wire.md 12.4); list operations are allowed on mirrors.
_PRIMARY_ONLY = frozenset({100, 101, 102, 103, 104, 300, 301, 1000, 1001, 1002, 1003})
INTERNAL_ERROR = "Server error processing request, see server logs"


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


@dataclass(frozen=True, slots=True)
class Call:
    """One request being processed: its bytes, view, and the answer it runs under (if any)."""

    envelope: Envelope
    message: bytes
    msg: Message
    view: RequestView
    info: RequestInfo
    answer: PresentedAnswer | None = None
    response_request_id: int | None = None  # the answer's id, when answering a challenged request


QueryHandler = Callable[[ServerState, Call, RequestAuthorizer], HandlerResult]


def _resolution(state: ServerState, call: Call, auth: RequestAuthorizer) -> HandlerResult:
    return resolve(state, call.msg.body, call.msg.header.flags, auth, call.view.session_id)  # type: ignore[arg-type]


def _site_info(state: ServerState, call: Call, auth: RequestAuthorizer) -> HandlerResult:
    return site_info(state)


def _verify_challenge(state: ServerState, call: Call, auth: RequestAuthorizer) -> HandlerResult:
    old_format = (call.envelope.major, call.envelope.minor) < (2, 1)  # 201 answers without a code byte
    return verify_challenge(state, call.msg.body, old_format)  # type: ignore[arg-type]


QUERY_HANDLERS: dict[int, QueryHandler] = {
    OpCode.RESOLUTION: _resolution,
    OpCode.GET_SITE_INFO: _site_info,
    OpCode.VERIFY_CHALLENGE: _verify_challenge,
}


def identity_text(identity: tuple[bytes, int] | None) -> str:
    if identity is None:
        return ""
    return f"{identity[1]}:{identity[0].decode('utf-8', 'replace')}"


class Dispatcher:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.java_early_errors = state.settings.server.java_compatible_early_errors

    def _early(self, env: Envelope, code: int, text: str, opcode: int = 0, handle: bytes = b"") -> Outcome:
        rid = -1 if self.java_early_errors else env.request_id
        response = encode_early_error(self.state, code, text, request_id=rid, opcode=opcode)
        return Outcome([response], opcode, code, handle, suggested=(env.suggested_major, env.suggested_minor))

    def handle(self, env: Envelope, message: bytes, info: RequestInfo) -> Outcome:
        self.state.stats.requests += 1
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
                           session_id=env.session_id, request_id=env.request_id,
                           suggested=(env.suggested_major, env.suggested_minor),
                           header_body=message[: HEADER_SIZE + max(0, body_len)])
        try:
            msg = decode_message(message, (env.major, env.minor))
        except DecodeError as exc:
            return self._error(view, ResponseCode.PROTOCOL_ERROR, f"Unable to parse request: {exc}")
        if msg.header.response_code != 0:
            return self._error(view, ResponseCode.PROTOCOL_ERROR, "Expected a request, got a response")
        handle = getattr(msg.body, "handle", b"")
        if opcode in ADMIN_OPCODES and not info.role.admin:
            return self._early(env, ResponseCode.PROTOCOL_ERROR, "Received admin request on non-admin interface",
                               opcode, handle)
        if opcode == OpCode.RESOLUTION and not info.role.query:
            return self._early(env, ResponseCode.PROTOCOL_ERROR, "Received query request on non-query interface",
                               opcode, handle)
        call = Call(env, message, msg, view, info)
        if opcode == OpCode.CHALLENGE_RESPONSE:
            return self._answer(call)
        if env.session_id > 0:
            return self._error(view, ResponseCode.SESSION_TIMEOUT,
                               "Invalid session id or session time out. Please try again.", handle)
        return self._run(call)

    def _answer(self, call: Call) -> Outcome:
        """Op 200: re-run the challenged request with the answer attached (auth.md 5, wire.md 9.13)."""
        if not isinstance(call.msg.body, ChallengeAnswerRequest):
            return self._error(call.view, ResponseCode.PROTOCOL_ERROR, "Malformed challenge answer")
        pending = self.state.challenges.take(call.envelope.session_id, self.state.clock())
        if pending is None:
            return self._error(call.view, ResponseCode.AUTHEN_TIMEOUT)
        original_env = pending.request_envelope
        try:
            original = decode_message(pending.request_message, (original_env.major, original_env.minor))
        except DecodeError:
            log.exception("stored challenged request no longer decodes")
            return self._error(call.view, ResponseCode.ERROR, INTERNAL_ERROR)
        header = original.header
        view = RequestView(opcode=header.opcode, flags=header.flags & 0xFFFFFFFF, recursion=header.recursion,
                           session_id=pending.request_session_id, request_id=original_env.request_id,
                           suggested=(original_env.suggested_major, original_env.suggested_minor),
                           header_body=original.header_body)
        return self._run(Call(original_env, pending.request_message, original, view, call.info,
                              answer=PresentedAnswer(call.msg.body, pending),
                              response_request_id=call.envelope.request_id))

    def _run(self, call: Call) -> Outcome:
        state = self.state
        opcode = call.view.opcode
        handle = getattr(call.msg.body, "handle", b"")
        if opcode in _PRIMARY_ONLY and not state.primary:
            return self._error(call.view, ResponseCode.SERVER_NOT_RESP, "Not a primary server", handle, call)
        auth = RequestAuthorizer(state.store, state.homed, state.settings.server, answer=call.answer,
                                 verified_identity=call.info.verified_identity)
        query_handler = QUERY_HANDLERS.get(opcode)
        admin_handler = OPERATION_HANDLERS.get(opcode)
        try:
            if query_handler is not None:
                result = query_handler(state, call, auth)
            elif admin_handler is not None:
                ctx = AdminContext(store=state.store, homed=state.homed, site=state.site,
                                   this_server_position=state.this_server_position, config=state.settings.server,
                                   auth=auth, now=int(state.clock()), flags=call.view.flags,
                                   suggested_version=call.view.suggested)
                result = admin_handler(call.msg.body, ctx)
            else:
                return self._error(call.view, ResponseCode.OPERATION_NOT_SUPPORTED,
                                   f"Operation {OpCode.name_of(opcode)} is not supported by this server", handle,
                                   call)
        except AuthenticationNeeded:
            return self._challenge(call, handle)
        except ProtocolError as exc:
            outcome = self._error(call.view, exc.response_code, exc.message, handle, call)
            outcome.identity = identity_text(auth.identity)
            return outcome
        except Exception:
            log.exception("error processing %s request", OpCode.name_of(opcode))
            return self._error(call.view, ResponseCode.ERROR, INTERNAL_ERROR, handle, call)
        bodies = result.parts or (result.body,)
        messages = [encode_response(state, call.view, result.response_code, body,
                                    extra_flags=result.extra_flags | (OpFlag.CN if i < len(bodies) - 1 else 0),
                                    request_id=call.response_request_id)
                    for i, body in enumerate(bodies)]
        response_handle = getattr(result.body, "handle", None) or handle
        return Outcome(messages, opcode, result.response_code, response_handle, call.view.suggested,
                       identity_text(auth.identity))

    def _challenge(self, call: Call, handle: bytes) -> Outcome:
        """Answer RC 402 with a fresh nonce and remember the request (auth.md 3)."""
        state = self.state
        challenge = new_challenge(state.ids, now=state.clock(), request_envelope=call.envelope,
                                  request_message=call.message, header_body=call.view.header_body,
                                  response_version=response_version(call.view.suggested))
        state.challenges.put(challenge)
        response = encode_response(state, call.view, ResponseCode.AUTHENTICATION_NEEDED,
                                   ChallengeBody(challenge.nonce), session_id=challenge.challenge_id)
        return Outcome([response], call.view.opcode, ResponseCode.AUTHENTICATION_NEEDED, handle,
                       call.view.suggested)

    def _error(self, view: RequestView, code: int, text: str = "", handle: bytes = b"",
               call: Call | None = None) -> Outcome:
        self.state.stats.errors += 1
        request_id = call.response_request_id if call is not None else None
        response = encode_response(self.state, view, code, ErrorBody(text.encode("utf-8")), request_id=request_id)
        return Outcome([response], view.opcode, code, handle, view.suggested)

"""From request bytes to response bytes: early checks, decoding, challenges, the op-code table.

``Dispatcher.handle`` never raises for anything a client sends: every failure becomes a Handle error
response (wire.md 12), and a bug becomes RC 2 with the traceback in the error log.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hdlserver.auth.challenges import PendingChallenge, find_retry, new_challenge
from hdlserver.auth.session_crypto import SessionError
from hdlserver.auth.sessions import Session
from hdlserver.core.admin_ops import OPERATION_HANDLERS
from hdlserver.core.authorizer import PresentedAnswer, RequestAuthorizer
from hdlserver.core.context import RequestInfo, ServerState
from hdlserver.core.handler_api import AdminContext, AuthenticationNeeded, HandlerResult
from hdlserver.core.resolve import resolve, site_info
from hdlserver.core.responder import RequestView, encode_early_error, encode_response
from hdlserver.core.session_auth import SessionRequest
from hdlserver.core.session_ops import (
    MSG_EXCHANGE_KEY_FAILED,
    MSG_TERMINATE_UNKNOWN,
    MSG_UNKNOWN_SESSION,
    decrypt_request,
    response_needs_encryption,
    seal_response,
    setup_session,
    terminate_session,
)
from hdlserver.core.verify import verify_challenge
from hdlserver.errors import DecodeError, ProtocolError
from hdlserver.replication.source import REPLICATION_HANDLERS
from hdlserver.wire.bodies import (
    ChallengeAnswerRequest,
    ChallengeBody,
    ErrorBody,
    GenericSuccessResponse,
    SessionSetupRequest,
)
from hdlserver.wire.codes import ADMIN_OPCODES, OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import Envelope, response_version
from hdlserver.wire.message import HEADER_SIZE, Message, decode_message

log = logging.getLogger("hdlserver.dispatch")

_HEADER = struct.Struct(">iiiHBBii")

# Admin operations a mirror refuses (wire.md 12.4); list operations are allowed on mirrors.
# 1001 and 1002 decide themselves: mirrors serve dumps and the all-sources log (replication.md 10).
_PRIMARY_ONLY = frozenset({100, 101, 102, 103, 104, 300, 301, 1000, 1003})
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
    session: SessionRequest | None = None  # the live session the request belongs to

    @property
    def live_session(self) -> Session | None:
        return None if self.session is None else self.session.session


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
    **REPLICATION_HANDLERS,
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
        if env.encrypted:
            try:
                message = decrypt_request(self.state.sessions, env.session_id, message, self.state.clock())
            except SessionError as exc:
                return self._early(env, exc.response_code, exc.message)
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
            now = self.state.clock()
            session = self.state.sessions.get(env.session_id, now)
            if session is not None:
                call = replace(call, session=SessionRequest(session, self.state.sessions, env, view.header_body,
                                                            msg.credential))
            elif self.state.challenges.get(env.session_id, now) is None:
                # auth.md 9.2 step 1 / 9.8: neither a live session nor a pending challenge.
                return self._error(view, ResponseCode.SESSION_TIMEOUT, MSG_UNKNOWN_SESSION, handle)
        if opcode == OpCode.SESSION_SETUP:
            return self._setup_session(call)
        if opcode == OpCode.SESSION_TERMINATE:
            return self._terminate_session(call, handle)
        if opcode == OpCode.SESSION_EXCHANGEKEY:
            return self._exchange_key(call, handle)
        return self._run(call)

    def _setup_session(self, call: Call) -> Outcome:
        """Op 400 (auth.md 9.2): answered under the new session id, HS_SIGNED (never MACed) when CT."""
        body = call.msg.body
        if not isinstance(body, SessionSetupRequest):
            return self._error(call.view, ResponseCode.PROTOCOL_ERROR, "Malformed session setup request")
        try:
            session, response_body = setup_session(self.state, body, call.view.suggested)
        except SessionError as exc:
            return self._error(call.view, exc.response_code, exc.message)
        response = encode_response(self.state, call.view, ResponseCode.SUCCESS, response_body,
                                   session_id=session.session_id)
        return Outcome([response], call.view.opcode, ResponseCode.SUCCESS, b"", call.view.suggested,
                       identity_text((body.identity_handle, body.identity_index)))

    def _terminate_session(self, call: Call, handle: bytes) -> Outcome:
        """Op 401 (auth.md 9.10). The session is gone when the answer is sent, so CT gives an HS_SIGNED."""
        if call.session is None:
            return self._error(call.view, ResponseCode.SESSION_TIMEOUT, MSG_TERMINATE_UNKNOWN, handle)
        try:
            terminate_session(self.state, call.session)
        except ProtocolError as exc:
            return self._error(call.view, exc.response_code, exc.message, handle, call)
        response = self._respond(replace(call, session=None), ResponseCode.SUCCESS, GenericSuccessResponse())
        return Outcome([response], call.view.opcode, ResponseCode.SUCCESS, handle, call.view.suggested)

    def _exchange_key(self, call: Call, handle: bytes) -> Outcome:
        """Op 402 (auth.md 9.10): RC 500 without a live session. Java takes a key only in a mode-2
        (CIPHER_SERVER) session still waiting for one; setup refuses mode 2, so a live session gets RC 501."""
        if call.session is None:
            return self._error(call.view, ResponseCode.SESSION_TIMEOUT, MSG_UNKNOWN_SESSION, handle)
        return self._error(call.view, ResponseCode.SESSION_FAILED, MSG_EXCHANGE_KEY_FAILED, handle, call)

    def _respond(self, call: Call, response_code: int, body: object, extra_flags: int = 0,
                 request_id: int | None = None, session_id: int | None = None) -> bytes:
        """``encode_response``, in the session's form when the call has a live session (auth.md 8, 9.7)."""
        session = call.live_session
        view = call.view
        if session is None:
            return encode_response(self.state, view, response_code, body, extra_flags=extra_flags,
                                   request_id=request_id, session_id=session_id)
        plain = encode_response(self.state, replace(view, flags=view.flags & ~OpFlag.CT), response_code, body,
                                extra_flags=extra_flags, request_id=request_id, session_id=session_id)
        encrypt = response_needs_encryption(view.flags, response_version(view.suggested), body)
        certify = bool(view.flags & OpFlag.CT)
        sealed = seal_response(plain, session, certify=certify, encrypt=encrypt)
        if certify:
            self.state.sessions.update(session)  # the server counter moved on
        return sealed

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
        answer_counter = call.msg.credential.signer_index if call.msg.credential is not None else 0
        return self._run(Call(original_env, pending.request_message, original, view, call.info,
                              answer=PresentedAnswer(call.msg.body, pending, answer_counter),
                              response_request_id=call.envelope.request_id,
                              session=self._session_of(pending, original)))

    def _session_of(self, pending: PendingChallenge, original: Message) -> SessionRequest | None:
        """The live session a challenged request was sent in, if it is still there."""
        if pending.request_session_id <= 0:
            return None
        session = self.state.sessions.get(pending.request_session_id, self.state.clock())
        if session is None:
            return None
        return SessionRequest(session, self.state.sessions, pending.request_envelope, original.header_body,
                              original.credential)

    def _run(self, call: Call) -> Outcome:
        state = self.state
        opcode = call.view.opcode
        handle = getattr(call.msg.body, "handle", b"")
        if opcode in _PRIMARY_ONLY and not state.primary:
            return self._error(call.view, ResponseCode.SERVER_NOT_RESP, "Not a primary server", handle, call)
        auth = RequestAuthorizer(state.store, state.homed, state.settings.server, answer=call.answer,
                                 verified_identity=call.info.verified_identity, session=call.session)
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
        messages = [self._respond(call, result.response_code, body,
                                  extra_flags=result.extra_flags | (OpFlag.CN if i < len(bodies) - 1 else 0),
                                  request_id=call.response_request_id)
                    for i, body in enumerate(bodies)]
        response_handle = getattr(result.body, "handle", None) or handle
        outcome = Outcome(messages, opcode, result.response_code, response_handle, call.view.suggested,
                          identity_text(auth.identity))
        stream = getattr(result, "stream", None)  # replication: the stream the transport writes next
        if stream is not None:
            outcome.extra["stream"] = stream
        return outcome

    def _challenge(self, call: Call, handle: bytes) -> Outcome:
        """Answer RC 402 and remember the request (auth.md 3). Inside a session the challenge id is the
        session id, and a retry of the same request (same RequestId) gets the same challenge again."""
        state = self.state
        now = state.clock()
        session = call.live_session
        challenge = None
        if session is not None:
            challenge = find_retry(state.challenges, session.session_id, call.envelope.request_id, now)
        if challenge is None:
            challenge = new_challenge(state.ids, now=now, request_envelope=call.envelope,
                                      request_message=call.message, header_body=call.view.header_body,
                                      response_version=response_version(call.view.suggested),
                                      reuse_id=None if session is None else session.session_id)
            state.challenges.put(challenge)
        response = self._respond(call, ResponseCode.AUTHENTICATION_NEEDED, ChallengeBody(challenge.nonce),
                                 session_id=challenge.challenge_id)
        return Outcome([response], call.view.opcode, ResponseCode.AUTHENTICATION_NEEDED, handle,
                       call.view.suggested)

    def _error(self, view: RequestView, code: int, text: str = "", handle: bytes = b"",
               call: Call | None = None) -> Outcome:
        body = ErrorBody(text.encode("utf-8"))
        if call is None:
            response = encode_response(self.state, view, code, body)
        else:
            response = self._respond(call, code, body, request_id=call.response_request_id)
        return Outcome([response], view.opcode, code, handle, view.suggested)

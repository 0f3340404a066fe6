"""Administrative requests with challenge-response authentication (auth.md 3-5), over TCP.

    from hdlserver.client.admin import AdminClient, SecretKeyIdentity
    admin = AdminClient(("127.0.0.1", 2641), SecretKeyIdentity(b"0.NA/DEMO", 300, b"secret"))
    admin.create_handle("DEMO/x", [HandleValue(1, b"URL", b"https://example.org/")])

One TCP connection is kept open for the client's requests; each challenged request is answered on it.

Sessions are opt-in, as the Java tools use them (auth.md 9.1): ``AdminClient(..., session=True)`` sets up a
Diffie-Hellman session (UDP first, then TCP) before the first request, answers the one challenge inside it,
and MACs every later request instead of answering new challenges; ``encrypt=True`` also encrypts every
request with the session key (and asks for encrypted answers). ``open_session()`` / ``close_session()``
(SESSION_TERMINATE) control the session explicitly; leaving a ``with`` block terminates it. A session the
server has forgotten (RC 500) is set up again once, as Java clients do.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from hdlserver.auth import keys
from hdlserver.auth.pubkey_answers import make_pubkey_answer
from hdlserver.auth.secret_answers import make_secret_answer
from hdlserver.client.resolver import HandleResponseError, build_request, decode_answer
from hdlserver.client.session import DEFAULT_SESSION_TIMEOUT, ClientSession, open_dh_session
from hdlserver.client.transport import read_tcp_message
from hdlserver.errors import HandleError
from hdlserver.wire.bodies import (
    AddValueRequest,
    ChallengeAnswerRequest,
    ChallengeBody,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    ErrorBody,
    HomeNARequest,
    ListHandlesRequest,
    ListHandlesResponse,
    ListHomedNAsRequest,
    ListHomedNAsResponse,
    ModifyValueRequest,
    RemoveValueRequest,
    SessionTerminateRequest,
    UnhomeNARequest,
)
from hdlserver.wire.buffer import to_utf8
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import decode_envelope
from hdlserver.wire.message import Message
from hdlserver.wire.values import HandleValue

ADMIN_FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO


@dataclass(frozen=True)
class SecretKeyIdentity:
    handle: bytes
    index: int
    secret: bytes
    auth_type = b"HS_SECKEY"

    def answer(self, nonce: bytes, digest: bytes, version: tuple[int, int], suggested: tuple[int, int]) -> bytes:
        return make_secret_answer(self.secret, nonce, digest, version, suggested)


@dataclass(frozen=True)
class PublicKeyIdentity:
    handle: bytes
    index: int
    private_key: keys.PrivateKey
    auth_type = b"HS_PUBKEY"

    def answer(self, nonce: bytes, digest: bytes, version: tuple[int, int], suggested: tuple[int, int]) -> bytes:
        return make_pubkey_answer(self.private_key, nonce, digest, version)


Identity = SecretKeyIdentity | PublicKeyIdentity


def _error_text(msg: Message) -> str:
    return msg.body.message.decode("utf-8", "replace") if isinstance(msg.body, ErrorBody) else ""


# Java clients (2.8 and later) encrypt these requests in a session when a value is not publicly readable
# (auth.md 9.7), so a secret value never crosses the network in clear even without "encrypt all".
_VALUE_WRITES = frozenset({OpCode.CREATE_HANDLE, OpCode.ADD_VALUE, OpCode.MODIFY_VALUE})
_V_ENCRYPT_PRIVATE = (2, 8)


def carries_private_values(opcode: int, body: object, version: tuple[int, int]) -> bool:
    """True for a CREATE/ADD/MODIFY at ``version`` >= 2.8 holding a value without public read."""
    if opcode not in _VALUE_WRITES or version < _V_ENCRYPT_PRIVATE:
        return False
    values: Sequence[HandleValue] = getattr(body, "values", ())
    return any(not v.public_read for v in values)


@dataclass(frozen=True)
class AdminResult:
    response_code: int
    flags: int
    messages: tuple[Message, ...]


class AdminClient:
    """Admin requests as ``identity``; ``session``/``encrypt``/``server_key``: see the module docstring
    (``server_key`` is the server's public key, which the signed SESSION_SETUP answer must verify with)."""

    def __init__(self, address: tuple[str, int], identity: Identity, *, timeout: float = 30.0,
                 session: bool = False, encrypt: bool = False, server_key: keys.PublicKey | None = None,
                 session_timeout: int = DEFAULT_SESSION_TIMEOUT) -> None:
        self.address = address
        self.identity = identity
        self.timeout = timeout
        self.use_session = session or encrypt
        self.encrypt = encrypt
        self.server_key = server_key
        self.session_timeout = session_timeout
        self.session: ClientSession | None = None
        self._sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(HandleError, OSError):  # the server forgets idle sessions anyway
            self.close_session()
        self.close()

    def open_session(self) -> ClientSession:
        """SESSION_SETUP (400, Diffie-Hellman) for this client's identity; later requests use the session."""
        self.session = open_dh_session(self.address, self.identity.handle, self.identity.index,
                                       timeout=self.session_timeout, encrypt_all=self.encrypt,
                                       server_key=self.server_key, tcp_timeout=self.timeout)
        return self.session

    def close_session(self) -> None:
        """SESSION_TERMINATE (401), MACed with the session key; nothing to do without a session."""
        session, self.session = self.session, None
        if session is None:
            return
        request = build_request(OpCode.SESSION_TERMINATE, SessionTerminateRequest(b"/"), ADMIN_FLAGS,
                                version=session.version)
        answer = decode_answer(self._exchange(session.seal(request, encrypt=False), session)[0])
        if answer.header.response_code != ResponseCode.SUCCESS:
            raise HandleResponseError(answer.header.response_code, _error_text(answer))

    def _connection(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(self.address, timeout=self.timeout)
        return self._sock

    def _exchange(self, request: bytes, session: ClientSession | None = None) -> list[bytes]:
        """Send a request; read every part of its answer (CN), reconnecting once if the server had closed.
        With ``session`` each answer is decrypted / MAC-checked before it is looked at."""
        try:
            return self._send_and_read(request, session)
        except OSError:
            self.close()
            return self._send_and_read(request, session)

    def _send_and_read(self, request: bytes, session: ClientSession | None) -> list[bytes]:
        sock = self._connection()
        try:
            sock.sendall(request)
            answers = [self._opened(read_tcp_message(sock), session)]
            while decode_answer(answers[-1]).header.flags & OpFlag.CN:
                answers.append(self._opened(read_tcp_message(sock), session))
        except OSError:
            self.close()
            raise
        return answers

    @staticmethod
    def _opened(answer: bytes, session: ClientSession | None) -> bytes:
        return answer if session is None else session.open(answer)

    def _send(self, opcode: int, body: object, flags: int) -> list[bytes]:
        """One request, in the session when sessions are on (set up first if needed)."""
        if not self.use_session:
            return self._exchange(build_request(opcode, body, flags))
        session = self.session or self.open_session()
        request = build_request(opcode, body, flags | (OpFlag.ENC if self.encrypt else 0), version=session.version)
        return self._exchange(session.seal(request, encrypt=self.encrypt or carries_private_values(
            opcode, body, session.version)), session)

    def request(self, opcode: int, body: object, flags: int = ADMIN_FLAGS) -> AdminResult:
        """Send an admin request, answer its challenge, return the final answer (raising on errors)."""
        answers = self._send(opcode, body, flags)
        first = decode_answer(answers[0])
        if self.use_session and first.header.response_code == ResponseCode.SESSION_TIMEOUT:
            self.session = None  # the server forgot the session: one new session, as Java clients do
            answers = self._send(opcode, body, flags)
            first = decode_answer(answers[0])
        if first.header.response_code == ResponseCode.AUTHENTICATION_NEEDED:
            answers = self._answer_challenge(answers[0], first)
        messages = tuple(decode_answer(a) for a in answers)
        final = messages[0]
        if final.header.response_code != ResponseCode.SUCCESS:
            raise HandleResponseError(final.header.response_code, _error_text(final))
        return AdminResult(final.header.response_code, final.header.flags, messages)

    def _answer_challenge(self, raw: bytes, challenge: Message) -> list[bytes]:
        if not isinstance(challenge.body, ChallengeBody) or challenge.request_digest is None:
            raise HandleResponseError(ResponseCode.PROTOCOL_ERROR, "malformed challenge")
        env = decode_envelope(raw)
        version = (env.major, env.minor)
        suggested = (env.suggested_major, env.suggested_minor)
        signed = self.identity.answer(challenge.body.nonce, challenge.request_digest[1], version, suggested)
        body = ChallengeAnswerRequest(self.identity.auth_type, self.identity.handle, self.identity.index, signed)
        answer = bytearray(build_request(OpCode.CHALLENGE_RESPONSE, body, ADMIN_FLAGS, version=version))
        answer[4:8] = raw[4:8]  # the envelope SessionId carries the challenge id (the session id in a session)
        return self._exchange(bytes(answer), self.session if self.use_session else None)

    def create_handle(self, handle: str | bytes, values: Sequence[HandleValue], *, overwrite: bool = False,
                      mint: bool = False) -> bytes:
        flags = ADMIN_FLAGS | (OpFlag.OVRW if overwrite else 0) | (OpFlag.MINT if mint else 0)
        result = self.request(OpCode.CREATE_HANDLE, CreateHandleRequest(to_utf8(handle), tuple(values)), flags)
        body = result.messages[0].body
        return body.handle if isinstance(body, CreateHandleResponse) and body.handle else to_utf8(handle)

    def delete_handle(self, handle: str | bytes) -> None:
        self.request(OpCode.DELETE_HANDLE, DeleteHandleRequest(to_utf8(handle)))

    def add_values(self, handle: str | bytes, values: Sequence[HandleValue], *, overwrite: bool = False) -> None:
        flags = ADMIN_FLAGS | (OpFlag.OVRW if overwrite else 0)
        self.request(OpCode.ADD_VALUE, AddValueRequest(to_utf8(handle), tuple(values)), flags)

    def remove_values(self, handle: str | bytes, indexes: Sequence[int]) -> None:
        self.request(OpCode.REMOVE_VALUE, RemoveValueRequest(to_utf8(handle), tuple(indexes)))

    def modify_values(self, handle: str | bytes, values: Sequence[HandleValue]) -> None:
        self.request(OpCode.MODIFY_VALUE, ModifyValueRequest(to_utf8(handle), tuple(values)))

    def list_handles(self, prefix: str | bytes) -> list[bytes]:
        result = self.request(OpCode.LIST_HANDLES, ListHandlesRequest(to_utf8(prefix)))
        return [h for m in result.messages if isinstance(m.body, ListHandlesResponse) for h in m.body.handles]

    def home_prefix(self, prefix: str | bytes) -> None:
        self.request(OpCode.HOME_NA, HomeNARequest(to_utf8(prefix)), ADMIN_FLAGS | OpFlag.CT)

    def unhome_prefix(self, prefix: str | bytes) -> None:
        self.request(OpCode.UNHOME_NA, UnhomeNARequest(to_utf8(prefix)), ADMIN_FLAGS | OpFlag.CT)

    def list_homed_prefixes(self) -> list[bytes]:
        result = self.request(OpCode.LIST_HOMED_NAS, ListHomedNAsRequest(b"/"))
        return [h for m in result.messages if isinstance(m.body, ListHomedNAsResponse) for h in m.body.handles]


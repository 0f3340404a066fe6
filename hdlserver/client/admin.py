"""Administrative requests with challenge-response authentication (auth.md 3-5), over TCP.

    from hdlserver.client.admin import AdminClient, SecretKeyIdentity
    admin = AdminClient(("127.0.0.1", 2641), SecretKeyIdentity(b"0.NA/DEMO", 300, b"secret"))
    admin.create_handle("DEMO/x", [HandleValue(1, b"URL", b"https://example.org/")])

One TCP connection is kept open for the client's requests; each challenged request is answered on it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

from hdlserver.auth import keys
from hdlserver.auth.pubkey_answers import make_pubkey_answer
from hdlserver.auth.secret_answers import make_secret_answer
from hdlserver.client.resolver import HandleResponseError, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message
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


@dataclass(frozen=True)
class AdminResult:
    response_code: int
    flags: int
    messages: tuple[Message, ...]


class AdminClient:
    def __init__(self, address: tuple[str, int], identity: Identity, *, timeout: float = 30.0) -> None:
        self.address = address
        self.identity = identity
        self.timeout = timeout
        self._sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.create_connection(self.address, timeout=self.timeout)
        return self._sock

    def _exchange(self, request: bytes) -> list[bytes]:
        """Send a request; read every part of its answer (CN), reconnecting once if the server had closed."""
        try:
            return self._send_and_read(request)
        except OSError:
            self.close()
            return self._send_and_read(request)

    def _send_and_read(self, request: bytes) -> list[bytes]:
        sock = self._connection()
        try:
            sock.sendall(request)
            answers = [read_tcp_message(sock)]
            while decode_answer(answers[-1]).header.flags & OpFlag.CN:
                answers.append(read_tcp_message(sock))
        except OSError:
            self.close()
            raise
        return answers

    def request(self, opcode: int, body: object, flags: int = ADMIN_FLAGS) -> AdminResult:
        """Send an admin request, answer its challenge, return the final answer (raising on errors)."""
        answers = self._exchange(build_request(opcode, body, flags))
        first = decode_answer(answers[0])
        if first.header.response_code == ResponseCode.AUTHENTICATION_NEEDED:
            answers = self._answer_challenge(answers[0], first)
        messages = tuple(decode_answer(a) for a in answers)
        final = messages[0]
        if final.header.response_code != ResponseCode.SUCCESS:
            text = final.body.message.decode("utf-8", "replace") if isinstance(final.body, ErrorBody) else ""
            raise HandleResponseError(final.header.response_code, text)
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
        answer[4:8] = raw[4:8]  # the envelope SessionId carries the challenge id
        return self._exchange(bytes(answer))

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


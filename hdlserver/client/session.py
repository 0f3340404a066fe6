"""Client side of a Diffie-Hellman session (auth.md 9), as the Java client runs it.

    session = open_dh_session(("127.0.0.1", 2641), b"0.NA/DEMO", 300, server_key=site_public_key)
    # or sans-IO: setup = DHSetup.start(b"0.NA/DEMO", 300); send setup.request; setup.finish(answer)
    request = session.seal(build_request(OpCode.DELETE_HANDLE, body, version=session.version), encrypt=False)
    answer = session.open(raw_answer)   # decrypts EC answers, verifies HS_MAC answers

SESSION_SETUP goes over UDP first and TCP when UDP gets no answer; it carries CT and RD, and the signed
answer is checked against ``server_key`` (the public key of the site's HS_SITE entry) when one is given.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field

from hdlserver.auth import keys
from hdlserver.auth.session_crypto import (
    SessionError,
    decrypt_message,
    dh_server_keypair,
    dh_shared_secret,
    encrypt_message,
    mac_credential,
    session_key_from_dh,
    verify_mac,
)
from hdlserver.client.resolver import JAVA_REQUEST_FLAGS, HandleResponseError, build_request, decode_answer
from hdlserver.client.transport import ClientTimeout, tcp_exchange, udp_exchange
from hdlserver.wire.bodies import KEY_EXCHANGE_DH, ErrorBody, SessionSetupRequest, SessionSetupResponse
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.credential import HS_MAC, HS_SIGNED, signed_prefix
from hdlserver.wire.digest import request_digest
from hdlserver.wire.envelope import ENVELOPE_SIZE, Envelope, decode_envelope, encode_envelope
from hdlserver.wire.message import HEADER_SIZE, Message, attach_credential
from hdlserver.wire.pubkey import DHPublicKeyData, decode_public_key, encode_public_key

# RFC 2409 Oakley group 2 (1024 bits), g = 2: the group Java 9.x clients send (auth.md 9.3).
OAKLEY_GROUP_2_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)
OAKLEY_GROUP_2_G = 2
DEFAULT_SESSION_TIMEOUT = 86_400  # seconds, the Java client default
SETUP_FLAGS = OpFlag.CT | OpFlag.RD | JAVA_REQUEST_FLAGS

_INT4 = struct.Struct(">i")
_BODY_LENGTH_OFFSET = 20  # of the int4 BodyLength in the message header


class SessionRefused(HandleResponseError):
    """The server refused or broke the session: set up a new one (RC 500) or give up."""


@dataclass
class ClientSession:
    """A live session: requests are MACed with ``counter`` 1, 2, ... and encoded with ``version``."""

    session_id: int
    key: bytes
    algorithm: int
    version: tuple[int, int]  # the SESSION_SETUP response version (wire.md 6 rule 6)
    encrypt_all: bool = False
    counter: int = 0
    _server_counters: set[int] = field(default_factory=set, repr=False)

    def seal(self, request: bytes, *, encrypt: bool | None = None, counter: int | None = None) -> bytes:
        """An unsigned request (envelope + message, encoded with ``version``) put into this session.

        Sets the envelope SessionId, replaces the empty credential with an HS_MAC over the version prefix and
        header+body (next counter unless ``counter`` is given), then encrypts when ``encrypt`` (default: the
        session's ``encrypt_all``).
        """
        env = decode_envelope(request)
        env.session_id = self.session_id
        header_body = _header_body(request[ENVELOPE_SIZE:])
        if counter is None:
            self.counter += 1
            counter = self.counter
        credential = mac_credential(self.key, header_body, env.version, env.suggested, self.session_id,
                                    env.request_id, counter)
        message = attach_credential(header_body, credential)
        if self.encrypt_all if encrypt is None else encrypt:
            message = encrypt_message(self.algorithm, self.key, message, self.version)
            env.encrypted = True
        env.message_length = len(message)
        return encode_envelope(env) + message

    def join(self, request: bytes) -> bytes:
        """The request with only the envelope SessionId set (a challenge answer: Java sends it unMACed)."""
        return request[:4] + _INT4.pack(self.session_id) + request[8:]

    def open(self, answer: bytes) -> bytes:
        """An answer in clear: decrypted when EC is set; an HS_MAC credential must verify (once per counter)."""
        env = decode_envelope(answer)
        if env.encrypted:
            message = decrypt_message(self.algorithm, self.key, answer[ENVELOPE_SIZE:], self.version)
            env.encrypted = False
            env.message_length = len(message)
            answer = encode_envelope(env) + message
        msg = decode_answer(answer)
        cred = msg.credential
        if cred is not None and cred.type == HS_MAC:
            if not verify_mac(self.key, cred, msg.header_body, env.version, env.suggested, env.session_id,
                              env.request_id):
                raise SessionError("the server's session MAC does not verify", ResponseCode.INVALID_SESSION_KEY)
            if cred.signer_index in self._server_counters:
                raise SessionError(f"duplicate server session counter {cred.signer_index}",
                                   ResponseCode.SESSION_MESSAGE_REJECTED)
            self._server_counters.add(cred.signer_index)
        return answer


@dataclass(frozen=True)
class DHSetup:
    """A SESSION_SETUP request (mode 4, CT, RD, Java-style) and the private DH exponent behind it. Sans-IO:
    send ``request`` any way, then ``finish`` with the answer."""

    request: bytes
    private_value: int
    encrypt_all: bool = False

    @classmethod
    def start(cls, identity_handle: bytes, identity_index: int, *, timeout: int = DEFAULT_SESSION_TIMEOUT,
              encrypt_all: bool = False) -> DHSetup:
        x, y = dh_server_keypair(OAKLEY_GROUP_2_P, OAKLEY_GROUP_2_G)  # the same key pair math on both sides
        public_key = encode_public_key(DHPublicKeyData(y=y, p=OAKLEY_GROUP_2_P, g=OAKLEY_GROUP_2_G))
        body = SessionSetupRequest(KEY_EXCHANGE_DH, timeout, identity_handle, identity_index, public_key=public_key)
        return cls(build_request(OpCode.SESSION_SETUP, body, SETUP_FLAGS), x, encrypt_all)

    def finish(self, answer: bytes, server_key: keys.PublicKey | None = None) -> ClientSession:
        """The session the server's answer sets up. Raises ``SessionRefused`` for an error answer, an
        answer to another request, or (with ``server_key``) a signature that does not verify."""
        msg = decode_answer(answer)
        env = decode_envelope(answer)
        _check_setup_answer(self.request, env, msg, server_key)
        data = msg.body.data  # type: ignore[union-attr]
        if len(data) < 4:
            raise SessionRefused(ResponseCode.PROTOCOL_ERROR, "session setup answer without a key")
        # We suggest 2.11, so the answer starts with the int4 cipher code (auth.md 9.3: from 2.4 on).
        algorithm = _INT4.unpack_from(data)[0]
        server_public = decode_public_key(data[4:])
        if not isinstance(server_public, DHPublicKeyData) or server_public.p != OAKLEY_GROUP_2_P:
            raise SessionRefused(ResponseCode.PROTOCOL_ERROR, "session setup answer has no DH key in our group")
        z = dh_shared_secret(server_public.y, self.private_value, OAKLEY_GROUP_2_P)
        return ClientSession(env.session_id, session_key_from_dh(z, algorithm), algorithm, env.version,
                             self.encrypt_all)


def _check_setup_answer(request: bytes, env: Envelope, msg: Message, server_key: keys.PublicKey | None) -> None:
    if msg.header.response_code != ResponseCode.SUCCESS:
        text = msg.body.message.decode("utf-8", "replace") if isinstance(msg.body, ErrorBody) else ""
        raise SessionRefused(msg.header.response_code, text)
    if not isinstance(msg.body, SessionSetupResponse) or env.session_id <= 0:
        raise SessionRefused(ResponseCode.PROTOCOL_ERROR, "malformed session setup answer")
    if msg.request_digest != request_digest(_header_body(request[ENVELOPE_SIZE:]), env.version):
        raise SessionRefused(ResponseCode.PROTOCOL_ERROR, "session setup answer digests another request")
    if server_key is None:
        return
    cred = msg.credential
    if cred is None or cred.type != HS_SIGNED:
        raise SessionRefused(ResponseCode.PROTOCOL_ERROR, "session setup answer is not signed")
    prefix = signed_prefix(env.version, env.suggested, env.session_id, env.request_id, cred.signer_index)
    if not keys.verify(server_key, cred.signature, prefix + msg.header_body, cred.digest_alg):
        raise SessionRefused(ResponseCode.PROTOCOL_ERROR, "session setup answer signature does not verify")


def open_dh_session(address: tuple[str, int], identity_handle: bytes, identity_index: int, *,
                    timeout: int = DEFAULT_SESSION_TIMEOUT, encrypt_all: bool = False,
                    server_key: keys.PublicKey | None = None, udp: bool = True,
                    tcp_timeout: float = 30.0) -> ClientSession:
    """Set up a DH session with the server at ``address`` for ``identity_index:identity_handle``: over UDP
    first and TCP when UDP gets no answer, as Java does. Raises ``SessionRefused`` (see ``DHSetup.finish``)."""
    setup = DHSetup.start(identity_handle, identity_index, timeout=timeout, encrypt_all=encrypt_all)
    answer = None
    if udp:
        with contextlib.suppress(ClientTimeout, OSError):
            answer = udp_exchange(address, setup.request)
    if answer is None:
        answer = tcp_exchange(address, setup.request, tcp_timeout)[0]
    return setup.finish(answer, server_key)


def _header_body(message: bytes) -> bytes:
    """The header + body of a message (what MACs, signatures and digests cover)."""
    return message[: HEADER_SIZE + int.from_bytes(message[_BODY_LENGTH_OFFSET:HEADER_SIZE], "big")]

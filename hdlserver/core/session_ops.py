"""Session operations and the session envelope of requests and responses (auth.md 8, 9; wire.md 12.5).

* ``decrypt_request``: an EC request's plaintext (early errors RC 500/501 with Java's messages).
* ``setup_session`` (op 400) and ``terminate_session`` (op 401); op 402 is answered by the dispatcher.
* ``seal_response``: a response inside a session gets an HS_MAC instead of an HS_SIGNED credential and is
  encrypted when ``response_needs_encryption`` says so.
* ``SessionSweeper``: removes idle sessions when the server's periodic loop asks it to.

Sans-IO: times are passed in; the dispatcher owns the flow.
"""

from __future__ import annotations

import logging
import struct

from hdlserver.auth.session_crypto import (
    SessionError,
    algorithm_from_config,
    decrypt_message,
    encrypt_message,
    mac_credential,
)
from hdlserver.auth.sessions import Session, SessionStore, create_dh_session
from hdlserver.core.context import ServerState
from hdlserver.core.session_auth import SessionRequest
from hdlserver.errors import ProtocolError
from hdlserver.wire.bodies import (
    ReferralBody,
    ResolutionResponse,
    SessionSetupRequest,
    SessionSetupResponse,
)
from hdlserver.wire.codes import OpFlag, ResponseCode
from hdlserver.wire.envelope import (
    ENVELOPE_SIZE,
    SERVER_VERSION,
    decode_envelope,
    encode_envelope,
    response_version,
    version_at_least,
)
from hdlserver.wire.message import HEADER_SIZE, attach_credential

log = logging.getLogger("hdlserver.sessions")

SWEEP_INTERVAL_SECONDS = 60.0  # Java's session sweeper period (auth.md 9.5)

# Java's messages (auth.md 9.9, 9.10, wire.md 12.5).
MSG_UNKNOWN_SESSION = "Invalid session id or session time out. Please try again."
MSG_DECRYPT_NO_SESSION_ID = "Invalid session id. Unable to decrypt request message."
MSG_DECRYPT_UNKNOWN_SESSION = "Session information not available or time out. Unable to decrypt request message."
MSG_TERMINATE_UNKNOWN = "Can not get session info."
MSG_TERMINATE_BAD_MAC = "Invalid session key."
MSG_EXCHANGE_KEY_FAILED = "Invalid session id. Session failed."

_V_AUTO_ENCRYPT = (2, 8)  # from here non-public values in resolution answers are encrypted (auth.md 9.7)
_FLAGS_OFFSET = 8  # of the OpFlags word in the message header
_BODY_LENGTH_OFFSET = 20
_FLAGS = struct.Struct(">I")


def decrypt_request(sessions: SessionStore, session_id: int, data: bytes, now: float) -> bytes:
    """The plaintext message (header .. credential) of an EC request (wire.md 12.5).

    Raises ``SessionError``: RC 501 without a session id or when decryption fails, RC 500 for an unknown or
    idle-expired session.
    """
    if session_id <= 0:
        raise SessionError(MSG_DECRYPT_NO_SESSION_ID)
    session = sessions.get(session_id, now)
    if session is None:
        raise SessionError(MSG_DECRYPT_UNKNOWN_SESSION, ResponseCode.SESSION_TIMEOUT)
    if session.key is None:
        raise SessionError("Exception decrypting request with session key: the session has no key yet")
    return decrypt_message(session.algorithm, session.key, data, session.version)


def setup_session(state: ServerState, request: SessionSetupRequest,
                  suggested: tuple[int, int]) -> tuple[Session, SessionSetupResponse]:
    """Op 400 (auth.md 9.2): a new DH session, stored, and the response body (mode echoed).

    The caller sends the response under the new session id, HS_SIGNED when the request had CT. Setup
    failures raise ``SessionError`` (RC 501 with Java's message) and store nothing.
    """
    config = state.settings.server
    session, data = create_dh_session(
        state.ids, request, now=state.clock(), configured_alg=algorithm_from_config(config.encryption_alg),
        max_session_time_s=config.max_session_time_s, response_version=response_version(suggested),
        client_suggested=suggested)
    state.sessions.create(session)
    log.info("session %d set up for %d:%s", session.session_id, session.identity_index,
             session.identity_handle.decode("utf-8", "replace"))
    return session, SessionSetupResponse(request.mode, data)


def terminate_session(state: ServerState, request: SessionRequest) -> None:
    """Op 401 (auth.md 9.10): the request's HS_MAC must verify; then the session is gone."""
    if not request.mac_verifies():
        raise ProtocolError(ResponseCode.INVALID_SESSION_KEY, MSG_TERMINATE_BAD_MAC)
    assert request.credential is not None  # mac_verifies needs one
    request.session.check_and_record_counter(request.credential.signer_index)
    state.sessions.remove(request.session.session_id)
    log.info("session %d terminated", request.session.session_id)


def response_needs_encryption(request_flags: int, version: tuple[int, int], body: object) -> bool:
    """auth.md 9.7: ENC asked for, or (>= 2.8) a resolution/referral answer holding a non-public value."""
    if request_flags & OpFlag.ENC:
        return True
    if not version_at_least(version, _V_AUTO_ENCRYPT):
        return False
    values = body.values if isinstance(body, ResolutionResponse | ReferralBody) else None
    return bool(values) and any(not v.public_read for v in values)  # type: ignore[union-attr]


def seal_response(response: bytes, session: Session, *, certify: bool, encrypt: bool) -> bytes:
    """Turn an unsigned response (envelope + message) into the session form (auth.md 8 step 1, 9.7).

    ``certify``: set CT in the header and add an HS_MAC with the server's next session counter. ``encrypt``:
    encrypt the whole message with the session cipher (MAC first, then encrypt) and set EC. An encryption
    failure leaves the response in clear, as Java does.
    """
    if not certify and not encrypt:
        return response
    env = decode_envelope(response)
    message = response[ENVELOPE_SIZE:]
    body_length = int.from_bytes(message[_BODY_LENGTH_OFFSET:HEADER_SIZE], "big")
    header_body = bytearray(message[: HEADER_SIZE + body_length])
    if certify and session.key is not None:
        flags = _FLAGS.unpack_from(header_body, _FLAGS_OFFSET)[0] | OpFlag.CT
        _FLAGS.pack_into(header_body, _FLAGS_OFFSET, flags)
        credential = mac_credential(session.key, bytes(header_body), env.version, SERVER_VERSION,
                                    env.session_id, env.request_id, session.next_server_counter())
        message = attach_credential(bytes(header_body), credential)
    if encrypt and session.key is not None:
        try:
            message = encrypt_message(session.algorithm, session.key, message, session.version)
            env.encrypted = True
        except SessionError:
            log.exception("could not encrypt a response in session %d; sending it in clear", session.session_id)
    env.message_length = len(message)
    return encode_envelope(env) + message


class SessionSweeper:
    """Removes idle sessions at most every ``interval`` seconds (auth.md 9.5); the caller owns the timer."""

    def __init__(self, sessions: SessionStore, interval: float = SWEEP_INTERVAL_SECONDS) -> None:
        self.sessions = sessions
        self.interval = interval
        self._last: float | None = None

    def tick(self, now: float) -> int:
        """Sweep if the interval has passed since the last sweep; returns how many sessions were removed."""
        if self._last is not None and now - self._last < self.interval:
            return 0
        self._last = now
        removed = self.sessions.expire(now)
        if removed:
            log.info("removed %d idle sessions", removed)
        return removed

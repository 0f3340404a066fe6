"""The session side of one request's authentication (auth.md 5 step 4, 9.6, 9.8).

A request that arrives in a live session carries a ``SessionRequest``: the Authorizer asks it for the
session identity (once the session is authenticated), has it verify the request's HS_MAC when that identity
is used as proof, and tells it when a challenge answer inside the session verified. Sans-IO: no clock, no
sockets; the session itself comes from the ``SessionStore``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdlserver.auth.session_crypto import verify_mac
from hdlserver.auth.sessions import Session, SessionStore
from hdlserver.errors import ProtocolError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.credential import Credential
from hdlserver.wire.envelope import Envelope

# Java's messages (auth.md 9.6, 5 step 4).
MSG_MAC_MISSING = "Session request missing MAC code."
MSG_MAC_WRONG = "Session authentication failed."
MSG_CHALLENGED_MAC_WRONG = "The session key authentication failed."


@dataclass(slots=True)
class SessionRequest:
    """A request (header+body exactly as received, after decryption) in ``session``."""

    session: Session
    store: SessionStore
    envelope: Envelope
    header_body: bytes
    credential: Credential | None

    @property
    def authenticated_identity(self) -> tuple[bytes, int] | None:
        """The session identity when a challenge answer inside the session proved it (auth.md 9.8)."""
        s = self.session
        if not s.authenticated or s.anonymous:
            return None
        return s.identity_handle, s.identity_index

    @property
    def verified_index(self) -> int | None:
        """The HS_PUBKEY index that verified for an index-0 session identity (auth.md 6.6)."""
        return self.session.authenticated_index

    def mac_verifies(self) -> bool:
        key = self.session.key
        return (key is not None and self.credential is not None
                and verify_mac(key, self.credential, self.header_body, self.envelope.version,
                               self.envelope.suggested, self.envelope.session_id, self.envelope.request_id))

    def verify_request(self) -> None:
        """The request's HS_MAC is the identity proof: RC 404 when missing, 502 when wrong, 505 on replay."""
        if self.credential is None:
            raise ProtocolError(ResponseCode.INVALID_CREDENTIAL, MSG_MAC_MISSING)
        if not self.mac_verifies():
            raise ProtocolError(ResponseCode.INVALID_SESSION_KEY, MSG_MAC_WRONG)
        self.session.check_and_record_counter(self.credential.signer_index)
        self.store.update(self.session)

    def answer_verified(self, handle: bytes, index: int, verified_index: int | None, answer_counter: int) -> None:
        """A challenge answer for this (challenged) request verified (auth.md 5 step 4).

        The session becomes authenticated only for its own identity, byte for byte; the challenged request's
        MAC must verify as well, so a stolen session id cannot be authenticated by someone without its key.
        """
        if self.session.key is not None and not self.mac_verifies():
            raise ProtocolError(ResponseCode.INVALID_SESSION_KEY, MSG_CHALLENGED_MAC_WRONG)
        if self.session.identity_matches(handle, index):
            self.session.authenticated = True
            self.session.authenticated_index = verified_index
        self.session.check_and_record_counter(answer_counter, unique=False)
        if self.credential is not None:
            self.session.check_and_record_counter(self.credential.signer_index, unique=False)
        self.store.update(self.session)

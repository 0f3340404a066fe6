"""The Authorizer of one request: who is asking, are they allowed, and is their proof valid (auth.md 5-6).

The identity comes from an accepted challenge answer (op 200), from an authenticated session (sessions
issue), or from an identity the transport already verified (REST over HTTPS). Permission is checked
before the proof, as Java does, so an unauthorized identity gets RC 400 even with a wrong signature.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hdlserver.auth.authorize import (
    AuthorizationOutcome,
    ValueLookup,
    find_admin,
    find_in_list,
    index_zero_allows,
    index_zero_may_allow,
    parse_admin_list,
)
from hdlserver.auth.challenges import PendingChallenge
from hdlserver.auth.pubkey_answers import verify_pubkey_answer
from hdlserver.auth.secret_answers import MalformedSecretAnswer, check_secret_against_values
from hdlserver.config.settings import ServerConfig
from hdlserver.core.handler_api import AuthenticationNeeded
from hdlserver.core.homed import HomedPrefixes
from hdlserver.core.remote_identity import RemoteGroups, RemoteIdentities
from hdlserver.core.session_auth import SessionRequest
from hdlserver.errors import ProtocolError
from hdlserver.store.base import Store
from hdlserver.wire.bodies import ChallengeAnswerRequest
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import response_version
from hdlserver.wire.handles import normalize_slashless
from hdlserver.wire.values import HandleValue, ValueReference

log = logging.getLogger("hdlserver.auth")

HS_SECKEY = b"HS_SECKEY"
HS_PUBKEY = b"HS_PUBKEY"
NO_SESSION_IDENTITY = "Invalid session id or session time out. Please try again."
SESSIONS_REQUIRED = "Sessions are required for administration on this server"


@dataclass(frozen=True, slots=True)
class PresentedAnswer:
    """A challenge answer together with the challenge it answers."""

    answer: ChallengeAnswerRequest
    challenge: PendingChallenge
    answer_counter: int = 0  # the HS_MAC counter of the answer message, 0 when it had none (Java sends none)


def local_values(store: Store, homed: HomedPrefixes, handle: bytes) -> tuple[HandleValue, ...] | None:
    """All values of a handle this server is responsible for (non-public ones included), else None."""
    handle = normalize_slashless(handle)
    if not homed.serves(handle):
        return None
    return store.get_values(handle)


class RequestAuthorizer:
    """Implements ``hdlserver.core.handler_api.Authorizer`` for one request."""

    def __init__(self, store: Store, homed: HomedPrefixes, config: ServerConfig, *,
                 answer: PresentedAnswer | None = None, verified_identity: tuple[bytes, int] | None = None,
                 in_session: bool = False, session: SessionRequest | None = None) -> None:
        self.store = store
        self.homed = homed
        self.config = config
        self.answer = answer
        self.verified_identity = verified_identity
        self.in_session = in_session or session is not None
        self.session = session
        self._proof_checked = False
        self._verified_index: int | None = None

    @property
    def identity(self) -> tuple[bytes, int] | None:
        if self.verified_identity is not None:
            return self.verified_identity
        if self.answer is not None:
            return self.answer.answer.identity_handle, self.answer.answer.identity_index
        if self.session is not None:
            return self.session.authenticated_identity
        return None

    def _lookup(self) -> ValueLookup:
        remote = RemoteGroups(self.store, self.homed)

        def lookup(handle: bytes, index: int) -> Sequence[HandleValue] | None:
            values = local_values(self.store, self.homed, handle)
            if values is None:  # a group homed elsewhere: certified resolution there (auth.md 6.4 step 3)
                return remote.values(handle, index)
            return [v for v in values if v.index == index]

        return lookup

    def require_authentication(self) -> None:
        if self.config.anonymous_admin_full_access or self.identity is not None:
            return
        raise AuthenticationNeeded

    def _identity_ref(self) -> ValueReference:
        identity = self.identity
        if identity is None:
            raise ProtocolError(ResponseCode.SESSION_TIMEOUT, NO_SESSION_IDENTITY)
        if self.config.require_sessions and not self.in_session and self.verified_identity is None:
            raise ProtocolError(ResponseCode.INVALID_CREDENTIAL, SESSIONS_REQUIRED)
        return ValueReference(identity[0], identity[1])

    def check_admin(self, required: int, values: Sequence[HandleValue]) -> None:
        if self.config.anonymous_admin_full_access:
            return
        identity = self._identity_ref()
        outcome = find_admin(identity, required, values, self._lookup(),
                             server_admins=parse_admin_list(self.config.server_admins),
                             server_admin_full_access=self.config.server_admin_full_access)
        self._decide(identity, outcome)

    def check_server_list(self, *list_names: str) -> None:
        if self.config.anonymous_admin_full_access:
            return
        identity = self._identity_ref()
        entries: list[str] = []
        for name in list_names:
            entries.extend(getattr(self.config, name))
        outcome = find_in_list(identity, parse_admin_list(entries), self._lookup())
        self._decide(identity, outcome)

    def _decide(self, identity: ValueReference, outcome: AuthorizationOutcome) -> None:
        if outcome.allowed:
            self.verify_proof()
            return
        if identity.index == 0 and self._is_pubkey_answer() and self._index_zero_worth_verifying(identity, outcome):
            # auth.md 6.6: learn which HS_PUBKEY verified, then allow if that reference was visited.
            self.verify_proof()
            if self._verified_index is not None and index_zero_allows(outcome, identity.handle,
                                                                       self._verified_index):
                return
        raise ProtocolError(ResponseCode.INVALID_ADMIN)

    def _index_zero_worth_verifying(self, identity: ValueReference, outcome: AuthorizationOutcome) -> bool:
        # A local proof is checked as Java does (a bad one gives 403); a remote one costs a network round trip,
        # so it is skipped when no verified index could be among the visited references anyway.
        return (local_values(self.store, self.homed, identity.handle) is not None
                or index_zero_may_allow(outcome, identity.handle))

    def _is_pubkey_answer(self) -> bool:
        return self.answer is not None and self.answer.answer.auth_type == HS_PUBKEY

    def verify_proof(self) -> None:
        """Verify the challenge answer once (auth.md 5); RC 403 when it does not verify."""
        if self._proof_checked or self.verified_identity is not None:
            return
        if self.answer is None:
            if self.session is None or self.session.authenticated_identity is None:
                raise ProtocolError(ResponseCode.SESSION_TIMEOUT, NO_SESSION_IDENTITY)
            # An authenticated session: the request's HS_MAC is the proof (auth.md 9.8).
            self.session.verify_request()
            self._proof_checked = True
            self._verified_index = self.session.verified_index
            return
        answer, challenge = self.answer.answer, self.answer.challenge
        handle_text = answer.identity_handle.decode("utf-8", "replace")
        if answer.auth_type not in (HS_SECKEY, HS_PUBKEY):
            raise ProtocolError(ResponseCode.INVALID_CREDENTIAL)
        values = local_values(self.store, self.homed, answer.identity_handle)
        # Not homed here: the identity's own server verifies (201) or provides the keys (auth.md 5).
        remote = None if values is not None else RemoteIdentities(self.store, self.homed, answer.identity_handle,
                                                                  answer.identity_index)
        if answer.auth_type == HS_SECKEY:
            if remote is not None:
                ok = remote.verify_secret(challenge.nonce, challenge.digest, answer.signed_response)
            else:
                old_format = response_version(challenge.request_envelope.suggested) < (2, 1)
                try:
                    ok = check_secret_against_values(values or (), answer.identity_index, challenge.nonce,
                                                     challenge.digest, answer.signed_response, old_format=old_format)
                except MalformedSecretAnswer as exc:  # Java's verifier throws: RC 406
                    log.warning("malformed answer for %d:%s: %s", answer.identity_index, handle_text, exc)
                    raise ProtocolError(ResponseCode.AUTHEN_ERROR) from None
            index = answer.identity_index if ok else None
        else:
            keys_of_identity = values if remote is None else remote.public_keys()
            index = verify_pubkey_answer(keys_of_identity or (), answer.identity_index, challenge.nonce,
                                         challenge.digest, answer.signed_response)
            ok = index is not None
        if not ok:
            log.warning("authentication failed for %d:%s (%s)", answer.identity_index, handle_text,
                        answer.auth_type.decode("ascii", "replace"))
            raise ProtocolError(ResponseCode.AUTHENTICATION_FAILED)
        self._proof_checked = True
        self._verified_index = index
        if self.session is not None:
            self.session.answer_verified(answer.identity_handle, answer.identity_index, index,
                                         self.answer.answer_counter)

"""REST API authentication (auth.md 10): ``Authorization: Basic``, ``Authorization: Handle`` challenge-response
in HTTP sessions, server signatures, and the ``WWW-Authenticate`` headers of a 401.

The behaviour is that of Java's ``StandardHandleAuthenticationFilter`` and ``StandardHandleAuthenticator``:

* A request *authenticates* when it sends Basic credentials, Handle parameters naming an identity (``id``,
  ``type``, ``alg`` or ``signature``), or any other Authorization header. If that does not verify, the answer
  is 401 and the request is not run.
* Handle parameters with a ``sessionId``, an identity or a ``cnonce`` need a session: the one named, or a new
  one when none is named. Naming a session that does not exist (expired, unknown) fails, and the 401 carries
  a fresh session for the client to sign into.
* A session authenticated once authenticates later requests that only name it.
* ``cnonce`` without ``id`` asks the server to sign ``nonce || cnonce`` with its own key (step 5).

Identities are verified against this server's own store, with the challenge-answer checks of
``hdlserver.auth``: Basic as an HS_SECKEY SHA-1 answer to a challenge made up on the spot, Handle with the
session nonce as the challenge nonce and the client's cnonce as the request digest. Sans-IO: the clock is
injected, and the session table lives here.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from hdlserver.auth import keys
from hdlserver.auth.pubkey_answers import HS_PUBKEY, verify_pubkey_answer
from hdlserver.auth.secret_answers import (
    HS_SECKEY,
    SECKEY_PBKDF2_HMAC_SHA1,
    SECKEY_SHA1,
    compute_secret_answer,
    verify_secret_against_values,
)
from hdlserver.core.context import ServerState
from hdlserver.http.api_params import ParameterError
from hdlserver.http.auth_answers import (
    algorithm_code,
    lenient_base64,
    pbkdf2_iterations,
    signed_response,
    with_pbkdf2_parameters,
)
from hdlserver.http.auth_header import (
    BasicCredentials,
    HandleAuthorization,
    parse_basic,
    parse_handle,
)
from hdlserver.http.messages import HttpRequest
from hdlserver.http.rest_sessions import RestSession, RestSessionTable
from hdlserver.wire.handles import normalize_slashless

log = logging.getLogger("hdlserver.auth")

# Java signs with Util.getDefaultSigId(key algorithm) = "SHA256with<alg>", for RSA and DSA server keys alike.
SERVER_SIGNATURE_ALG = "SHA-256"
BASIC_REALM = 'Basic realm="handle"'
WWW_AUTHENTICATE = "WWW-Authenticate"
_BASIC_NONCE_BYTES = 16
# Anyone may send a PBKDF2 answer, and deriving its key blocks the event loop every interface shares (a
# million iterations take about a second); Java clients use 10 000. Counts above this are refused unverified.
MAX_REST_PBKDF2_ITERATIONS = 100_000
_BASIC_DIGEST_BYTES = 20

IDENTITY_NOT_VERIFIED = "Identity not verified"
UNKNOWN_SESSION = "Unknown or expired session"
UNUSABLE_AUTHORIZATION = "Authorization header is neither Basic credentials nor Handle parameters"
UNKNOWN_VERSION = "Unknown version in Authorization: Handle"
MISSING_FIELDS = "Missing fields in authentication data"
UNPARSABLE = "Error parsing Authorization: Handle"
TOO_MANY_ITERATIONS = f"PBKDF2 answers with more than {MAX_REST_PBKDF2_ITERATIONS} iterations are refused"


@dataclass(frozen=True, slots=True)
class Authentication:
    """What authentication decided for one request."""

    identity: tuple[bytes, int] | None = None  # the verified (handle, index)
    identity_text: str | None = None  # the identity as the client wrote it
    authenticating: bool = False  # credentials were presented
    session: RestSession | None = None  # the HTTP session the request used or was given
    server_signature: bytes | None = None  # over session nonce || cnonce, when asked for
    errors: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Credentials were presented and did not verify: the request must not run (401)."""
        return self.authenticating and self.identity is None

    def message(self) -> str:
        return "Authentication failed: " + ("; ".join(self.errors) or IDENTITY_NOT_VERIFIED)


ANONYMOUS = Authentication()


def _header_error(errors: tuple[str, ...]) -> str:
    """The errors as Java puts them in a header: UTF-8, quote and backslash escaped, others %XX."""
    out = []
    for byte in "; ".join(errors).encode("utf-8"):
        if byte == 0x22:
            out.append('\\"')
        elif byte == 0x5C:
            out.append("\\\\")
        elif 32 <= byte < 127 and byte != 0x25:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def may_want_basic(request: HttpRequest) -> bool:
    """Offer Basic in a 401 unless the client used another scheme or is a script (XMLHttpRequest)."""
    authorization = request.header("authorization")
    if authorization is not None:
        return authorization.startswith("Basic")
    return request.header("x-requested-with") != "XMLHttpRequest"


class RestAuthenticator:
    """Authenticates REST requests that arrived over TLS; owns the table of HTTP sessions."""

    def __init__(self, state: ServerState, sessions: RestSessionTable | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.state = state
        self.clock = clock or state.clock
        timeout = state.settings.server.http_config.session_timeout_seconds
        self.sessions = sessions if sessions is not None else RestSessionTable(timeout)

    # --- the filter in front of every API endpoint but /api/sessions -----------------------------------

    def __call__(self, request: HttpRequest) -> Authentication:
        authorization = request.header("authorization")
        if authorization is None:
            return ANONYMOUS
        header = parse_handle(authorization)
        session = None
        if header is not None and header.requires_session:
            session = self.requested_session(header) or self.sessions.create(self.clock())
        return self.authenticate(authorization, header, session)

    def requested_session(self, header: HandleAuthorization | None) -> RestSession | None:
        """The live session a Handle header names (only version 0 headers name one)."""
        if header is None or header.session_id is None or header.version not in (None, "0"):
            return None
        return self.sessions.get(header.session_id, self.clock())

    # --- deciding -------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, header: HandleAuthorization | None,
                     session: RestSession | None) -> Authentication:
        """Verify what the request presents, in ``session`` (None: the request has no session).

        ``header``: the Handle parameters (from the header, and for the sessions API also from request
        parameters), or None when the Authorization header is not of the Handle form.
        """
        errors: list[str] = []
        server_signature = self._server_signature(header, session, errors)
        if header is not None and header.session_id is not None and (
                session is None or session.session_id != header.session_id):
            return Authentication(authenticating=True, session=session, server_signature=server_signature,
                                  errors=(UNKNOWN_SESSION,))
        if authorization is not None and authorization.strip().startswith("Basic"):
            authenticating = True
        elif header is not None:
            authenticating = header.is_authenticating
        else:
            authenticating = authorization is not None
        if not authenticating:
            identity, text = (session.identity, session.identity_text) if session is not None else (None, None)
            return Authentication(identity, text, False, session, server_signature, tuple(errors))
        if session is not None and authorization is not None and session.authenticated \
                and session.authorization == authorization:
            return Authentication(session.identity, session.identity_text, True, session, server_signature)
        verified = None
        if header is not None and header.is_authenticating and session is not None:
            verified = self._verify_handle_parameters(header, session.nonce, errors)
        if verified is None and authorization is not None:
            credentials = parse_basic(authorization)
            if credentials is not None:
                verified = self._verify_basic(credentials, errors)
            elif parse_handle(authorization) is None:
                errors.append(UNUSABLE_AUTHORIZATION)
        if verified is None:
            return Authentication(None, None, True, session, server_signature, tuple(errors))
        identity, text = verified
        if session is not None:
            session.authenticate(identity, text, authorization)
        return Authentication(identity, text, True, session, server_signature, tuple(errors))

    def _server_signature(self, header: HandleAuthorization | None, session: RestSession | None,
                          errors: list[str]) -> bytes | None:
        if header is None or session is None or not header.is_requesting_server_signature:
            return None
        cnonce = lenient_base64(header.cnonce or "")
        if session.server_signature is None or session.cnonce != cnonce:
            try:
                signature = keys.sign(self.state.signer.private_key, session.nonce + cnonce, SERVER_SIGNATURE_ALG)
            except (TypeError, ValueError) as exc:
                log.error("cannot sign a REST server-authentication nonce: %s", exc)
                errors.append("Unable to sign challenge")
                return None
            session.cnonce, session.server_signature = cnonce, signature
        return session.server_signature

    # --- verifying identities -------------------------------------------------------------------------

    def _verify_handle_parameters(self, header: HandleAuthorization, nonce: bytes,
                                  errors: list[str]) -> tuple[tuple[bytes, int], str] | None:
        if header.version not in (None, "0"):
            errors.append(UNKNOWN_VERSION)
            return None
        identity = header.identity()
        if header.is_incomplete or identity is None:
            errors.append(MISSING_FIELDS)
            return None
        # is_incomplete guarantees every field below is present
        id_text, cnonce_text, type_text = header.id or "", header.cnonce or "", header.type or ""
        alg, signature = header.alg or "", lenient_base64(header.signature or "")
        if algorithm_code(alg) == SECKEY_PBKDF2_HMAC_SHA1:
            try:
                signature = with_pbkdf2_parameters(signature, header.salt, header.iterations, header.length)
            except ParameterError as exc:
                errors.append(f"{UNPARSABLE}: {exc}")
                return None
            iterations = pbkdf2_iterations(signature)
            if iterations is not None and iterations > MAX_REST_PBKDF2_ITERATIONS:
                errors.append(TOO_MANY_ITERATIONS)
                return None
        auth_type = type_text.encode("utf-8")
        answer = signed_response(auth_type, alg, signature)
        if answer is None:
            errors.append(UNPARSABLE)
            return None
        handle, index = identity
        verified = self._verify_identity(handle, index, auth_type, nonce, lenient_base64(cnonce_text), answer,
                                         errors)
        return None if verified is None else ((handle, verified), id_text)

    def _verify_basic(self, credentials: BasicCredentials, errors: list[str]) -> tuple[tuple[bytes, int], str] | None:
        # A challenge made up on the spot, answered with the password as the secret key (auth.md 10.1).
        nonce = secrets.token_bytes(_BASIC_NONCE_BYTES)
        digest = secrets.token_bytes(_BASIC_DIGEST_BYTES)
        answer = compute_secret_answer(credentials.password, nonce, digest, SECKEY_SHA1)
        handle, index = credentials.handle, credentials.index
        if self._verify_identity(handle, index, HS_SECKEY, nonce, digest, answer, errors) is None:
            return None
        return (handle, index), f"{index}:{handle.decode('utf-8', 'replace')}"

    def _verify_identity(self, handle: bytes, index: int, auth_type: bytes, nonce: bytes, digest: bytes,
                         answer: bytes, errors: list[str]) -> int | None:
        """The index the identity is authenticated as (the key that verified for HS_PUBKEY), or None."""
        handle_text = handle.decode("utf-8", "replace")
        stored = normalize_slashless(handle)
        if not self.state.homed.serves(stored):
            errors.append(f"Identity handle {handle_text} is not served by this server")
            return None
        values = self.state.store.get_values(stored) or ()  # non-public values included
        verified: int | None = None
        if auth_type == HS_SECKEY:
            if verify_secret_against_values(values, index, nonce, digest, answer):
                verified = index
        elif auth_type == HS_PUBKEY:
            verified = verify_pubkey_answer(values, index, nonce, digest, answer)
        if verified is None:
            log.warning("REST authentication failed for %d:%s (%s)", index, handle_text,
                        auth_type.decode("ascii", "replace"))
            errors.append(IDENTITY_NOT_VERIFIED)
        return verified

    # --- headers ----------------------------------------------------------------------------------------

    def handle_challenge(self, auth: Authentication, request: HttpRequest) -> str:
        """``Handle sessionId=.., nonce=..[, serverAlg=.., serverSignature=..][, error=..]`` (auth.md 10.2).

        A request without a session gets the one its header names, or a new one to authenticate in.
        """
        session = auth.session
        if session is None:
            authorization = request.header("authorization")
            named = self.requested_session(parse_handle(authorization)) if authorization is not None else None
            session = named or self.sessions.create(self.clock())
        parts = [f'Handle sessionId="{session.session_id}"', f'nonce="{base64.b64encode(session.nonce).decode()}"']
        if auth.server_signature is not None:
            parts.append(f'serverAlg="{SERVER_SIGNATURE_ALG}"')
            parts.append(f'serverSignature="{base64.b64encode(auth.server_signature).decode()}"')
        if auth.errors:
            parts.append(f'error="{_header_error(auth.errors)}"')
        return ", ".join(parts)

    def unauthorized_headers(self, auth: Authentication, request: HttpRequest) -> list[tuple[str, str]]:
        """The ``WWW-Authenticate`` headers of a 401 on a TLS connection (auth.md 10.2 step 6)."""
        headers = [(WWW_AUTHENTICATE, BASIC_REALM)] if may_want_basic(request) else []
        headers.append((WWW_AUTHENTICATE, self.handle_challenge(auth, request)))
        return headers

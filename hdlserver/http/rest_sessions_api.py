"""``/api/sessions`` (auth.md 10.2): open an HTTP session, authenticate in it, look at it, close it.

As Java's ``SessionsServlet``: HTTPS only (403 otherwise, empty body); ``POST /api/sessions`` opens a session
(201, ``Location: /api/sessions/this``); ``GET``/``PUT``/``POST /api/sessions/this`` show the session named by
``sessionId`` and authenticate in it when identity parameters are given (401 if they do not verify);
``DELETE /api/sessions/this`` closes it (204). The Handle parameters may come from the Authorization header
or from query, form or JSON body parameters; the header wins.
"""

from __future__ import annotations

import base64

from hdlserver.http.api_json import ApiAnswer
from hdlserver.http.api_params import Params
from hdlserver.http.auth_header import HandleAuthorization, parse_handle
from hdlserver.http.messages import HttpRequest, decode_path
from hdlserver.http.rest_auth import ANONYMOUS, SERVER_SIGNATURE_ALG, Authentication, RestAuthenticator

SESSIONS_ROOT_ALLOW = "POST, TRACE, OPTIONS"
THIS_SESSION_LOCATION = "/api/sessions/this"


def _parameter_pairs(params: Params) -> list[tuple[str, str]]:
    """Every request parameter with its first value: query and form pairs, then JSON body members."""
    pairs = list(params.pairs)
    for name in params.json_object or {}:
        value = params.get(name)
        if value is not None:
            pairs.append((name, value))
    return pairs


def _shown_identity(auth: Authentication) -> str | None:
    """The identity the session answer reports: the one just verified, else the session's own -- a session
    authenticated earlier stays so when a later attempt in it fails (as in Java)."""
    if auth.identity is not None:
        return auth.identity_text
    session = auth.session
    return session.identity_text if session is not None and session.authenticated else None


class RestSessionsApi:
    def __init__(self, authenticator: RestAuthenticator) -> None:
        self.auth = authenticator

    def handle(self, request: HttpRequest, rest: str) -> tuple[ApiAnswer, Authentication]:
        """Any method but OPTIONS. Raises ParameterError for a JSON body that is not an object (400)."""
        if not request.secure:
            return ApiAnswer(403, None), ANONYMOUS
        path = decode_path(rest).removeprefix("/").removesuffix("/")
        if not path and request.method != "POST":
            return ApiAnswer(405, None, [("Allow", SESSIONS_ROOT_ALLOW)]), ANONYMOUS
        if path and path != "this":
            return ApiAnswer(403, None), ANONYMOUS
        authorization = request.header("authorization")
        header = (parse_handle(authorization) if authorization is not None else None) or HandleAuthorization()
        header = header.with_parameters(_parameter_pairs(Params.from_request(request, json_body=True)))
        if not path:
            return self._open(authorization, header)
        session = self.auth.sessions.get(header.session_id, self.auth.clock()) if header.session_id else None
        if request.method == "DELETE":
            if session is None:
                return ApiAnswer(403, None), ANONYMOUS
            self.auth.sessions.remove(session.session_id)
            return ApiAnswer(204, None), ANONYMOUS
        if session is None and header.requires_session:
            return ApiAnswer(403, None), ANONYMOUS
        auth = self.auth.authenticate(authorization, header, session)
        failed = auth.authenticating and _shown_identity(auth) is None
        return ApiAnswer(401 if failed else 200, self._representation(auth)), auth

    def _open(self, authorization: str | None, header: HandleAuthorization) -> tuple[ApiAnswer, Authentication]:
        if header.session_id is not None:
            return ApiAnswer(400, None), ANONYMOUS  # a new session cannot be named by the client
        session = self.auth.sessions.create(self.auth.clock())
        auth = self.auth.authenticate(authorization, header, session)
        # Java answers 201 even when identity parameters sent along did not verify; "error" tells.
        return ApiAnswer(201, self._representation(auth), [("Location", THIS_SESSION_LOCATION)]), auth

    @staticmethod
    def _representation(auth: Authentication) -> dict[str, object]:
        """The session JSON: sessionId, nonce, serverAlg/serverSignature, authenticated + id, error."""
        out: dict[str, object] = {}
        session = auth.session
        if session is not None:
            out["sessionId"] = session.session_id
            out["nonce"] = base64.b64encode(session.nonce).decode("ascii")
        if auth.server_signature is not None:
            out["serverAlg"] = SERVER_SIGNATURE_ALG
            out["serverSignature"] = base64.b64encode(auth.server_signature).decode("ascii")
        identity_text = _shown_identity(auth)
        if identity_text is not None:
            out["authenticated"] = True
            out["id"] = identity_text
        if auth.errors:
            out["error"] = "; ".join(auth.errors)
        return out or {"authenticated": False}

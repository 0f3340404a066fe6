"""The REST JSON API under ``/api/`` (server.md 14).

Every endpoint builds the protocol request Java's servlet builds, runs it through the same ``Dispatcher``
as a UDP or TCP request and translates the answer to JSON; the API has no operation logic of its own. Like
Java's API it is not bound by the HS_SITE interface type: authorization is the operations' business.

Authentication (auth.md 10) is an ``Authenticator``: given a request that arrived over TLS it returns an
``Authentication`` (the verified identity, or a failure answered with 401 before anything runs). The default
is ``RestAuthenticator``, which also serves ``/api/sessions``. Credentials are never looked at on plain HTTP,
where a 401 becomes 403.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from hdlserver.auth.secret_answers import SECKEY_PBKDF2_HMAC_SHA1
from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.core.accesslog import escape_field, format_log_time
from hdlserver.core.context import TRANSPORT_HTTP, InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher, Outcome
from hdlserver.errors import DecodeError
from hdlserver.http.api_json import ApiAnswer, error_json, http_status, render_json, response_json
from hdlserver.http.api_params import ParameterError, Params, has_json_entity, parse_java_int
from hdlserver.http.auth_answers import algorithm_code, lenient_base64, pbkdf2_iterations, with_pbkdf2_parameters
from hdlserver.http.messages import HttpRequest, HttpResponse, decode_path
from hdlserver.http.rest_auth import (
    ANONYMOUS,
    MAX_REST_PBKDF2_ITERATIONS,
    TOO_MANY_ITERATIONS,
    WWW_AUTHENTICATE,
    Authentication,
    RestAuthenticator,
)
from hdlserver.http.rest_sessions_api import SESSIONS_ROOT_ALLOW, RestSessionsApi
from hdlserver.jsonform.values_json import JsonFormError, value_from_json, values_from_json
from hdlserver.net.logs import ACCESS_LOGGER
from hdlserver.wire.bodies import (
    AddValueRequest,
    CreateHandleRequest,
    DeleteHandleRequest,
    HomeNARequest,
    ListHandlesRequest,
    ListHandlesResponse,
    ListHomedNAsRequest,
    ListHomedNAsResponse,
    RemoveValueRequest,
    ResolutionRequest,
    SiteInfoRequest,
    UnhomeNARequest,
    VerifyChallengeRequest,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope
from hdlserver.wire.handles import fold_case
from hdlserver.wire.message import Message
from hdlserver.wire.values import HandleValue

log = logging.getLogger("hdlserver.http")
_access = logging.getLogger(ACCESS_LOGGER)

Authenticator = Callable[[HttpRequest], Authentication]
Identity = tuple[bytes, int] | None

API_ROOT = "/api"
ENDPOINTS = ("handles", "site", "prefixes", "verifications", "sessions")
API_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"})
# Java's AbstractRequest defaults: recursive, cache-certified, public values only.
BASE_FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO
BLANK_HANDLE = b"/"
INTERNAL_ERROR = "Server error processing request, see server logs"

_ALLOW = {
    "handles": "GET, HEAD, POST, PUT, DELETE, TRACE, OPTIONS",
    "site": "GET, HEAD, TRACE, OPTIONS",
    "verifications": "GET, HEAD, TRACE, OPTIONS",
    "prefixes": "GET, HEAD, POST, DELETE, TRACE, OPTIONS",
    "sessions": "GET, HEAD, POST, PUT, DELETE, TRACE, OPTIONS",
    None: "TRACE, OPTIONS",
}
_PREFIX_ALLOW = "POST, DELETE, TRACE, OPTIONS"
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def route(path: str) -> tuple[str | None, str]:
    """(endpoint, raw rest of the path) of an ``/api/...`` path; endpoint None = unknown endpoint."""
    for name in ENDPOINTS:
        base = f"{API_ROOT}/{name}"
        if path == base or path.startswith(base + "/"):
            return name, path[len(base):]
    return None, path


def is_api_path(path: str) -> bool:
    return path == API_ROOT or path.startswith(API_ROOT + "/")


def path_argument(rest: str) -> str:
    """The handle (or prefix, or identity) in the rest of the path: %-decoded, one leading '/' removed."""
    return decode_path(rest).removeprefix("/")


def path_handle(rest: str) -> bytes:
    """The handle in the rest of the path as the bytes the client %-encoded, one leading '/' removed.

    Not decoded to text, so that a handle that is not UTF-8 reaches the operations as it is (CREATE answers
    RC 102) instead of being stored with replacement characters. Raises ParameterError for a '%' that does
    not start two hex digits.
    """
    if _BAD_ESCAPE.search(rest):
        raise ParameterError("Invalid %-encoding in the request path: '%' must be followed by two hex digits")
    return unquote_to_bytes(rest).removeprefix(b"/")


class RestApi:
    def __init__(self, state: ServerState, dispatcher: Dispatcher, *, log_accesses: bool = False,
                 authenticate: Authenticator | None = None) -> None:
        """``authenticate`` replaces the default ``RestAuthenticator`` for every endpoint but ``/api/sessions``."""
        self.state = state
        self.dispatcher = dispatcher
        self.log_accesses = log_accesses
        self.authenticator = RestAuthenticator(state)
        self.authenticate: Authenticator = authenticate or self.authenticator
        self.sessions = RestSessionsApi(self.authenticator)

    # --- entry point ----------------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        endpoint, rest = route(request.path)
        method = request.method
        auth = ANONYMOUS
        if method not in API_METHODS:
            answer = ApiAnswer(501, error_json(f"Unknown method {method}"))
        elif method == "OPTIONS":
            answer = ApiAnswer(200, None, [("Allow", self._allow(endpoint, rest, request))])
        else:
            try:
                if endpoint == "sessions":
                    answer, auth = self.sessions.handle(request, rest)
                else:
                    answer, auth = self._authenticated(endpoint, rest, request)
            except (ParameterError, JsonFormError) as exc:
                answer = ApiAnswer(400, error_json(str(exc)))
                self._log_access(request, OpCode.RESERVED, ResponseCode.PROTOCOL_ERROR)
        return self._render(request, answer, auth)

    def _authenticated(self, endpoint: str | None, rest: str, request: HttpRequest) -> tuple[ApiAnswer, Authentication]:
        """Authenticate (TLS only), then run the request unless the credentials failed."""
        auth = self.authenticate(request) if request.secure else ANONYMOUS
        if auth.failed:
            self._log_access(request, OpCode.RESERVED, ResponseCode.AUTHENTICATION_NEEDED)
            return ApiAnswer(401, error_json(auth.message(), ResponseCode.AUTHENTICATION_NEEDED)), auth
        answer = self._dispatch(endpoint, rest, request, auth.identity)
        if auth.server_signature is not None and answer.status != 401:
            answer.headers.append((WWW_AUTHENTICATE, self.authenticator.handle_challenge(auth, request)))
        return answer, auth

    def _dispatch(self, endpoint: str | None, rest: str, request: HttpRequest, identity: Identity) -> ApiAnswer:
        method = request.method
        reading = method in ("GET", "HEAD", "POST")  # POST is a GET with parameters in the body
        if endpoint == "handles":
            if reading:
                params = Params.from_request(request, json_body=method == "POST")
                return self._handles_get(request, rest, params, identity)
            if method == "PUT":
                return self._handles_put(request, rest, identity)
            return self._handles_delete(request, rest, identity)
        if endpoint == "prefixes":
            if method in ("GET", "HEAD"):
                return self._prefixes_get(request, rest, identity)
            if method in ("POST", "DELETE"):
                return self._prefixes_change(request, rest, identity)
        elif endpoint == "site" and reading:
            return self._site(request, Params.from_request(request, json_body=method == "POST"), identity)
        elif endpoint == "verifications" and reading:
            return self._verify(request, rest, Params.from_request(request, json_body=method == "POST"), identity)
        elif endpoint is None:
            return ApiAnswer(404, error_json(f"Unknown HTTP API endpoint {method} {request.path}"))
        return ApiAnswer(405, error_json(f"Unknown HTTP API endpoint {method} {request.path}"))

    def _allow(self, endpoint: str | None, rest: str, request: HttpRequest) -> str:
        if endpoint == "prefixes":
            prefix = Params.from_request(request).get("prefix")
            if (prefix if prefix is not None else path_argument(rest)):
                return _PREFIX_ALLOW
        if endpoint == "sessions" and not path_argument(rest).removesuffix("/"):
            return SESSIONS_ROOT_ALLOW
        return _ALLOW[endpoint]

    def _render(self, request: HttpRequest, answer: ApiAnswer, auth: Authentication) -> HttpResponse:
        status = answer.status
        headers = list(answer.headers)
        if status == 401:
            if not request.secure:
                status = 403  # no authentication on plain HTTP (auth.md 10)
            elif not any(name == WWW_AUTHENTICATE for name, _ in headers):
                headers += self.authenticator.unauthorized_headers(auth, request)
        if answer.body is None:
            return HttpResponse(status, headers)
        try:
            params = Params.from_request(request, json_body=request.method == "POST")
        except ParameterError:
            params = Params(request.query_pairs())
        return render_json(status, answer.body, pretty=params.flag("pretty"), callback=params.get("callback"),
                           headers=headers)

    # --- running protocol requests --------------------------------------------------------------------

    def _call(self, request: HttpRequest, opcode: int, body: object, flags: int,
              identity: Identity) -> tuple[list[Message], Outcome]:
        raw = build_request(opcode, body, flags)
        info = RequestInfo(TRANSPORT_HTTP, request.client, InterfaceRole(), request.received,
                           verified_identity=identity)
        outcome = self.dispatcher.handle(decode_envelope(raw), raw[ENVELOPE_SIZE:], info)
        self._log_access(request, outcome.opcode, outcome.response_code, outcome.handle, outcome.identity)
        return [decode_answer(m) for m in outcome.messages], outcome

    def _single(self, request: HttpRequest, opcode: int, body: object, flags: int, handle: bytes | None,
                identity: Identity) -> ApiAnswer:
        try:
            messages, _outcome = self._call(request, opcode, body, flags, identity)
        except DecodeError:
            log.exception("an answer of the dispatcher did not decode")
            return ApiAnswer(500, error_json(INTERNAL_ERROR, ResponseCode.ERROR))
        msg = messages[0]
        return ApiAnswer(http_status(msg.header.opcode, msg.header.response_code, msg.header.flags),
                         response_json(msg, handle))

    def _log_access(self, request: HttpRequest, opcode: int, response_code: int, handle: bytes = b"",
                    identity: str = "") -> None:
        """The access-log line of an API request: server.md 12.1 with the type ``HTTP:HDLApi``."""
        if not self.log_accesses:
            return
        millis = int((time.monotonic() - request.received) * 1000)
        admin = f"adm={escape_field(identity)}" if identity else ""
        handle_text = escape_field(handle.decode("utf-8", "replace"))
        _access.info(f'{request.client} HTTP:HDLApi "{format_log_time(time.time())}" '
                     f"{opcode} {response_code} {millis}ms {admin} {handle_text}")

    @staticmethod
    def _flags(params: Params, base: int = BASE_FLAGS) -> int:
        flags = base
        if params.flag("cert"):
            flags |= OpFlag.CT
        if params.flag("doNotRefer"):
            flags |= OpFlag.DNRF
        return flags

    # --- /api/handles ---------------------------------------------------------------------------------

    def _handles_get(self, request: HttpRequest, rest: str, params: Params, identity: Identity) -> ApiAnswer:
        handle = path_handle(rest)
        if handle:
            return self._resolve(request, handle, params, identity)
        prefix = params.get("prefix")
        if prefix is None:
            return ApiAnswer(400, error_json("Empty handle invalid", ResponseCode.INVALID_HANDLE))
        return self._list(request, OpCode.LIST_HANDLES, ListHandlesRequest(prefix.encode("utf-8")), params, identity)

    def _resolve(self, request: HttpRequest, handle: bytes, params: Params, identity: Identity) -> ApiAnswer:
        types = tuple(t.encode("utf-8") for t in params.values("type") or ())
        indexes = params.indexes() or ()
        flags = self._flags(params, BASE_FLAGS & ~OpFlag.PO)
        public_only = params.flag("publicOnly") if params.get("publicOnly") is not None else identity is None
        if public_only:
            flags |= OpFlag.PO
        if params.flag("auth"):
            flags |= OpFlag.AT
        body = ResolutionRequest(handle, indexes, types)
        return self._single(request, OpCode.RESOLUTION, body, flags, handle, identity)

    def _handles_put(self, request: HttpRequest, rest: str, identity: Identity) -> ApiAnswer:
        params = Params.from_request(request)
        if not has_json_entity(request):
            raise ParameterError(f"Unsupported media type {request.header('content-type')}")
        handle = path_handle(rest)
        various = params.get("index") == "various"
        indexes = None if various else params.indexes()
        values = self._put_values(request.body, handle)
        body: object
        if various or indexes is not None:
            if indexes is not None and (len(set(indexes)) != len({v.index for v in values})
                                        or not set(indexes) <= {v.index for v in values}):
                raise ParameterError("Mismatched indexes in PUT request")
            opcode, body = OpCode.ADD_VALUE, AddValueRequest(handle, values)
        else:
            opcode, body = OpCode.CREATE_HANDLE, CreateHandleRequest(handle, values)
        overwrite = params.java_boolean("overwrite")
        flags = self._flags(params)
        if overwrite is None or overwrite:  # PUT overwrites unless told not to
            flags |= OpFlag.OVRW
        if params.java_boolean("mintNewSuffix"):
            flags |= OpFlag.MINT
        return self._single(request, opcode, body, flags, handle, identity)

    def _put_values(self, data: bytes, handle: bytes) -> tuple[HandleValue, ...]:
        """The values of a PUT body: an array, ``{"values": [..], "handle": ..}`` or one value object."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParameterError(f"Invalid JSON in PUT request: {exc}") from None
        if isinstance(document, list):
            return values_from_json(document, resolve_host_names=False)
        if isinstance(document, dict):
            if "values" in document:
                if "handle" in document:
                    self._check_same_handle(handle, document["handle"])
                if document["values"] is None:
                    return ()
                return values_from_json(document["values"], "values", resolve_host_names=False)
            if all(key in document for key in ("index", "type", "data")):
                return (value_from_json(document, resolve_host_names=False),)
        raise ParameterError("Invalid JSON in PUT request")

    def _check_same_handle(self, handle: bytes, given: object) -> None:
        if not isinstance(given, str):
            raise ParameterError("Mismatched handle in PUT request")
        case_sensitive = self.state.case_sensitive
        if fold_case(handle, case_sensitive) != fold_case(given.encode("utf-8"), case_sensitive):
            raise ParameterError("Mismatched handle in PUT request")

    def _handles_delete(self, request: HttpRequest, rest: str, identity: Identity) -> ApiAnswer:
        params = Params.from_request(request)
        handle = path_handle(rest)
        indexes = params.indexes()
        body: object = DeleteHandleRequest(handle) if indexes is None else RemoveValueRequest(handle, indexes)
        opcode = OpCode.DELETE_HANDLE if indexes is None else OpCode.REMOVE_VALUE
        return self._single(request, opcode, body, self._flags(params), handle, identity)

    # --- lists ----------------------------------------------------------------------------------------

    def _list(self, request: HttpRequest, opcode: int, body: ListHandlesRequest | ListHomedNAsRequest,
              params: Params, identity: Identity) -> ApiAnswer:
        page = params.integer("page", -1)
        page_size = params.integer("pageSize", -1)
        paging = page >= 0 and page_size >= 0
        try:
            messages, _outcome = self._call(request, opcode, body, self._flags(params), identity)
        except DecodeError:
            log.exception("an answer of the dispatcher did not decode")
            return ApiAnswer(500, error_json(INTERNAL_ERROR, ResponseCode.ERROR))
        names: list[bytes] = []
        for msg in messages:
            if not isinstance(msg.body, ListHandlesResponse | ListHomedNAsResponse):
                return ApiAnswer(http_status(msg.header.opcode, msg.header.response_code, msg.header.flags),
                                 response_json(msg, body.handle))
            names.extend(msg.body.handles)
        shown = names[page * page_size : (page + 1) * page_size] if paging else names
        out: dict[str, object] = {"responseCode": ResponseCode.SUCCESS}
        if opcode == OpCode.LIST_HANDLES:
            out["prefix"] = body.handle.decode("utf-8", "replace")
        out["totalCount"] = str(len(names))
        if paging:
            out["page"] = page
            out["pageSize"] = page_size
        key = "prefixes" if opcode == OpCode.LIST_HOMED_NAS else "handles"
        out[key] = [name.decode("utf-8", "replace") for name in shown]
        return ApiAnswer(200, out)

    # --- /api/site, /api/prefixes, /api/verifications, /api/sessions ----------------------------------

    def _site(self, request: HttpRequest, params: Params, identity: Identity) -> ApiAnswer:
        return self._single(request, OpCode.GET_SITE_INFO, SiteInfoRequest(BLANK_HANDLE), self._flags(params),
                            BLANK_HANDLE, identity)

    def _prefixes_get(self, request: HttpRequest, rest: str, identity: Identity) -> ApiAnswer:
        params = Params.from_request(request)
        prefix = params.get("prefix")
        if prefix is None:
            prefix = path_argument(rest)
        if prefix:
            return ApiAnswer(405, None, [("Allow", _PREFIX_ALLOW)])
        return self._list(request, OpCode.LIST_HOMED_NAS, ListHomedNAsRequest(BLANK_HANDLE), params, identity)

    def _prefixes_change(self, request: HttpRequest, rest: str, identity: Identity) -> ApiAnswer:
        params = Params.from_request(request, json_body=True)
        prefix = params.get("prefix")
        handle = path_handle(rest) if prefix is None else prefix.encode("utf-8")
        homing = request.method == "POST"
        if not handle:
            raise ParameterError(f"Prefix not specified in {'homing' if homing else 'unhoming'} request")
        body = HomeNARequest(handle) if homing else UnhomeNARequest(handle)
        opcode = OpCode.HOME_NA if homing else OpCode.UNHOME_NA
        return self._single(request, opcode, body, self._flags(params), handle, identity)

    def _verify(self, request: HttpRequest, rest: str, params: Params, identity: Identity) -> ApiAnswer:
        """VERIFY_CHALLENGE of a client's secret-key MAC over ``nonce || cnonce`` (auth.md 10.3)."""
        target = path_argument(rest)
        if not target:
            raise ParameterError("Handle not specified in verification request")
        handle, index = self._index_colon_handle(target)
        indexes = params.indexes()
        if not indexes:
            if index < 0:
                raise ParameterError("No index provided")
        elif len(indexes) > 1 or index >= 0:
            raise ParameterError("Too many indexes specified in verification request")
        else:
            index = indexes[0]
        texts = [params.get(name) for name in ("nonce", "cnonce", "alg", "signature")]
        if any(t is None for t in texts):
            raise ParameterError("Missing parameters in verification request")
        nonce_text, cnonce_text, alg, signature_text = (t or "" for t in texts)
        nonce, cnonce, signature = (lenient_base64(t) for t in (nonce_text, cnonce_text, signature_text))
        code = algorithm_code(alg)
        if code is None:
            raise ParameterError("Unknown algorithm")
        if code == SECKEY_PBKDF2_HMAC_SHA1:
            signature = with_pbkdf2_parameters(signature, params.get("salt"), params.get("iterations"),
                                               params.get("length"))
            iterations = pbkdf2_iterations(signature)
            if iterations is not None and iterations > MAX_REST_PBKDF2_ITERATIONS:
                raise ParameterError(TOO_MANY_ITERATIONS)
        body = VerifyChallengeRequest(handle, index, nonce, 0, cnonce, bytes((code,)) + signature)
        return self._single(request, OpCode.VERIFY_CHALLENGE, body, self._flags(params), handle,
                            identity)

    @staticmethod
    def _index_colon_handle(text: str) -> tuple[bytes, int]:
        """``index:handle``; -1 when there is no numeric index part."""
        colon = text.find(":")
        if colon >= 0 and text[:colon].isdigit() and text[:colon].isascii():
            return text[colon + 1 :].encode("utf-8"), parse_java_int(text[:colon], "index")
        return text.encode("utf-8"), -1

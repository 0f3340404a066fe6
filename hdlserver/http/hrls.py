"""Reverse lookup under ``/hrls`` (issue 7 item 6): the search endpoint pyhandle's ``search_handle`` calls.

It follows the B2HANDLE reverse-lookup servlet pyhandle was written against:

* ``GET /hrls/handles?URL=http://example.org/*&CHECKSUM=abc`` answers a JSON list of handle names whose
  records hold, for every ``TYPE=pattern`` pair, a value of that type whose data match (``*`` matches any
  run of characters; types ignore ASCII case, data do not). Pairs are ANDed, a repeated type too.
* ``limit`` (default 1000, at most 10000) and ``page`` (results to skip, as the servlet's SQL offset) page
  through the answer; ``prefix=P`` keeps handles under ``P/`` (pyhandle filters on its side instead).
* ``GET /hrls/ping`` answers ``OK``.

Only public-read values are searched, for everyone: a search must not reveal what a resolution would
not. pyhandle always sends Basic credentials; they are verified as on ``/api`` (over TLS; wrong ones: 401)
and refused on plain HTTP (403), but they widen nothing. Bad queries are 400 with a JSON message.
The search runs on the store's reverse index (hdlserver/store/reverse_index.py), never a scan of records.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hdlserver.errors import StorageError
from hdlserver.http.api_json import error_json
from hdlserver.http.api_params import ParameterError, parse_java_int
from hdlserver.http.messages import JSON_CONTENT_TYPE, HttpRequest, HttpResponse, text_response
from hdlserver.http.rest import Authenticator
from hdlserver.store.reverse_index import MAX_TYPE_BYTES, WILDCARD, Condition, SearchTooBroadError, condition
from hdlserver.wire.codes import ResponseCode

log = logging.getLogger("hdlserver.http")

HRLS_ROOT = "/hrls"
SEARCH_PATHS = frozenset({"/hrls/handles", "/hrls/handles/"})
PING_PATHS = frozenset({"/hrls/ping", "/hrls/ping/"})
ALLOW = "GET, HEAD, OPTIONS"
DEFAULT_LIMIT = 1000  # the servlet's default
MAX_LIMIT = 10000  # the servlet's SQL maximum
MAX_PAGE = 100_000  # results skipped: every skipped handle is still walked and remembered
MAX_CONDITIONS = 8
MAX_PATTERN_BYTES = 1024
MAX_SCANNED = 200_000  # index entries one request may walk (the request runs on the event loop)
CONTROL_PARAMETERS = frozenset({"limit", "page", "prefix"})
UNSUPPORTED_PARAMETERS = frozenset({"enforcesql", "retrieverecords"})  # the servlet's, for SQL/Solr back ends
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class Searchable(Protocol):
    def search(self, conditions: Sequence[Condition], *, prefix: bytes | None = None, limit: int,
               offset: int = 0, max_scanned: int) -> list[bytes]: ...


def is_hrls_path(path: str) -> bool:
    return path == HRLS_ROOT or path.startswith(HRLS_ROOT + "/")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    conditions: tuple[Condition, ...]
    limit: int
    page: int
    prefix: bytes | None


def parse_query(pairs: Sequence[tuple[str, str]]) -> SearchQuery:
    """The search a query string asks for; ParameterError with the reason for anything it cannot be."""
    conditions: list[Condition] = []
    limit, page, prefix = DEFAULT_LIMIT, 0, None
    for name, value in pairs:
        key = name.lower()
        if key == "limit":
            limit = parse_java_int(value, "limit")
            if not 1 <= limit <= MAX_LIMIT:
                raise ParameterError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
        elif key == "page":
            page = parse_java_int(value, "page")
            if not 0 <= page <= MAX_PAGE:
                raise ParameterError(f"page (results to skip) must be between 0 and {MAX_PAGE}, not {page}")
        elif key == "prefix":
            if not value or "/" in value:
                raise ParameterError("prefix must be a handle prefix such as 21.T123, without '/'")
            prefix = value.encode("utf-8")
        elif key in UNSUPPORTED_PARAMETERS:
            raise ParameterError(f"parameter {name} is not supported by this server")
        else:
            conditions.append(_condition(name, value))
    if not conditions:
        raise ParameterError("no search terms: give at least one TYPE=value pair, e.g. URL=http://example.org/*")
    if len(conditions) > MAX_CONDITIONS:
        raise ParameterError(f"at most {MAX_CONDITIONS} search terms")
    return SearchQuery(tuple(conditions), limit, page, prefix)


def _condition(name: str, value: str) -> Condition:
    if not name:
        raise ParameterError("a search term without a type name")
    if len(name.encode("utf-8")) > MAX_TYPE_BYTES:
        raise ParameterError(f"type name longer than {MAX_TYPE_BYTES} bytes")
    if not value:
        raise ParameterError(f"empty value for {name}: give the value or a pattern with '*'")
    if len(value.encode("utf-8")) > MAX_PATTERN_BYTES:
        raise ParameterError(f"value for {name} is longer than {MAX_PATTERN_BYTES} bytes")
    if not value.strip(WILDCARD.decode()):
        raise ParameterError(f"value for {name} is only '*': it would match everything")
    return condition(name, value)


def _json(status: int, document: object) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", JSON_CONTENT_TYPE)], json.dumps(document).encode("utf-8"))


def _error(status: int, message: str, code: int = ResponseCode.PROTOCOL_ERROR) -> HttpResponse:
    return _json(status, error_json(message, code))


class ReverseLookup:
    """Answers ``/hrls/...`` requests from the store's reverse index."""

    def __init__(self, store: Searchable, authenticate: Authenticator) -> None:
        self.store = store
        self.authenticate = authenticate

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method == "OPTIONS":
            return HttpResponse(200, [("Allow", ALLOW)])
        if request.path not in SEARCH_PATHS | PING_PATHS:
            return _error(404, f"Unknown reverse-lookup endpoint {request.path}: use /hrls/handles?TYPE=value",
                          ResponseCode.ERROR)
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, [("Allow", ALLOW)])
        if request.path in PING_PATHS:
            return text_response(200, "OK\n")
        if request.header("authorization") is not None:
            if not request.secure:
                return _error(403, "Credentials are accepted only over HTTPS", ResponseCode.AUTHENTICATION_NEEDED)
            auth = self.authenticate(request)
            if auth.failed:
                return _error(401, auth.message(), ResponseCode.AUTHENTICATION_NEEDED)
        try:
            if _BAD_ESCAPE.search(request.query):
                raise ParameterError("Invalid %-encoding in the query: '%' must be followed by two hex digits")
            query = parse_query(request.query_pairs())
            found = self.store.search(query.conditions, prefix=query.prefix, limit=query.limit, offset=query.page,
                                      max_scanned=MAX_SCANNED)
        except (ParameterError, SearchTooBroadError) as exc:
            return _error(400, str(exc))
        except StorageError as exc:
            log.error("reverse lookup %s failed: %s", request.target, exc)
            return _error(503, f"Search is not available: {exc}", ResponseCode.SERVER_TOO_BUSY)
        return _json(200, [name.decode("utf-8", "replace") for name in found])

"""One HTTP request as the handlers see it, and the response they return (no sockets, no asyncio)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
HTML_CONTENT_TYPE = "text/html;charset=UTF-8"
TEXT_CONTENT_TYPE = "text/plain;charset=UTF-8"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # the request target exactly as sent (path and query still %-encoded)
    headers: tuple[tuple[str, str], ...]  # names lower-cased, values as sent (latin-1 decoded)
    body: bytes
    client: str  # the client's address (after remote_address_header processing)
    secure: bool  # arrived over TLS
    received: float  # time.monotonic() when the request head was complete
    http_version: str = "1.1"

    @property
    def path(self) -> str:
        """The raw path (without the query), still %-encoded."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str) -> str | None:
        """The first header with this (case-insensitive) name, or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def query_pairs(self) -> list[tuple[str, str]]:
        """Query parameters decoded as a servlet container does: UTF-8, '+' is a space, blanks kept."""
        return parse_qsl(self.query, keep_blank_values=True, encoding="utf-8", errors="replace")

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower-cased ("" when absent)."""
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False  # close the connection after this response

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


def decode_path(raw: str) -> str:
    """%-decoding of a path as UTF-8 with '+' left alone (Java ``decodeURLIgnorePlus``)."""
    return unquote(raw, encoding="utf-8", errors="replace")


def text_response(status: int, text: str, content_type: str = TEXT_CONTENT_TYPE) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", content_type)], text.encode("utf-8"))


def empty_response(status: int, *headers: tuple[str, str]) -> HttpResponse:
    return HttpResponse(status, list(headers))

"""Resolution for people: ``GET /<handle>`` redirects to the handle's URL, like the Java server's proxy pages.

* a URL value (the lowest index among values of type URL) -> 302 to it;
* ``?noredirect``, or no usable URL -> an HTML page listing the handle's public values;
* handle not found -> a 404 page; ``/`` -> a small page with a form (``/?hdl=<handle>``);
* ``/robots.txt`` and ``/favicon.ico`` -> the files named by ``http_config`` (``robots_txt``, ``favicon``;
  ``redirect:<url>`` redirects), or 404 when not configured.

Only public values are shown (the request has PO set). ``10320/loc`` location lists are not interpreted.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.config.settings import HttpServerConfig
from hdlserver.core.context import TRANSPORT_HTTP, InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.http.api_params import Params
from hdlserver.http.messages import HTML_CONTENT_TYPE, TEXT_CONTENT_TYPE, HttpRequest, HttpResponse, decode_path
from hdlserver.jsonform.values_json import data_to_json, gson_dumps, iso_timestamp, text_of
from hdlserver.wire.bodies import ErrorBody, ResolutionRequest, ResolutionResponse
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope
from hdlserver.wire.values import HandleValue, has_type

log = logging.getLogger("hdlserver.http")

PROXY_METHODS = "GET, HEAD, POST, TRACE, OPTIONS"
_RESOLUTION_FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO
_URL_TYPE = b"URL"
_UNSAFE_IN_LOCATION = re.compile(r"[\x00-\x20\x7f]")
_ICON_TYPES = {".png": "image/png", ".gif": "image/gif", ".svg": "image/svg+xml", ".jpg": "image/jpeg"}
_STATUS_BY_CODE = {
    ResponseCode.HANDLE_NOT_FOUND: 404, ResponseCode.SERVER_NOT_RESP: 404, ResponseCode.SERVICE_REFERRAL: 404,
    ResponseCode.PREFIX_REFERRAL: 404, ResponseCode.PROTOCOL_ERROR: 400, ResponseCode.INVALID_HANDLE: 400,
    ResponseCode.SERVER_TOO_BUSY: 503, ResponseCode.SERVER_BACKUP: 503,
}


def _page(status: int, title: str, body: str) -> HttpResponse:
    document = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>\n"
                f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
    return HttpResponse(status, [("Content-Type", HTML_CONTENT_TYPE)], document.encode("utf-8"))


def _data_text(value: HandleValue) -> str:
    data = data_to_json(value.type, value.data)
    shown = data["value"]
    return shown if isinstance(shown, str) else gson_dumps(shown)


def _values_table(values: tuple[HandleValue, ...]) -> str:
    rows = []
    for v in sorted(values, key=lambda v: v.index):
        text = html.escape(_data_text(v))
        if has_type(v.type, _URL_TYPE) and _redirectable(v):
            text = f'<a href="{text}">{text}</a>'
        stamp = iso_timestamp(v.timestamp) if v.timestamp else ""
        rows.append(f"<tr><td>{v.index}</td><td>{html.escape(text_of(v.type))}</td>"
                    f"<td>{stamp}</td><td>{text}</td></tr>")
    return ("<table border=\"1\">\n<tr><th>Index</th><th>Type</th><th>Timestamp</th><th>Data</th></tr>\n"
            + "\n".join(rows) + "\n</table>")


def _redirectable(value: HandleValue) -> bool:
    try:
        url = value.data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(url) and not _UNSAFE_IN_LOCATION.search(url)


def redirect_target(values: tuple[HandleValue, ...]) -> str | None:
    """The URL to send a browser to: the lowest-index URL value usable as a Location header."""
    urls = sorted((v for v in values if has_type(v.type, _URL_TYPE) and _redirectable(v)), key=lambda v: v.index)
    return urls[0].data.decode("utf-8") if urls else None


class ProxyPages:
    def __init__(self, state: ServerState, dispatcher: Dispatcher, server_dir: Path,
                 http_config: HttpServerConfig) -> None:
        self.state = state
        self.dispatcher = dispatcher
        self.robots_txt = self._configured_file(server_dir, http_config.robots_txt, TEXT_CONTENT_TYPE)
        self.favicon = self._configured_file(server_dir, http_config.favicon, None)

    @staticmethod
    def _configured_file(server_dir: Path, setting: str | None, content_type: str | None) -> HttpResponse | None:
        """The response for a configured file, read once at startup; None when not configured or unreadable."""
        if not setting:
            return None
        setting = setting.strip()
        if setting.startswith("redirect:"):
            return HttpResponse(302, [("Location", setting.removeprefix("redirect:").strip())])
        path = server_dir / setting
        try:
            data = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s for the HTTP interface: %s", path, exc.strerror or exc)
            return None
        kind = content_type or _ICON_TYPES.get(path.suffix.lower(), "image/x-icon")
        return HttpResponse(200, [("Content-Type", kind)], data)

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method == "OPTIONS":
            return HttpResponse(200, [("Allow", PROXY_METHODS)])
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponse(405, [("Allow", PROXY_METHODS), ("Content-Type", TEXT_CONTENT_TYPE)],
                                f"Method {request.method} not allowed".encode())
        if request.path in ("/robots.txt", "/favicon.ico"):
            found = self.robots_txt if request.path == "/robots.txt" else self.favicon
            return found if found is not None else _page(404, "Not found", "<p>No such file.</p>")
        params = Params.from_request(request)
        handle = decode_path(request.path).removeprefix("/") or params.get("hdl") or ""
        if not handle:
            return self._home()
        return self._handle_page(request, handle, redirect=params.get("noredirect") is None)

    @staticmethod
    def _home() -> HttpResponse:
        form = ('<form method="get" action="/">\n<p><label>Handle: <input name="hdl" size="50"></label>\n'
                '<label><input type="checkbox" name="noredirect"> show the values, do not redirect</label>\n'
                '<input type="submit" value="Resolve"></p>\n</form>')
        return _page(200, "Handle resolution", form)

    def _handle_page(self, request: HttpRequest, handle: str, redirect: bool) -> HttpResponse:
        raw = build_request(OpCode.RESOLUTION, ResolutionRequest(handle.encode("utf-8")), _RESOLUTION_FLAGS)
        info = RequestInfo(TRANSPORT_HTTP, request.client, InterfaceRole(), request.received)
        outcome = self.dispatcher.handle(decode_envelope(raw), raw[ENVELOPE_SIZE:], info)
        msg = decode_answer(outcome.messages[0])
        code = msg.header.response_code
        title = f"Handle {handle}"
        if isinstance(msg.body, ResolutionResponse):
            target = redirect_target(msg.body.values) if redirect else None
            if target is not None:
                link = html.escape(target)
                return HttpResponse(302, [("Location", target), ("Content-Type", HTML_CONTENT_TYPE)],
                                    f'<a href="{link}">{link}</a>\n'.encode())
            return _page(200, title, _values_table(msg.body.values))
        if code == ResponseCode.VALUES_NOT_FOUND:
            return _page(200, title, "<p>This handle has no public values.</p>")
        if code == ResponseCode.HANDLE_NOT_FOUND:
            return _page(404, "Handle not found", f"<p>The handle {html.escape(handle)} was not found.</p>")
        message = text_of(msg.body.message) if isinstance(msg.body, ErrorBody) and msg.body.message else ""
        detail = f"Error {code} ({ResponseCode.name_of(code)})" + (f": {message}" if message else "")
        return _page(_STATUS_BY_CODE.get(code, 500), f"Cannot resolve {handle}", f"<p>{html.escape(detail)}</p>")

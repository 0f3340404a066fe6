"""JSON of protocol responses for the REST API, their HTTP status, and JSON/JSONP rendering (server.md 14).

Output follows the Java servlets: ``responseCode`` first, then what the response type adds, then -- when the
response has no ``handle`` of its own -- the request's handle (unless it is empty or "/").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hdlserver.http.messages import JSON_CONTENT_TYPE, HttpResponse
from hdlserver.jsonform.site_json import site_to_json
from hdlserver.jsonform.values_json import gson_dumps, text_of, values_to_json
from hdlserver.wire.bodies import (
    CreateHandleResponse,
    ErrorBody,
    ReferralBody,
    ResolutionResponse,
    SiteInfoResponse,
    VerifyChallengeResponse,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.message import Message
from hdlserver.wire.site import decode_site

JAVASCRIPT_CONTENT_TYPE = "application/javascript;charset=UTF-8"
BLANK_HANDLE = b"/"

_STATUS_BY_CODE = {
    ResponseCode.SERVICE_REFERRAL: 300, ResponseCode.PREFIX_REFERRAL: 300,
    ResponseCode.HANDLE_NOT_FOUND: 404,
    ResponseCode.HANDLE_ALREADY_EXISTS: 409, ResponseCode.VALUE_ALREADY_EXISTS: 409,
    ResponseCode.PROTOCOL_ERROR: 400, ResponseCode.INVALID_HANDLE: 400, ResponseCode.INVALID_VALUE: 400,
    ResponseCode.SERVER_NOT_RESP: 400,
    ResponseCode.OPERATION_NOT_SUPPORTED: 501,
    ResponseCode.SERVER_TOO_BUSY: 503, ResponseCode.SERVER_BACKUP: 503,
    ResponseCode.AUTHENTICATION_NEEDED: 401,
    ResponseCode.INVALID_ADMIN: 403, ResponseCode.INSUFFICIENT_PERMISSIONS: 403,
    ResponseCode.AUTHENTICATION_FAILED: 403, ResponseCode.INVALID_CREDENTIAL: 403,
}


@dataclass
class ApiAnswer:
    """An API endpoint's answer before rendering: status, JSON document (None: empty body), extra headers."""

    status: int
    body: object | None
    headers: list[tuple[str, str]] = field(default_factory=list)


def http_status(opcode: int, response_code: int, flags: int = 0) -> int:
    """The HTTP status of a response (server.md 14, status mapping table)."""
    if response_code == ResponseCode.SUCCESS:
        created = opcode in (OpCode.CREATE_HANDLE, OpCode.ADD_VALUE) and not flags & OpFlag.OVRW
        return 201 if created else 200
    if response_code == ResponseCode.VALUES_NOT_FOUND:
        return 200 if opcode == OpCode.RESOLUTION else 400
    return _STATUS_BY_CODE.get(response_code, 500)


def error_json(message: str, response_code: int = ResponseCode.PROTOCOL_ERROR) -> dict[str, object]:
    """An error that happened before a request existed (bad parameters or body): no handle."""
    return {"responseCode": response_code, "message": message}


def response_json(msg: Message, request_handle: bytes | None) -> dict[str, object]:
    """The JSON of one decoded response message to a request for ``request_handle``."""
    code = msg.header.response_code
    out: dict[str, object] = {"responseCode": code}
    body = msg.body
    if isinstance(body, ResolutionResponse):
        out["handle"] = text_of(body.handle)
        out["values"] = values_to_json(body.values)
    elif isinstance(body, ReferralBody):
        if body.handle:
            out["referralHandle"] = text_of(body.handle)
        if body.values:
            out["values"] = values_to_json(body.values)
    elif isinstance(body, ErrorBody):
        if body.message:
            out["message"] = text_of(body.message)
        if msg.header.opcode == OpCode.RESOLUTION and code == ResponseCode.VALUES_NOT_FOUND:
            out["values"] = []
    elif isinstance(body, SiteInfoResponse):
        out["site"] = site_to_json(decode_site(body.site_data))
    elif isinstance(body, VerifyChallengeResponse):
        out["isValid"] = body.valid
    elif isinstance(body, CreateHandleResponse) and body.handle is not None:
        out["handle"] = text_of(body.handle)
    if "handle" not in out and request_handle and request_handle != BLANK_HANDLE:
        out["handle"] = text_of(request_handle)
    return out


def scrub_callback(name: str) -> str:
    """A JSONP callback name with every character Java does not allow in it replaced by '_'."""
    def allowed(i: int, ch: str) -> bool:
        return ch in "_$" or ("a" <= ch <= "z") or ("A" <= ch <= "Z") or (i > 0 and "0" <= ch <= "9") \
            or ord(ch) >= 0xA0
    return "".join(ch if allowed(i, ch) else "_" for i, ch in enumerate(name))


def render_json(status: int, obj: object, *, pretty: bool = False, callback: str | None = None,
                headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    """``obj`` as JSON (Gson's formatting), or as ``callback(...);`` JavaScript when a callback is given."""
    text = gson_dumps(obj, pretty=pretty)
    if callback is None:
        content_type = JSON_CONTENT_TYPE
    else:
        content_type = JAVASCRIPT_CONTENT_TYPE
        text = f"{scrub_callback(callback)}({text});"
    return HttpResponse(status, [("Content-Type", content_type), *(headers or [])], text.encode("utf-8"))

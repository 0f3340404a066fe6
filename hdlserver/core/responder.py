"""Turning a handler's result into response bytes the way the Java server does (wire.md 5.1, 6, 7, 12.6).

Every response leaves through ``encode_response``: header flags from the request, negotiated version,
request digest when asked, signature when certified.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdlserver.core.context import ServerState
from hdlserver.wire.bodies import ErrorBody
from hdlserver.wire.codes import RESPONSE_COPIED_FLAGS, OpFlag, ResponseCode
from hdlserver.wire.digest import request_digest
from hdlserver.wire.envelope import SERVER_VERSION, Envelope, encode_envelope, response_version
from hdlserver.wire.message import Header, Message, attach_credential, encode_header_body

RESPONSE_LIFETIME = 43_200  # seconds; Java clients reject responses that have already expired
EARLY_ERROR_VERSION = (2, 3)


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a response needs to know about its request (also for requests whose body did not decode)."""

    opcode: int
    flags: int
    recursion: int
    session_id: int
    request_id: int
    suggested: tuple[int, int]
    header_body: bytes  # exactly as received, for the RD digest


def response_flags(state: ServerState, request_flags: int, extra: int = 0) -> int:
    flags = OpFlag.REC | (request_flags & (RESPONSE_COPIED_FLAGS | OpFlag.RD)) | extra
    if state.primary:
        flags |= OpFlag.AT
    return flags


def encode_response(state: ServerState, req: RequestView, response_code: int, body: object,
                    extra_flags: int = 0, request_id: int | None = None, session_id: int | None = None) -> bytes:
    """Envelope + message of the response to ``req``.

    ``request_id`` overrides the echoed id (the answer to a challenge, wire.md 9.13); ``session_id``
    overrides the echoed session id (a 402 carries the challenge id, auth.md 3).
    """
    version = response_version(req.suggested)
    flags = response_flags(state, req.flags, extra_flags)
    if response_code == ResponseCode.AUTHENTICATION_NEEDED:
        flags |= OpFlag.RD
    now = int(state.clock())
    header = Header(opcode=req.opcode, response_code=response_code, flags=flags,
                    site_serial=state.site.serial, recursion=req.recursion,
                    expiration=now + RESPONSE_LIFETIME)
    digest = request_digest(req.header_body, version) if flags & OpFlag.RD else None
    msg = Message(header=header, body=body, request_digest=digest)
    rid = req.request_id if request_id is None else request_id
    sid = req.session_id if session_id is None else session_id
    header_body = encode_header_body(msg, version)
    credential = None
    if flags & OpFlag.CT:
        credential = state.signer.credential(header_body, version, SERVER_VERSION, sid, rid)
    message = attach_credential(header_body, credential)
    env = Envelope(major=version[0], minor=version[1], suggested_major=SERVER_VERSION[0],
                   suggested_minor=SERVER_VERSION[1], session_id=sid, request_id=rid,
                   message_length=len(message))
    return encode_envelope(env) + message


def encode_error(state: ServerState, req: RequestView, response_code: int, text: str = "") -> bytes:
    return encode_response(state, req, response_code, ErrorBody(text.encode("utf-8")))


def encode_early_error(state: ServerState, response_code: int, text: str, request_id: int = -1,
                       opcode: int = 0) -> bytes:
    """The transport-level error of wire.md 12.6: version 2.3, no session, flags REC|CA|PO, serial -1."""
    now = int(state.clock())
    header = Header(opcode=opcode, response_code=response_code,
                    flags=OpFlag.REC | OpFlag.CA | OpFlag.PO, site_serial=-1, recursion=0,
                    expiration=now + RESPONSE_LIFETIME)
    msg = Message(header=header, body=ErrorBody(text.encode("utf-8")))
    message = attach_credential(encode_header_body(msg, EARLY_ERROR_VERSION), None)
    env = Envelope(major=2, minor=3, suggested_major=SERVER_VERSION[0], suggested_minor=SERVER_VERSION[1],
                   session_id=0, request_id=request_id, message_length=len(message))
    return encode_envelope(env) + message

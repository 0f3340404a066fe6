"""RESOLUTION (op 1) and GET_SITE_INFO (op 2): the full path and the hot path (design.md section 7).

The hot path answers the common request -- an unsigned, unencrypted, unfiltered resolution or a site
info request outside a session -- by reading a few header fields and copying the stored, pre-encoded
values into the answer; anything else returns None and goes through the full codec. A request seen
before is answered from its answer template (answer_templates.py) while the snapshots that vouch for it
are unchanged: two fields written into saved bytes.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from hdlserver.core.answer_templates import NO_PARTITION, AnswerTemplate, template_key
from hdlserver.core.context import ServerState
from hdlserver.core.handler_api import Authorizer, HandlerResult
from hdlserver.core.homed import check_responsible
from hdlserver.errors import ProtocolError
from hdlserver.wire.bodies import ResolutionRequest, ResolutionResponse, SiteInfoResponse
from hdlserver.wire.codes import EnvelopeFlag, OpCode, OpFlag, ResponseCode
from hdlserver.wire.digest import request_digest
from hdlserver.wire.envelope import ENVELOPE_SIZE, SERVER_VERSION, response_version
from hdlserver.wire.handles import normalize_slashless
from hdlserver.wire.valuedata import PERM_READ_VALUE
from hdlserver.wire.values import HandleValue, filter_values

_REQUEST_HEAD = struct.Struct(">BBBBiiii" "iiiHBBii")  # envelope + header
_RESPONSE_HEAD = struct.Struct(">BBBBiiii" "iiIHBBii")
_INT4 = struct.Struct(">i")
_HEAD_SIZE = ENVELOPE_SIZE + 24
_NO_FILTERS = b"\x00" * 8
_EMPTY_ERROR = b"\x00\x00\x00\x00"
_NO_CREDENTIAL = b"\x00\x00\x00\x00"
# Requests that need the full path: signing, encryption (wire.md 5); compressed, encrypted or truncated
# envelopes (wire.md 3).
_SLOW_FLAGS = OpFlag.CT | OpFlag.ENC
_SLOW_ENVELOPE = EnvelopeFlag.EC | EnvelopeFlag.TC | EnvelopeFlag.CP
_RESPONSE_LIFETIME = 43_200
# Plain module globals: class attribute lookups cost on every request.
_RESOLUTION = OpCode.RESOLUTION
_SITE_INFO = OpCode.GET_SITE_INFO
_SUCCESS = ResponseCode.SUCCESS
_NOT_FOUND = ResponseCode.HANDLE_NOT_FOUND
_SUGGESTED_MAJOR_MASK = EnvelopeFlag.SUGGESTED_MAJOR_MASK
_RD = OpFlag.RD
_REC = OpFlag.REC
_AT = OpFlag.AT
_COPIED_FLAGS = OpFlag.CA | OpFlag.PO | OpFlag.DNRF | OpFlag.RD
_DIGEST_LAYOUT = (2, 1)


def resolve(state: ServerState, request: ResolutionRequest, flags: int, auth: Authorizer,
            session_id: int) -> HandlerResult:
    """The full resolution path, with the read-access rules of server.md 8 step 5 and auth.md 2."""
    handle = normalize_slashless(request.handle)
    check_responsible(state.site, state.this_server_position, state.homed, handle)
    record = state.store.get_record(handle)
    if record is None:
        raise ProtocolError(ResponseCode.HANDLE_NOT_FOUND)
    all_values = record.values()
    values = filter_values(all_values, request.indexes, request.types)
    if not values:
        raise ProtocolError(ResponseCode.VALUES_NOT_FOUND)
    if flags & OpFlag.PO:
        values = [v for v in values if v.public_read]
        if not values:
            raise ProtocolError(ResponseCode.VALUES_NOT_FOUND)
    elif session_id != 0 or _restricted(values):
        auth.require_authentication()
        auth.check_admin(PERM_READ_VALUE, all_values)
    return HandlerResult(ResponseCode.SUCCESS, ResolutionResponse(handle=request.handle, values=tuple(values)))


def _restricted(values: list[HandleValue]) -> bool:
    """True when a value needs an administrator to read it; RC 401 when nobody may read it (auth.md 2)."""
    for v in values:
        if not v.public_read:
            if not v.admin_read:
                raise ProtocolError(ResponseCode.INSUFFICIENT_PERMISSIONS)
            return True
    return False


def site_info(state: ServerState) -> HandlerResult:
    return HandlerResult(ResponseCode.SUCCESS, SiteInfoResponse(site_data=state.site_bytes))


class FastAnswer(NamedTuple):
    """A hot-path answer; a NamedTuple because one is built per request (a frozen dataclass costs ~1 us)."""

    response: bytes
    opcode: int
    response_code: int
    handle: bytes
    suggested: tuple[int, int]


def fast_answer(state: ServerState, data: bytes) -> FastAnswer | None:
    """Answer a plain resolution or site-info request from its bytes, or None for the full path.

    Byte for byte the answer of the full path. The record comes from ``state.store.get_record``, whose
    cache makes a repeated lookup one empty read transaction (hdlserver/store/record_cache.py); a repeated
    request is answered from its template, checked the same way.
    """
    key = template_key(data)
    template = state.answer_templates.get(key)
    if template is not None:
        store = state.store
        if template.partition == NO_PARTITION or (
                store.homed_version() == template.homed_version  # type: ignore[attr-defined]
                and store.snapshot_of(template.partition) == template.snapshot):  # type: ignore[attr-defined]
            expiration = _INT4.pack(int(state.clock()) + _RESPONSE_LIFETIME)
            return FastAnswer(template.before_id + data[8:12] + template.between + expiration
                              + template.after_expiration, template.opcode, template.response_code, template.handle,
                              template.suggested)
    built = _build_fast_answer(state, data)
    if built is None:
        return None
    answer, vouched_by = built
    if vouched_by is not None:
        response = answer.response
        state.answer_templates.put(key, AnswerTemplate(
            response[:8], response[12:36], response[40:], *vouched_by, answer.opcode, answer.response_code,
            answer.handle, answer.suggested))
    return answer


_SITE_INFO_VOUCHED = (NO_PARTITION, 0, 0)


def _build_fast_answer(state: ServerState, data: bytes) -> tuple[FastAnswer, tuple[int, int, int] | None] | None:
    """The answer and what vouches for it, (partition, its snapshot id, homed version) -- None when that
    cannot be told for sure (another thread read the record meanwhile, the record is too large to cache)."""
    if len(data) < _HEAD_SIZE:
        return None
    (major, minor, flag_byte, sminor, session_id, request_id, _seq, msg_len,
     opcode, rcode, flags, _serial, recursion, _res, _exp, body_len) = _REQUEST_HEAD.unpack_from(data)
    if (flag_byte & _SLOW_ENVELOPE or session_id or rcode or flags & _SLOW_FLAGS
            or msg_len != len(data) - ENVELOPE_SIZE or body_len < 0 or _HEAD_SIZE + body_len > len(data)
            or major != 2):
        return None
    body_end = _HEAD_SIZE + body_len
    if opcode == _RESOLUTION:
        handle_len = _INT4.unpack_from(data, _HEAD_SIZE)[0] if body_len >= 4 else -1
        if handle_len < 0 or handle_len + 12 != body_len or data[body_end - 8 : body_end] != _NO_FILTERS:
            return None
        handle = data[_HEAD_SIZE + 4 : body_end - 8]
        if b"/" not in handle or len(state.site.servers) > 1:
            return None
        served, homed_version = state.homed.serves_at(handle)
        if not served:
            return None
        store = state.store
        record = store.get_record(handle)
        cached = store.record_cache.get(handle)  # type: ignore[attr-defined]
        # The cache entry tells the snapshot the record was read at if this very read put it there (or an
        # absence: then any snapshot it names had the handle absent too).
        vouched_by = ((cached.partition, cached.txn_id, homed_version)
                      if cached is not None and cached.record is record else None)
        if record is None:
            code, tail = _NOT_FOUND, _EMPTY_ERROR
        elif record.all_public_read and record.encoded_values != _EMPTY_ERROR:
            code, tail = _SUCCESS, data[_HEAD_SIZE : body_end - 8] + record.encoded_values
        else:
            return None
    elif opcode == _SITE_INFO:
        handle, code, tail, vouched_by = b"", _SUCCESS, state.site_bytes, _SITE_INFO_VOUCHED
    else:
        return None
    smajor = flag_byte & _SUGGESTED_MAJOR_MASK
    suggested = (smajor, sminor) if smajor else (major, minor)
    version = response_version(suggested)
    if version[0] != 2 or (flags & _RD and version < _DIGEST_LAYOUT):
        return None  # legacy versions and the pre-2.1 digest layout are left to the full codec
    out_flags = _REC | (flags & _COPIED_FLAGS)
    site = state.site
    if site.primary:
        out_flags |= _AT
    if flags & _RD:
        alg, digest = request_digest(data[ENVELOPE_SIZE:body_end], version)
        tail = bytes((alg,)) + digest + tail
    head = _RESPONSE_HEAD.pack(
        version[0], version[1], SERVER_VERSION[0], SERVER_VERSION[1], 0, request_id, 0, len(tail) + 28,
        opcode, code, out_flags, site.serial & 0xFFFF, recursion, 0, int(state.clock()) + _RESPONSE_LIFETIME,
        len(tail))
    return FastAnswer(head + tail + _NO_CREDENTIAL, opcode, code, handle, suggested), vouched_by

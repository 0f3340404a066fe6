"""The Handle message: header, body, request digest and credential (wire.md 2, 4, 7, 10, 11).

``decode_message`` takes the bytes after the envelope; ``encode_message`` produces them byte-identical to
the Java encoder. A signer uses ``encode_header_body`` (what signatures, MACs and request digests cover)
and then ``attach_credential``.

Decisions where Java is lenient (all documented in the functions): 1-3 bytes after the body, and any
bytes after the credential, are ignored as Java ignores them; unknown op codes and response codes decode
to ``OpaqueBody`` (Java throws) so that a server can answer them and a client can report them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hdlserver.errors import DecodeError
from hdlserver.wire.bodies import (
    REQUEST_BODIES,
    SUCCESS_BODIES,
    Body,
    ChallengeBody,
    ErrorBody,
    OpaqueBody,
    ReferralBody,
    read_digest,
    write_digest,
)
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.codes import OpFlag, ResponseCode
from hdlserver.wire.credential import Credential, decode_credential, encode_credential
from hdlserver.wire.envelope import version_at_least

HEADER_SIZE = 24

# Java rebuilds the flag word from its booleans when encoding, so unused bits never go out.
KNOWN_FLAGS = (OpFlag.AT | OpFlag.CT | OpFlag.ENC | OpFlag.REC | OpFlag.CA | OpFlag.CN | OpFlag.KA | OpFlag.PO
               | OpFlag.RD | OpFlag.OVRW | OpFlag.MINT | OpFlag.DNRF)

# Response codes whose body is an error message (wire.md 10); 303 only from 2.5 on is a referral.
ERROR_CODES = frozenset({
    ResponseCode.ERROR, ResponseCode.SERVER_TOO_BUSY, ResponseCode.PROTOCOL_ERROR,
    ResponseCode.OPERATION_NOT_SUPPORTED, ResponseCode.RECURSION_COUNT_TOO_HIGH, ResponseCode.SERVER_BACKUP,
    ResponseCode.HANDLE_NOT_FOUND, ResponseCode.HANDLE_ALREADY_EXISTS, ResponseCode.INVALID_HANDLE,
    ResponseCode.VALUES_NOT_FOUND, ResponseCode.VALUE_ALREADY_EXISTS, ResponseCode.INVALID_VALUE,
    ResponseCode.OUT_OF_DATE_SITE_INFO, ResponseCode.SERVER_NOT_RESP, ResponseCode.INVALID_ADMIN,
    ResponseCode.INSUFFICIENT_PERMISSIONS, ResponseCode.AUTHENTICATION_FAILED,
    ResponseCode.INVALID_CREDENTIAL, ResponseCode.AUTHEN_TIMEOUT, ResponseCode.AUTHEN_ERROR,
    ResponseCode.SESSION_TIMEOUT, ResponseCode.SESSION_FAILED, ResponseCode.INVALID_SESSION_KEY,
    ResponseCode.NEED_RSAKEY_FOR_SESSIONEXCHANGE, ResponseCode.INVALID_SESSIONSETUP_REQUEST,
    ResponseCode.SESSION_MESSAGE_REJECTED,
})

_HEADER = struct.Struct(">iiIhBxIi")
_HEADER_OUT = struct.Struct(">IIIHBxII")
_INT4 = struct.Struct(">i")


@dataclass(slots=True)
class Header:
    opcode: int
    response_code: int = 0  # 0 = request
    flags: int = 0
    site_serial: int = -1  # int2, read sign-extended as Java does: 0xFFFF is -1
    recursion: int = 0
    expiration: int = 0  # seconds since 1970

    @property
    def is_request(self) -> bool:
        return self.response_code == ResponseCode.RESERVED


@dataclass(slots=True)
class Message:
    header: Header
    body: Body
    request_digest: tuple[int, bytes] | None = None  # (algorithm byte, digest) of a response with RD
    credential: Credential | None = None
    header_body: bytes = b""  # decoded messages: the exact 24 + bodyLength bytes received


def _legacy_codes(version: tuple[int, int]) -> bool:
    """Before 2.5, RC 303 meant SERVER_BACKUP and RC 202 did not exist (wire.md 10.1)."""
    return not version_at_least(version, (2, 5))


def _old_layouts(version: tuple[int, int]) -> bool:
    """Before 2.1 there is no RD flag, and challenges carry their digest after the nonce (wire.md 9.14)."""
    return not version_at_least(version, (2, 1))


def body_type_for(opcode: int, response_code: int, version: tuple[int, int]) -> type:
    """The body class a message with these codes has at this version (``OpaqueBody`` if none is defined)."""
    if response_code == ResponseCode.RESERVED:
        return REQUEST_BODIES.get(opcode, OpaqueBody)
    if response_code == ResponseCode.SUCCESS:
        return SUCCESS_BODIES.get(opcode, OpaqueBody)
    if response_code == ResponseCode.SERVICE_REFERRAL:
        return ReferralBody
    if response_code == ResponseCode.PREFIX_REFERRAL:
        return ErrorBody if _legacy_codes(version) else ReferralBody
    if response_code == ResponseCode.AUTHENTICATION_NEEDED:
        return ChallengeBody
    if response_code in ERROR_CODES:
        return ErrorBody
    return OpaqueBody


# ---------------------------------------------------------------------------------------------------
# Decoding


def decode_message(data: bytes | bytearray | memoryview, version: tuple[int, int]) -> Message:
    """Decode header + body [+ int4 credential length + credential]; ``version`` = the envelope version.

    Raises ``DecodeError`` for a short header, a body length that does not fit, any body field that does
    not fit in the body, or a credential that does not fit. Java-compatible leniency: a message may end
    right after the body, 1-3 stray bytes after the body are ignored (Java only reads a credential when
    4 bytes remain), bytes after the credential are ignored, and so are bytes after a body's last field.
    """
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise DecodeError("Invalid message length: shorter than the 24-byte header")
    opcode, code, flags, serial, recursion, expiration, body_length = _HEADER.unpack_from(data)
    body_end = HEADER_SIZE + body_length
    if body_length < 0 or body_end > len(data):
        raise DecodeError(f"body length {body_length} does not fit in the {len(data) - HEADER_SIZE} bytes")
    if code == ResponseCode.PREFIX_REFERRAL and _legacy_codes(version):
        code = ResponseCode.SERVER_BACKUP
    header = Header(opcode, code, flags, serial, recursion, expiration)
    r = Reader(data, HEADER_SIZE, body_end)
    digest = None
    if code != ResponseCode.RESERVED and flags & OpFlag.RD:
        digest = read_digest(r)
    body_type = body_type_for(opcode, code, version)
    body = body_type.read(r, version)
    if body_type is ChallengeBody and _old_layouts(version):
        old_digest = r.get_byte_array()
        if digest is None:  # an RD prefix, if a sender wrote one anyway, wins as in Java
            digest = (0, old_digest)
    return Message(header, body, digest, _read_credential(data, body_end), data[:body_end])


def _read_credential(data: bytes, start: int) -> Credential | None:
    if len(data) - start < 4:
        return None
    length = _INT4.unpack_from(data, start)[0]
    if length < 0 or length > len(data) - start - 4:
        raise DecodeError(f"credential length {length} does not fit in the {len(data) - start - 4} bytes")
    if length == 0:
        return None
    return decode_credential(data[start + 4 : start + 4 + length])


# ---------------------------------------------------------------------------------------------------
# Encoding


def encode_header_body(msg: Message, version: tuple[int, int]) -> bytes:
    """Header + body as Java encodes them for a message of this version: what is signed and digested.

    Applies the legacy response-code remapping (< 2.5: RC 7 goes out as 303, 202 as 201), drops the RD
    flag below 2.1 and unused flag bits, and writes the request digest first in response bodies with RD.

    Two deliberate differences from Java, for layouts no 9.x peer produces: below 2.1 the digest is not
    written either (Java drops the flag but still writes the digest, which no decoder can then find), and
    an old-format (algorithm 0) digest is written as the ByteArray that the Java decoder reads (the Java
    encoder writes a 0 byte and the raw digest, which its own decoder misreads).
    """
    h = msg.header
    body = msg.body
    expected = body_type_for(h.opcode, h.response_code, version)
    if not isinstance(body, expected | OpaqueBody):
        raise ValueError(f"op {h.opcode} / RC {h.response_code} needs a {expected.__name__} body at version "
                         f"{version[0]}.{version[1]}, not {type(body).__name__}")
    code = h.response_code
    if _legacy_codes(version):
        if code == ResponseCode.SERVER_BACKUP:
            code = ResponseCode.PREFIX_REFERRAL
        elif code == ResponseCode.INVALID_VALUE:
            code = ResponseCode.VALUE_ALREADY_EXISTS
    flags = h.flags & KNOWN_FLAGS
    if _old_layouts(version):
        flags &= ~OpFlag.RD

    w = Writer()
    if code != ResponseCode.RESERVED and flags & OpFlag.RD:
        if msg.request_digest is None:
            raise ValueError("a response with the RD flag needs a request digest")
        write_digest(w, *msg.request_digest)
    body.write(w, version)
    if isinstance(body, ChallengeBody) and _old_layouts(version):
        w.put_byte_array(msg.request_digest[1] if msg.request_digest else b"")
    mask = 0xFFFFFFFF
    header = _HEADER_OUT.pack(h.opcode & mask, code & mask, flags, h.site_serial & 0xFFFF, h.recursion & 0xFF,
                              h.expiration & mask, len(w))
    return header + w.getvalue()


def attach_credential(header_body: bytes, credential: Credential | None) -> bytes:
    """Append the int4 credential length (always written, 0 when unsigned) and the credential."""
    cred = b"" if credential is None else encode_credential(credential)
    return header_body + _INT4.pack(len(cred)) + cred


def encode_message(msg: Message, version: tuple[int, int]) -> bytes:
    return attach_credential(encode_header_body(msg, version), msg.credential)

"""The credential section of a message and the envelope prefix that signatures cover (wire.md 11.1-11.2).

Computing or checking signatures and MACs is not done here; this module only lays out the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.envelope import version_at_least

HS_SIGNED = b"HS_SIGNED"
HS_MAC = b"HS_MAC"
HS_DSAPUBKEY = b"HS_DSAPUBKEY"  # accepted on input as a synonym of HS_SIGNED

_INT4 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Credential:
    """wire.md 11.1. Java writes version, reserved, options 0 and an empty signer handle."""

    version: int = 0
    reserved: int = 0
    options: int = 0
    signer_handle: bytes = b""
    signer_index: int = 0  # HS_MAC: the session counter; HS_SIGNED: the message counter (0)
    type: bytes = HS_SIGNED
    digest_alg: bytes = b""
    signature: bytes = b""


def encode_credential(cred: Credential) -> bytes:
    w = Writer()
    w.put_byte(cred.version).put_byte(cred.reserved).put_int2(cred.options)
    w.put_utf8(cred.signer_handle).put_int4(cred.signer_index)
    w.put_utf8(cred.type)
    w.put_int4(4 + len(cred.digest_alg) + 4 + len(cred.signature))  # signedInfoLength
    w.put_utf8(cred.digest_alg).put_byte_array(cred.signature)
    return w.getvalue()


def read_credential(r: Reader) -> Credential:
    """Read one credential; like Java, the signedInfoLength field is not checked against the fields."""
    version = r.get_byte()
    reserved = r.get_byte()
    options = r.get_uint2()
    signer_handle = r.get_utf8()
    signer_index = r.get_int4()
    cred_type = r.get_utf8()
    r.get_int4()  # signedInfoLength
    digest_alg = r.get_utf8()
    signature = r.get_byte_array()
    return Credential(version, reserved, options, signer_handle, signer_index, cred_type, digest_alg,
                      signature)


def decode_credential(data: bytes) -> Credential:
    """Decode a credential section (without its int4 length).

    Bytes after the signature are ignored, as in Java.
    """
    return read_credential(Reader(data))


def signed_prefix(version: tuple[int, int], suggested: tuple[int, int], session_id: int, request_id: int,
                  counter: int) -> bytes:
    """The envelope prefix P that HS_SIGNED signatures and >= 2.7 HS_MAC MACs cover before the header+body.

    wire.md 11.2, including Java's 2.6 offset bug (the session id's two high bytes, the counter, 6 zeros).
    """
    mask = 0xFFFFFFFF
    if version_at_least(version, (2, 8)):
        return (bytes([version[0], version[1], suggested[0], suggested[1]])
                + struct.pack(">III", session_id & mask, request_id & mask, counter & mask))
    if version_at_least(version, (2, 7)):
        return bytes([version[0], version[1]]) + struct.pack(">III", session_id & mask, request_id & mask,
                                                              counter & mask)
    if version_at_least(version, (2, 6)):
        # Java adds writeInt's return value (4) as an *absolute* offset: the request id and then the
        # counter both land at offset 4, overwriting most of the session id.
        prefix = bytearray(14)
        prefix[0], prefix[1] = version
        prefix[2:6] = _INT4.pack(session_id & mask)
        prefix[4:8] = _INT4.pack(request_id & mask)
        prefix[4:8] = _INT4.pack(counter & mask)
        return bytes(prefix)
    return b""

"""Challenge answers written as REST parameters (auth.md 10.2-10.3): algorithm names, base64 text and PBKDF2
parameters turned into the ``signedResponse`` bytes an opcode 200 or 201 would carry (auth.md 4.1-4.2).

Names follow Java ``StandardHandleAuthenticator.constructSignedResponse``: MD5 and the SHA names are compared
ignoring case, the HMAC and PBKDF2 names also ignoring punctuation.
"""

from __future__ import annotations

import base64

from hdlserver.auth.pubkey_answers import HS_PUBKEY
from hdlserver.auth.secret_answers import (
    HS_SECKEY,
    SECKEY_HMAC_SHA1,
    SECKEY_HMAC_SHA256,
    SECKEY_MD5,
    SECKEY_PBKDF2_HMAC_SHA1,
    SECKEY_SHA1,
    SECKEY_SHA256,
)
from hdlserver.errors import DecodeError
from hdlserver.http.api_params import parse_java_int
from hdlserver.wire.buffer import Reader, Writer

_EXACT_ALGORITHMS = {"md5": SECKEY_MD5, "sha": SECKEY_SHA1, "sha1": SECKEY_SHA1, "sha-1": SECKEY_SHA1,
                     "sha-256": SECKEY_SHA256, "sha256": SECKEY_SHA256, "sha-2": SECKEY_SHA256,
                     "sha2": SECKEY_SHA256}
_SQUASHED_ALGORITHMS = {"hmacsha1": SECKEY_HMAC_SHA1, "hmacsha256": SECKEY_HMAC_SHA256,
                        "pbkdf2hmacsha1": SECKEY_PBKDF2_HMAC_SHA1, "pbkdf2withhmacsha1": SECKEY_PBKDF2_HMAC_SHA1}
# The hash identifier an HS_PUBKEY answer carries for each name (Java's Common.HASH_ALG_* bytes); only MD5,
# SHA1 and SHA-256 name a signature hash, the others simply never verify.
_PUBKEY_HASH_IDS = {SECKEY_MD5: b"MD5", SECKEY_SHA1: b"SHA1", SECKEY_SHA256: b"SHA-256",
                    SECKEY_HMAC_SHA1: b"HMAC-SHA1", SECKEY_HMAC_SHA256: b"HMAC-SHA256",
                    SECKEY_PBKDF2_HMAC_SHA1: b"PBKDF2-HMAC-SHA1"}


def _squash(text: str) -> str:
    """Lower case without punctuation (Java ``equalsIgnoreCaseAndPunctuation``)."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def algorithm_code(alg: str) -> int | None:
    """The HS_SECKEY algorithm code an ``alg`` parameter names, or None for an unknown name."""
    return _EXACT_ALGORITHMS.get(alg.lower(), _SQUASHED_ALGORITHMS.get(_squash(alg)))


def lenient_base64(text: str) -> bytes:
    """commons-codec decoding: both alphabets, characters outside them skipped, padding optional, never fails."""
    cleaned = "".join(ch for ch in text if ch.isascii() and (ch.isalnum() or ch in "+/-_"))
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    usable = len(cleaned) - (1 if len(cleaned) % 4 == 1 else 0)  # a lone trailing character carries no byte
    return base64.b64decode(cleaned[:usable] + "=" * (-usable % 4))


def with_pbkdf2_parameters(mac: bytes, salt: str | None, iterations: str | None, length: str | None) -> bytes:
    """With salt, iterations and length all given, the MAC in Java's PBKDF2 answer encoding (auth.md 4.2);
    otherwise the MAC unchanged (it must then be the whole encoding). Raises ParameterError for a bad integer."""
    if salt is None or iterations is None or length is None:
        return mac
    w = Writer().put_byte_array(lenient_base64(salt)).put_int4(parse_java_int(iterations, "iterations"))
    return w.put_int4(parse_java_int(length, "length")).put_byte_array(mac).getvalue()


def pbkdf2_iterations(encoding: bytes) -> int | None:
    """The iteration count of a PBKDF2 answer encoding (``ByteArray salt | int4 iterations | ...``), or None
    when the bytes are too short to hold one (such an answer simply does not verify)."""
    r = Reader(encoding)
    try:
        r.get_byte_array()
        return r.get_int4()
    except DecodeError:
        return None


def signed_response(auth_type: bytes, alg: str, signature: bytes) -> bytes | None:
    """The ``signedResponse`` of an answer of this type; None for an unknown type or algorithm name.

    HS_SECKEY: the code byte then the MAC bytes; HS_PUBKEY: ``UTF8String hash id | ByteArray signature``.
    """
    code = algorithm_code(alg)
    if code is None:
        return None
    if auth_type == HS_SECKEY:
        return bytes((code,)) + signature
    if auth_type == HS_PUBKEY:
        return Writer().put_utf8(_PUBKEY_HASH_IDS[code]).put_byte_array(signature).getvalue()
    return None

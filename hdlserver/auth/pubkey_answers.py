"""HS_PUBKEY challenge answers (auth.md 4.1 and 5.2).

The answer (signedResponse field) is ``UTF8String hashAlgorithm | ByteArray signature``; the signature is
over ``nonce || requestDigest`` with the identity's private key, RSASSA-PKCS1-v1_5 or DSA (DER r, s).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import dsa

from hdlserver.auth import keys
from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.envelope import version_at_least
from hdlserver.wire.values import HandleValue

HS_PUBKEY = b"HS_PUBKEY"

SHA1 = "SHA1"  # the hash algorithm identifiers Java clients write (wire.md 11.3)
SHA256 = "SHA-256"


def parse_pubkey_answer(data: bytes) -> tuple[bytes, bytes]:
    """(hash algorithm identifier, signature) of an answer; raises ``DecodeError`` only.

    Bytes after the signature are ignored, as the Java server reads the two fields by offset.
    """
    r = Reader(data)
    return r.get_utf8(), r.get_byte_array()


def client_pubkey_digest(challenge_version: tuple[int, int], is_dsa: bool) -> str:
    """The hash a Java client signs with (``Util.getDefaultSigId`` for the 402's version)."""
    if not version_at_least(challenge_version, (2, 7)):
        return SHA1
    if is_dsa and not version_at_least(challenge_version, (2, 11)):
        return SHA1
    return SHA256


def make_pubkey_answer(
    private_key: keys.PrivateKey, nonce: bytes, digest: bytes, challenge_version: tuple[int, int]
) -> bytes:
    """What a Java client sends for this challenge with this key."""
    alg = client_pubkey_digest(challenge_version, is_dsa=isinstance(private_key, dsa.DSAPrivateKey))
    signature = keys.sign(private_key, nonce + digest, alg)
    return Writer().put_utf8(alg.encode("ascii")).put_byte_array(signature).getvalue()


def verify_pubkey_answer(
    values: Sequence[HandleValue], index: int, nonce: bytes, digest: bytes, answer: bytes
) -> int | None:
    """The index of the identity's HS_PUBKEY value that verifies ``answer``, or None (auth.md 5 step 2).

    Candidates are tried by ascending index; only values whose type is exactly ``HS_PUBKEY`` count, and
    only index ``index`` when it is > 0. Undecodable answers and keys simply do not verify; an unusable
    candidate is skipped rather than ending the search, so a damaged key cannot lock out a good one.
    """
    try:
        alg, signature = parse_pubkey_answer(answer)
    except DecodeError:
        return None
    signed = nonce + digest
    for value in sorted(values, key=lambda v: v.index):
        if value.type != HS_PUBKEY or (index > 0 and value.index != index):
            continue
        try:
            public_key = keys.public_key_from_bytes(value.data)
        except DecodeError:
            continue
        if keys.verify(public_key, signature, signed, alg):
            return value.index
    return None

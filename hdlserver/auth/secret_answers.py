"""HS_SECKEY challenge answers: computing them as Java clients do, verifying them as the server does.

An answer is the ``signedResponse`` field of a RESPONSE_TO_CHALLENGE (200) or VERIFY_CHALLENGE (201):
``code byte | algorithm bytes`` (auth.md 4.2), or a bare MD5 for protocol versions below 2.1. The secret K
is the HS_SECKEY value data, N the challenge nonce and D the request digest of the challenge.

``verify_secret_answer`` and ``verify_secret_against_values`` never raise on hostile bytes: anything
malformed, unknown or out of bounds is "invalid". ``check_secret_against_values`` tells the answers Java
cannot even compute (``MalformedSecretAnswer``: the server answers RC 406 to op 200 and RC 2 to op 201)
from those that merely do not match.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from hdlserver.auth.keys import pbkdf2_password
from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.envelope import version_at_least
from hdlserver.wire.values import HandleValue, has_type

HS_SECKEY = b"HS_SECKEY"

# Algorithm codes (Java Common.HASH_CODE_*). SECKEY_OLD_MD5 is never written on the wire: before 2.1 the
# whole field is the MD5; inside a >= 2.1 answer Java's doMac treats code 0 exactly like MD5.
SECKEY_OLD_MD5 = 0x00
SECKEY_MD5 = 0x01
SECKEY_SHA1 = 0x02
SECKEY_SHA256 = 0x03
SECKEY_HMAC_SHA1 = 0x12
SECKEY_HMAC_SHA256 = 0x13
SECKEY_PBKDF2_HMAC_SHA1 = 0x22

# Java client defaults for 0x22 (Util.doPbkdf2HmacSHA1 without parameters to match).
CLIENT_PBKDF2_SALT_BYTES = 16
CLIENT_PBKDF2_ITERATIONS = 10_000
CLIENT_PBKDF2_KEY_BITS = 160

# Limits on the PBKDF2 parameters of a received answer, checked before deriving: Java accepts anything, but
# the parameters come from an unauthenticated client, so they must not be able to burn CPU or memory.
MAX_PBKDF2_ITERATIONS = 1_000_000
MIN_PBKDF2_KEY_BITS = 8
MAX_PBKDF2_KEY_BITS = 4096

# K || N || D || K digests, by code.
_KEYED_HASHES = {SECKEY_OLD_MD5: "md5", SECKEY_MD5: "md5", SECKEY_SHA1: "sha1", SECKEY_SHA256: "sha256"}
_HMACS = {SECKEY_HMAC_SHA1: "sha1", SECKEY_HMAC_SHA256: "sha256"}

SECKEY_CODES = frozenset((*_KEYED_HASHES, *_HMACS, SECKEY_PBKDF2_HMAC_SHA1))


@dataclass(frozen=True, slots=True)
class Pbkdf2Params:
    """The parameters a 0x22 answer carries in front of its MAC."""

    salt: bytes
    iterations: int
    key_length_bits: int

    def within_limits(self) -> bool:
        # Java's PBEKeySpec rejects an empty salt, so such an answer never verifies there either.
        return (
            len(self.salt) > 0
            and 0 < self.iterations <= MAX_PBKDF2_ITERATIONS
            and MIN_PBKDF2_KEY_BITS <= self.key_length_bits <= MAX_PBKDF2_KEY_BITS
        )


def _pbkdf2_encoding(params: Pbkdf2Params, mac: bytes) -> bytes:
    """Java ``Util.constructPbkdf2Encoding``: ``ByteArray salt | int4 iterations | int4 bits | ByteArray mac``."""
    w = Writer().put_byte_array(params.salt).put_int4(params.iterations).put_int4(params.key_length_bits)
    return w.put_byte_array(mac).getvalue()


def _algorithm_bytes(code: int, secret: bytes, nonce: bytes, digest: bytes, params: Pbkdf2Params | None) -> bytes:
    """The bytes after the code byte (Java ``Util.doMac``); ``params`` is required for 0x22."""
    signed = nonce + digest
    if code in _KEYED_HASHES:
        return hashlib.new(_KEYED_HASHES[code], secret + signed + secret).digest()
    if code in _HMACS:
        return hmac.new(secret, signed, _HMACS[code]).digest()
    if code == SECKEY_PBKDF2_HMAC_SHA1 and params is not None:
        # The JDK floors the bit length to whole bytes.
        key = hashlib.pbkdf2_hmac(
            "sha1", pbkdf2_password(secret), params.salt, params.iterations, params.key_length_bits // 8
        )
        return _pbkdf2_encoding(params, hmac.new(key, signed, "sha1").digest())
    raise ValueError(f"unknown HS_SECKEY answer algorithm code {code:#04x}")


def compute_secret_answer(
    secret: bytes,
    nonce: bytes,
    digest: bytes,
    code: int,
    *,
    salt: bytes | None = None,
    iterations: int = CLIENT_PBKDF2_ITERATIONS,
    key_length_bits: int = CLIENT_PBKDF2_KEY_BITS,
) -> bytes:
    """The exact signedResponse field for ``code``: the code byte then its bytes (auth.md 4.2).

    ``SECKEY_OLD_MD5`` gives the bare pre-2.1 MD5. For 0x22 ``salt`` defaults to 16 random bytes; the
    parameters must be within the limits a server accepts (``ValueError`` otherwise).
    """
    params = None
    if code == SECKEY_PBKDF2_HMAC_SHA1:
        params = Pbkdf2Params(
            secrets.token_bytes(CLIENT_PBKDF2_SALT_BYTES) if salt is None else salt, iterations, key_length_bits
        )
        if not params.within_limits():
            raise ValueError(
                f"PBKDF2 parameters out of range: salt {len(params.salt)} bytes, {iterations} iterations, "
                f"{key_length_bits} bits"
            )
    mac = _algorithm_bytes(code, secret, nonce, digest, params)
    return mac if code == SECKEY_OLD_MD5 else bytes((code,)) + mac


def _lower_version(version: tuple[int, int], suggested: tuple[int, int]) -> tuple[int, int]:
    """The lower of a message's version and its suggested version, as the Java client compares them."""
    return suggested if version_at_least(version, suggested) else version


def client_secret_code(challenge_version: tuple[int, int], challenge_suggested: tuple[int, int]) -> int:
    """The code a Java client answers a challenge with (``SecretKeyAuthenticationInfo.authenticate``)."""
    lower = _lower_version(challenge_version, challenge_suggested)
    if not version_at_least(lower, (2, 1)):
        return SECKEY_OLD_MD5
    if version_at_least(lower, (2, 7)):
        return SECKEY_PBKDF2_HMAC_SHA1
    return SECKEY_SHA1


def make_secret_answer(
    secret: bytes,
    nonce: bytes,
    digest: bytes,
    challenge_version: tuple[int, int],
    challenge_suggested: tuple[int, int],
) -> bytes:
    """What a Java client sends for this challenge (0x22 with a random salt, 10 000 iterations, 160 bits)."""
    return compute_secret_answer(secret, nonce, digest, client_secret_code(challenge_version, challenge_suggested))


@dataclass(frozen=True, slots=True)
class _ParsedAnswer:
    code: int
    params: Pbkdf2Params | None
    expected: bytes  # the algorithm bytes to reproduce (everything after the code byte)


class MalformedSecretAnswer(ValueError):
    """An answer Java's ``Util.doMac`` throws on: empty, an unknown code, bad PBKDF2 parameters."""


def _parse_answer(answer: bytes, old_format: bool) -> _ParsedAnswer | None:
    """Split an answer into code, 0x22 parameters and algorithm bytes; None when it cannot verify.

    Raises ``MalformedSecretAnswer`` where Java raises an exception. Parameters Java would use but that
    exceed our limits (a CPU-burning iteration count) only make the answer invalid.
    """
    if old_format:
        return _ParsedAnswer(SECKEY_OLD_MD5, None, answer)
    if not answer:
        raise MalformedSecretAnswer("empty HS_SECKEY answer")
    if answer[0] not in SECKEY_CODES:
        raise MalformedSecretAnswer(f"unknown HS_SECKEY answer algorithm code {answer[0]:#04x}")
    code, rest = answer[0], answer[1:]
    if code != SECKEY_PBKDF2_HMAC_SHA1:
        return _ParsedAnswer(code, None, rest)
    r = Reader(rest)
    try:
        params = Pbkdf2Params(r.get_byte_array(), r.get_int4(), r.get_int4())
    except DecodeError as exc:
        raise MalformedSecretAnswer(f"truncated PBKDF2 answer: {exc}") from None
    if not params.salt or params.iterations <= 0 or params.key_length_bits <= 0:
        raise MalformedSecretAnswer("PBKDF2 answer with an empty salt or a non-positive parameter")
    return _ParsedAnswer(code, params, rest) if params.within_limits() else None


def _matches(parsed: _ParsedAnswer, secret: bytes, nonce: bytes, digest: bytes) -> bool:
    if not secret:
        # Deliberately stricter than Java (which lets K||N||D||K codes pass with an empty key): an empty
        # secret would let anyone answer for the identity.
        return False
    recomputed = _algorithm_bytes(parsed.code, secret, nonce, digest, parsed.params)
    return hmac.compare_digest(recomputed, parsed.expected)


def verify_secret_answer(
    secret: bytes, nonce: bytes, digest: bytes, answer: bytes, *, old_format: bool = False
) -> bool:
    """Whether ``answer`` proves knowledge of ``secret`` for this challenge (auth.md 7 step 4).

    The code is taken from the answer; for 0x22 its salt, iterations and key length are reused and the
    whole parameter-and-MAC encoding must match. ``old_format``: the carrying message is older than 2.1,
    so the whole field is an MD5 answer. Malformed answers give False, never an exception.
    """
    try:
        parsed = _parse_answer(answer, old_format)
    except MalformedSecretAnswer:
        return False
    return parsed is not None and _matches(parsed, secret, nonce, digest)


def check_secret_against_values(
    values: Sequence[HandleValue],
    index: int,
    nonce: bytes,
    digest: bytes,
    answer: bytes,
    old_format: bool = False,
) -> bool:
    """VERIFY_CHALLENGE against a handle's values (auth.md 7 steps 2-4).

    ``index`` != 0 restricts the check to that index; every candidate must have hasType HS_SECKEY and
    any one that reproduces the answer makes it valid. With at least one candidate, an answer Java cannot
    compute raises ``MalformedSecretAnswer`` (without candidates Java never looks at the answer).
    """
    candidates = [v for v in values if (index == 0 or v.index == index) and has_type(v.type, HS_SECKEY)]
    if not candidates:
        return False
    parsed = _parse_answer(answer, old_format)
    if parsed is None:
        return False
    return any(_matches(parsed, v.data, nonce, digest) for v in candidates)


def verify_secret_against_values(
    values: Sequence[HandleValue],
    index: int,
    nonce: bytes,
    digest: bytes,
    answer: bytes,
    old_format: bool = False,
) -> bool:
    """``check_secret_against_values`` with malformed answers counted as invalid (never raises)."""
    try:
        return check_secret_against_values(values, index, nonce, digest, answer, old_format)
    except MalformedSecretAnswer:
        return False

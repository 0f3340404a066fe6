"""Session cryptography: Diffie-Hellman key agreement, session keys, HS_MAC and session encryption.

auth.md 9.3-9.7 and wire.md 11.4, byte-compatible with Handle.Net 9.2 (checked against the Java vectors in
shared/vectors/sessions). Pure functions; the session table lives in ``hdlserver.auth.sessions``.

DH is done with ``pow()`` on the client's own group rather than with cryptography's DH API, which is
deprecated and refuses some groups Java clients may send.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Callable
from typing import Protocol

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES

from hdlserver.errors import ProtocolError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.credential import HS_MAC, Credential, signed_prefix
from hdlserver.wire.envelope import version_at_least
from hdlserver.wire.pubkey import DHPublicKeyData, encode_public_key

try:  # cryptography >= 43 keeps DES-family ciphers in the "decrepit" package
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

Version = tuple[int, int]

# Session cipher codes (auth.md 9.4), as sent in the SESSION_SETUP response data.
ALG_DES = 1
ALG_DESEDE = 2
ALG_AES = 3

_ALG_BY_CONFIG_NAME = {"des": ALG_DES, "desede": ALG_DESEDE, "aes": ALG_AES}
_KEY_BYTES = {ALG_DES: 8, ALG_DESEDE: 24, ALG_AES: 16}  # what each cipher takes from the session key
_BLOCK_BYTES = {ALG_DES: 8, ALG_DESEDE: 8, ALG_AES: 16}  # also the IV length
AES_SESSION_KEY_BYTES = 32  # the DH-derived AES key: AES uses the first 16, HMAC all 32

# Client DH groups we accept. Java clients send the 1024-bit Oakley group 2; anything below 512 bits
# is breakable, anything above 8192 bits only makes the server burn CPU.
MIN_DH_PRIME_BITS = 512
MAX_DH_PRIME_BITS = 8192

# Message versions from which HS_MAC / cipher constructions change (wire.md 11.4, auth.md 9.4).
_V_CBC = (2, 4)
_V_BROKEN_SHA1 = (2, 5)
_V_SHA1_NAME = (2, 6)
_V_HMAC = (2, 7)

HMAC_SHA256_NAME = b"HMAC-SHA256"
SHA1_NAME = b"SHA1"
LEGACY_SHA1_CODE = b"\x02"

_INT4 = struct.Struct(">i")

_MacFunction = Callable[[bytes, bytes], bytes]  # (key, data) -> MAC


class SessionError(ProtocolError):
    """A session could not be set up or used; RC 501 SESSION_FAILED unless a subclass says otherwise."""

    def __init__(self, message: str, response_code: int = ResponseCode.SESSION_FAILED) -> None:
        super().__init__(response_code, message)


class RandomBits(Protocol):
    """What the DH key generator needs from a random source: ``secrets.SystemRandom()`` in production, a
    seeded ``random.Random`` in tests."""

    def getrandbits(self, k: int, /) -> int: ...


SYSTEM_RANDOM: RandomBits = secrets.SystemRandom()


def algorithm_from_config(name: str) -> int:
    """The cipher code for config.dct's ``encryption_alg`` (``aes``, ``des`` or ``desede``, any case)."""
    try:
        return _ALG_BY_CONFIG_NAME[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown session encryption algorithm {name!r}: use aes, des or desede") from None


# ---------------------------------------------------------------------------------------------------
# Diffie-Hellman


def _private_exponent_bits(p_bits: int) -> int:
    # Twice the security strength of the group (NIST SP 800-57), at least 256 bits, like the short
    # exponents JDKs draw; a full-size exponent would only make large client-chosen groups costlier.
    if p_bits <= 2048:
        strength = 112
    elif p_bits <= 3072:
        strength = 128
    elif p_bits <= 7680:
        strength = 192
    else:
        strength = 256
    return min(max(256, 2 * strength), p_bits - 2)


def validate_dh_group(p: int, g: int) -> None:
    """Reject a client group that is too small, too large, even, or whose generator is degenerate."""
    if p % 2 == 0 or not MIN_DH_PRIME_BITS <= p.bit_length() <= MAX_DH_PRIME_BITS:
        raise SessionError(
            f"Unacceptable DH group: p must be an odd {MIN_DH_PRIME_BITS}..{MAX_DH_PRIME_BITS}-bit prime")
    if not 1 < g < p - 1:
        raise SessionError("Unacceptable DH group: generator out of range")


def dh_server_keypair(p: int, g: int, rng: RandomBits = SYSTEM_RANDOM) -> tuple[int, int]:
    """A server key pair ``(x, y = g^x mod p)`` over the client's group (auth.md 9.3 mode 4).

    ``x`` is uniform in ``[2, 2**bits)`` with ``bits = _private_exponent_bits``, so it lies in ``[2, p-2]``.
    """
    validate_dh_group(p, g)
    bits = _private_exponent_bits(p.bit_length())
    x = 0
    while x < 2:
        x = rng.getrandbits(bits)
    return x, pow(g, x, p)


def dh_shared_secret(peer_y: int, x: int, p: int) -> bytes:
    """``z = peer_y^x mod p`` as big-endian bytes left-padded to the length of ``p`` (JDK >= 8).

    ``peer_y`` outside ``(1, p-1)`` would force z into {0, 1, p-1}; it is refused.
    """
    if not 1 < peer_y < p - 1:
        raise SessionError("DH public value out of range")
    return pow(peer_y, x, p).to_bytes((p.bit_length() + 7) // 8, "big")


def _odd_parity(key: bytes) -> bytes:
    """Set each byte's low bit so that the byte has an odd number of one bits (DES key parity)."""
    out = bytearray()
    for b in key:
        high = b & 0xFE
        out.append(high if high.bit_count() % 2 else high | 1)
    return bytes(out)


def session_key_from_dh(z_padded: bytes, alg: int) -> bytes:
    """The session key agreed by DH for cipher ``alg`` (auth.md 9.4; Java ``getKeyFromDH`` without its
    int4 algorithm prefix). ``z_padded``: the output of ``dh_shared_secret``."""
    if alg == ALG_AES:
        start = 0
        while len(z_padded) - start > AES_SESSION_KEY_BYTES and z_padded[start] == 0:
            start += 1
        key = z_padded[start:start + AES_SESSION_KEY_BYTES]
    elif alg in (ALG_DES, ALG_DESEDE):
        key = _odd_parity(z_padded[:_KEY_BYTES[alg]])
    else:
        raise SessionError(f"Invalid encryption algorithm code: {alg}")
    if len(key) < _KEY_BYTES[alg]:
        raise SessionError("DH shared secret too short for the session cipher")
    return key


def legacy_des_key_from_dh(z_padded: bytes) -> bytes:
    """Java ``getDESKeyFromDH``, the key of DH sessions with clients older than 2.4.

    The same bytes as the DES key of ``session_key_from_dh`` (the vectors show it).
    """
    return session_key_from_dh(z_padded, ALG_DES)


def setup_response_data(alg: int, server_public: DHPublicKeyData, client_suggested: Version) -> bytes:
    """SESSION_SETUP response data for DH (auth.md 9.3): ``int4 alg || DH_PUB_KEY``, or only the key for
    clients whose suggested version is below 2.4 (they assume DES)."""
    public = encode_public_key(server_public)
    if not version_at_least(client_suggested, _V_CBC):
        return public
    return _INT4.pack(alg) + public


# ---------------------------------------------------------------------------------------------------
# HS_MAC (wire.md 11.4)


def _keyed_digest(name: str) -> _MacFunction:
    return lambda key, data: hashlib.new(name, key + data + key).digest()


def _hmac(name: str) -> _MacFunction:
    return lambda key, data: hmac.new(key, data, name).digest()


def _plain_digest(name: str) -> _MacFunction:
    return lambda _key, data: hashlib.new(name, data).digest()


def _normalized_name(name: bytes) -> bytes:
    """Java ``equalsIgnoreCaseAndPunctuation``: compare ASCII letters and digits only, ignoring case."""
    return re.sub(rb"[^a-z0-9]", b"", name.lower())


# Java Util.doMac(byte[] alg, data, key): one-byte codes, exact names, and HMAC names matched loosely.
_MAC_BY_NAME: dict[bytes, _MacFunction] = {
    b"\x00": _keyed_digest("md5"),
    b"\x01": _keyed_digest("md5"),
    b"\x02": _keyed_digest("sha1"),
    b"\x03": _keyed_digest("sha256"),
    b"\x12": _hmac("sha1"),
    b"\x13": _hmac("sha256"),
    b"SHA1": _keyed_digest("sha1"),
    b"SHA-1": _keyed_digest("sha1"),
    b"MD5": _keyed_digest("md5"),
    b"SHA-256": _keyed_digest("sha256"),
    b"SHA256": _keyed_digest("sha256"),
}
_MAC_BY_LOOSE_NAME = {b"hmacsha1": _hmac("sha1"), b"hmacsha256": _hmac("sha256")}

# Java Util.doDigest(byte[] alg, ...), used by the 2.5/2.6 construction: no HMAC names there.
_DIGEST_BY_NAME: dict[bytes, _MacFunction] = {
    b"\x00": _plain_digest("md5"),
    b"\x01": _plain_digest("md5"),
    b"\x02": _plain_digest("sha1"),
    b"\x03": _plain_digest("sha256"),
    b"SHA1": _plain_digest("sha1"),
    b"SHA-1": _plain_digest("sha1"),
    b"MD5": _plain_digest("md5"),
    b"SHA-256": _plain_digest("sha256"),
    b"SHA256": _plain_digest("sha256"),
}


def _mac_function(digest_alg: bytes) -> Callable[[bytes, bytes], bytes] | None:
    if len(digest_alg) > 1 and (loose := _MAC_BY_LOOSE_NAME.get(_normalized_name(digest_alg))) is not None:
        return loose
    return _MAC_BY_NAME.get(digest_alg)


def _broken_25_26_input(key: bytes, header_body: bytes) -> bytes:
    # Java writes K, the version and the ids into a buffer of 2|K| + |HB| + 14 bytes, but adds writeInt's
    # return value (4) as an absolute offset, so HB lands at offset 4 and K right after it.
    return key[:4] + header_body + key + bytes(len(key) + 10)


def _mac_value(digest_alg: bytes, key: bytes, header_body: bytes, version: Version, suggested: Version,
               session_id: int, request_id: int, counter: int) -> bytes | None:
    """The MAC Java computes for ``digest_alg`` at message ``version``; None for an unknown algorithm."""
    if version_at_least(version, _V_BROKEN_SHA1) and not version_at_least(version, _V_HMAC):
        digest = _DIGEST_BY_NAME.get(digest_alg)
        return None if digest is None else digest(key, _broken_25_26_input(key, header_body))
    mac = _mac_function(digest_alg)
    if mac is None:
        return None
    prefix = signed_prefix(version, suggested, session_id, request_id, counter)  # empty below 2.6
    return mac(key, prefix + header_body)


def mac_credential(session_key: bytes, header_body: bytes, version: Version, suggested: Version,
                   session_id: int, request_id: int, counter: int) -> Credential:
    """The HS_MAC credential Java's ``signMessage(sessionKey)`` writes for a message of ``version``.

    ``counter`` is the sender's session counter; it travels as the credential's signer index.
    """
    if version_at_least(version, _V_HMAC):
        digest_alg = HMAC_SHA256_NAME
    elif version_at_least(version, _V_SHA1_NAME):
        digest_alg = SHA1_NAME
    else:
        digest_alg = LEGACY_SHA1_CODE
    mac = _mac_value(digest_alg, session_key, header_body, version, suggested, session_id, request_id, counter)
    assert mac is not None  # the three names above are always known
    return Credential(signer_index=counter, type=HS_MAC, digest_alg=digest_alg, signature=mac)


def verify_mac(session_key: bytes, credential: Credential, header_body: bytes, version: Version,
               suggested: Version, session_id: int, request_id: int) -> bool:
    """Does ``credential`` carry a valid HS_MAC of ``header_body`` under ``session_key``?

    Recomputes with the digest algorithm the credential names, as Java's ``verifyMessage(byte[])`` does;
    the counter is the credential's signer index. Constant-time comparison; never raises.
    """
    if credential.type != HS_MAC or not credential.signature:
        return False
    expected = _mac_value(credential.digest_alg, session_key, header_body, version, suggested, session_id,
                          request_id, credential.signer_index)
    return expected is not None and hmac.compare_digest(expected, credential.signature)


# ---------------------------------------------------------------------------------------------------
# Encryption (auth.md 9.7)


def _cipher_algorithm(alg: int, key: bytes) -> CipherAlgorithm:
    need = _KEY_BYTES.get(alg)
    if need is None:
        raise SessionError(f"Invalid encryption algorithm code: {alg}")
    if len(key) < need:
        raise SessionError(f"Session key too short for algorithm {alg}: {len(key)} bytes")
    if alg == ALG_AES:
        return AES(key[:need])
    if alg == ALG_DES:
        # Single DES as TripleDES with three equal keys: the same cipher, without the DES deprecation.
        return TripleDES(key[:need] * 3)
    return TripleDES(key[:need])


def _uses_iv(session_version: Version) -> bool:
    return version_at_least(session_version, _V_CBC)


def encrypt_message(alg: int, key: bytes, plaintext: bytes, session_version: Version,
                    iv: bytes | None = None) -> bytes:
    """Encrypt a whole message with the session cipher; returns the bytes to transmit.

    Sessions of version >= 2.4: CBC/PKCS5 with ``iv`` (random when None), transmitted as ``IV || ciphertext``.
    Older sessions: ECB/PKCS5, no IV.
    """
    algorithm = _cipher_algorithm(alg, key)
    block = _BLOCK_BYTES[alg]
    padder = padding.PKCS7(block * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    if not _uses_iv(session_version):
        if iv is not None:
            raise ValueError("sessions older than 2.4 use ECB: no IV")
        encryptor = Cipher(algorithm, modes.ECB()).encryptor()
        return encryptor.update(padded) + encryptor.finalize()
    if iv is None:
        iv = secrets.token_bytes(block)
    elif len(iv) != block:
        raise ValueError(f"IV must be {block} bytes for algorithm {alg}")
    encryptor = Cipher(algorithm, modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def decrypt_message(alg: int, key: bytes, data: bytes, session_version: Version) -> bytes:
    """Inverse of ``encrypt_message``. Bad lengths or padding raise ``SessionError`` (RC 501)."""
    algorithm = _cipher_algorithm(alg, key)
    block = _BLOCK_BYTES[alg]
    mode: modes.Mode
    if _uses_iv(session_version):
        iv, ciphertext = data[:block], data[block:]
        if len(iv) < block:
            raise SessionError("Exception decrypting request with session key: missing IV")
        mode = modes.CBC(iv)
    else:
        ciphertext, mode = data, modes.ECB()
    if not ciphertext or len(ciphertext) % block:
        raise SessionError(
            f"Exception decrypting request with session key: ciphertext length {len(ciphertext)} "
            f"is not a positive multiple of {block}")
    decryptor = Cipher(algorithm, mode).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(block * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise SessionError("Exception decrypting request with session key: bad padding") from None

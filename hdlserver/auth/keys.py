"""Java Handle.Net key encodings, key files, PEM conversion and signatures (values.md 5-6, auth.md 4.1).

* Private key encodings (values.md 6.1): ``RSA_PRIVCRT_KEY``, ``RSA_PRIV_KEY`` and ``DSA_PRIV_KEY``.
* Key files (values.md 6.2): ``int4 encryptionType | payload``, types 0-4; new files are type 1 (plain)
  or type 4 (PBKDF2-HMAC-SHA1 + AES-128-CBC), as ``hdl-keygen`` writes them.
* Public keys use the HS_PUBKEY encoding of ``hdlserver.wire.pubkey``.
* Signatures are the Java ones: RSASSA-PKCS1-v1_5 and DSA with a DER ``SEQUENCE {r, s}``, named by the
  digest identifiers of wire.md 11.3.

Everything that reads a key file raises ``KeyFileError`` (or one of its subclasses below) and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.utils import CryptographyDeprecationWarning

from hdlserver.errors import DecodeError, KeyFileError
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.pubkey import (
    DHPublicKeyData,
    DSAPublicKeyData,
    PublicKeyData,
    RSAPublicKeyData,
    decode_public_key,
    encode_public_key,
    java_bigint_bytes,
)

try:  # cryptography >= 43 keeps DES-family ciphers in the "decrepit" package
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES


@contextmanager
def _ffdh_allowed() -> Iterator[None]:
    """cryptography >= 50 warns on every use of its DH API; Handle sessions need DH, so silence that."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


with _ffdh_allowed():
    DHPublicKey = dh.DHPublicKey

PrivateKey = rsa.RSAPrivateKey | dsa.DSAPrivateKey
PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey | DHPublicKey

RSA_PRIVCRT_KEY = b"RSA_PRIVCRT_KEY"
RSA_PRIV_KEY = b"RSA_PRIV_KEY"
DSA_PRIV_KEY = b"DSA_PRIV_KEY"

DEFAULT_KEY_BITS = {"RSA": 2048, "DSA": 1024}  # hdl-keygen's defaults
RSA_PUBLIC_EXPONENT = 65537  # what the JDK's RSA KeyPairGenerator uses

PBKDF2_SALT_BYTES = 16
PBKDF2_ITERATIONS = 10_000
# Iteration counts above this are refused: a corrupt or hostile file must not hang the reader.
MAX_PBKDF2_ITERATIONS = 10_000_000


class KeyEncryption(IntEnum):
    """The ``encryptionType`` int4 at the start of a key file (Java ``Common.ENCRYPT_*``)."""

    DES_ECB = 0
    NONE = 1
    DES_CBC = 2
    PBKDF2_DESEDE_CBC = 3
    PBKDF2_AES_CBC = 4


def _located(path: str | os.PathLike[str] | None, message: str) -> str:
    return message if path is None else f"{os.fspath(path)}: {message}"


class PassphraseRequiredError(KeyFileError):
    """The key file is encrypted and no passphrase was supplied."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(_located(path, "key file is encrypted: a passphrase is needed"))


class WrongPassphraseError(KeyFileError):
    """Decryption failed: the passphrase is wrong or the encrypted part of the file is damaged."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(_located(path, "wrong passphrase or corrupt key file"))


# ---------------------------------------------------------------------------------------------------------
# Private key encodings (values.md 6.1)


def encode_private_key(key: PrivateKey) -> bytes:
    """Java ``Util.getBytesFromPrivateKey``: RSA keys as ``RSA_PRIVCRT_KEY``, DSA keys as ``DSA_PRIV_KEY``."""
    w = Writer()
    if isinstance(key, rsa.RSAPrivateKey):
        priv = key.private_numbers()
        pub = priv.public_numbers
        w.put_utf8(RSA_PRIVCRT_KEY)
        fields = (pub.n, pub.e, priv.d, priv.p, priv.q, priv.dmp1, priv.dmq1, priv.iqmp)
    elif isinstance(key, dsa.DSAPrivateKey):
        priv_dsa = key.private_numbers()
        params = priv_dsa.public_numbers.parameter_numbers
        w.put_utf8(DSA_PRIV_KEY)
        fields = (priv_dsa.x, params.p, params.q, params.g)
    else:
        raise TypeError(f"unsupported private key type {type(key).__name__}: only RSA and DSA")
    for n in fields:
        w.put_byte_array(java_bigint_bytes(n))
    return w.getvalue()


def decode_private_key(data: bytes) -> PrivateKey:
    """Java ``Util.getPrivateKeyFromBytes``; bytes after the last field are ignored, as Java does."""
    r = Reader(data)
    try:
        kind = r.get_utf8()
        if kind == RSA_PRIVCRT_KEY:
            fields = [_read_uint(r) for _ in range(8)]
        elif kind == RSA_PRIV_KEY:
            fields = [_read_uint(r) for _ in range(2)]
        elif kind == DSA_PRIV_KEY:
            fields = [_read_uint(r) for _ in range(4)]
        else:
            raise KeyFileError(f"unsupported private key type {kind.decode('latin-1')!r} in key data")
    except DecodeError as exc:
        raise KeyFileError(f"truncated or corrupt private key data: {exc}") from exc
    if kind == RSA_PRIVCRT_KEY:
        return _rsa_crt_key(*fields)
    if kind == RSA_PRIV_KEY:
        return _rsa_key_from_n_d(*fields)
    return _dsa_key(*fields)


def _read_uint(r: Reader) -> int:
    return int.from_bytes(r.get_byte_array(), "big")


def _rsa_crt_key(n: int, e: int, d: int, p: int, q: int, dp: int, dq: int, qinv: int) -> rsa.RSAPrivateKey:
    try:
        return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv, rsa.RSAPublicNumbers(e, n)).private_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"invalid RSA private key: {exc}") from exc


# Java's non-CRT RSA_PRIV_KEY carries only n and d. cryptography needs the primes, which can be recovered
# from (n, e, d); e is not stored, so try the exponents key generators actually use.
_COMMON_RSA_EXPONENTS = (65537, 3, 5, 17, 257)


def _rsa_key_from_n_d(n: int, d: int) -> rsa.RSAPrivateKey:
    if n < 15 or not 1 < d < n:
        raise KeyFileError("invalid RSA_PRIV_KEY: modulus or private exponent out of range")
    for e in _COMMON_RSA_EXPONENTS:
        if pow(pow(2, e, n), d, n) != 2:  # cheap test before the expensive factor recovery
            continue
        try:
            p, q = rsa.rsa_recover_prime_factors(n, e, d)
        except ValueError:
            continue
        return _rsa_crt_key(
            n, e, d, p, q, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
        )
    raise KeyFileError(
        "RSA_PRIV_KEY (non-CRT) key whose public exponent is not one of "
        f"{', '.join(map(str, _COMMON_RSA_EXPONENTS))}: its primes cannot be recovered; "
        "convert the key with the Java tools (hdl-keyutil) to the RSA_PRIVCRT_KEY form"
    )


def _dsa_key(x: int, p: int, q: int, g: int) -> dsa.DSAPrivateKey:
    if p < 3 or not 1 < g < p or x <= 0:
        raise KeyFileError("invalid DSA private key: parameters out of range")
    try:
        params = dsa.DSAParameterNumbers(p, q, g)
        return dsa.DSAPrivateNumbers(x, dsa.DSAPublicNumbers(pow(g, x, p), params)).private_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"invalid DSA private key: {exc}") from exc


# ---------------------------------------------------------------------------------------------------------
# Key files (values.md 6.2)


def key_file_encryption(data: bytes) -> int:
    """The encryption type number at the start of a key file (not checked against the known types)."""
    if len(data) < 4:
        raise KeyFileError(f"truncated key file: {len(data)} bytes, not even an encryption type")
    return int.from_bytes(data[:4], "big", signed=True)


def is_encrypted_key_file(data: bytes) -> bool:
    """Java ``Util.requiresSecretKey``: every type except NONE (1) needs a passphrase."""
    return key_file_encryption(data) != KeyEncryption.NONE


def read_private_key_file(data: bytes, passphrase: bytes | None) -> PrivateKey:
    """Decrypt (if needed) and decode a Java private key file (privkey.bin, admpriv.bin, ...)."""
    kind = key_file_encryption(data)
    try:
        encryption = KeyEncryption(kind)
    except ValueError:
        raise KeyFileError(f"unknown key file encryption type {kind} (known: 0-4)") from None
    if encryption is KeyEncryption.NONE:
        return decode_private_key(data[4:])
    if passphrase is None:
        raise PassphraseRequiredError()
    plain = _decrypt_payload(encryption, data, passphrase)
    try:
        return decode_private_key(plain)
    except KeyFileError:
        # Garbage that happened to have valid padding: almost always a wrong passphrase.
        raise WrongPassphraseError() from None


def write_private_key_file(
    key: PrivateKey,
    passphrase: bytes | None,
    encryption: KeyEncryption = KeyEncryption.PBKDF2_AES_CBC,
) -> bytes:
    """The bytes of a Java key file: type 1 without a passphrase, else ``encryption`` (type 4 by default).

    An empty passphrase counts as none, as in ``hdl-keygen``'s "empty = no encryption" prompt.
    """
    plain = encode_private_key(key)
    if not passphrase or encryption is KeyEncryption.NONE:
        return Writer().put_int4(KeyEncryption.NONE).put_raw(plain).getvalue()
    return _encrypt_payload(encryption, plain, passphrase)


def pbkdf2_password(passphrase: bytes) -> bytes:
    """The password the JDK's PBKDF2 really uses: each byte becomes a char, then UTF-8 (values.md 6.2)."""
    return passphrase.decode("latin-1").encode("utf-8")


def _pbkdf2(passphrase: bytes, salt: bytes, iterations: int, key_bytes: int) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA1(), length=key_bytes, salt=salt, iterations=iterations)
    return kdf.derive(pbkdf2_password(passphrase))


def _md5_des_key(passphrase: bytes) -> bytes:
    # DES as three equal TripleDES keys: the same cipher, without cryptography's single-DES deprecation.
    return hashlib.md5(passphrase).digest()[:8] * 3


# Key lengths (bits) the PBKDF2 key file types can carry; checked before deriving, so that a corrupt
# length field cannot make the reader derive megabytes of key.
_PBKDF2_KEY_BITS = {KeyEncryption.PBKDF2_DESEDE_CBC: (192,), KeyEncryption.PBKDF2_AES_CBC: (128, 192, 256)}


def _pbkdf2_cipher(encryption: KeyEncryption, key: bytes) -> CipherAlgorithm:
    return TripleDES(key) if encryption is KeyEncryption.PBKDF2_DESEDE_CBC else AES(key)


def _decrypt_payload(encryption: KeyEncryption, data: bytes, passphrase: bytes) -> bytes:
    r = Reader(data, 4)
    try:
        if encryption is KeyEncryption.DES_ECB:
            cipher_alg: CipherAlgorithm = TripleDES(_md5_des_key(passphrase))
            mode: modes.Mode = modes.ECB()
            ciphertext = r.rest()
        elif encryption is KeyEncryption.DES_CBC:
            cipher_alg = TripleDES(_md5_des_key(passphrase))
            mode = modes.CBC(r.get_raw(8))
            ciphertext = r.rest()
        else:
            salt = r.get_byte_array()
            iterations = r.get_int4()
            key_bits = r.get_int4()
            iv = r.get_byte_array()
            ciphertext = r.get_byte_array()
            if not 0 < iterations <= MAX_PBKDF2_ITERATIONS:
                raise KeyFileError(f"corrupt key file: PBKDF2 iteration count {iterations} out of range")
            if key_bits not in _PBKDF2_KEY_BITS[encryption]:
                raise KeyFileError(
                    f"corrupt key file: unsupported {encryption.name} key length {key_bits} bits"
                )
            cipher_alg = _pbkdf2_cipher(encryption, _pbkdf2(passphrase, salt, iterations, key_bits // 8))
            if len(iv) * 8 != cipher_alg.block_size:
                raise KeyFileError(f"corrupt key file: {len(iv)}-byte IV")
            mode = modes.CBC(iv)
    except DecodeError as exc:
        raise KeyFileError(f"truncated key file: {exc}") from exc
    block = cipher_alg.block_size // 8
    if not ciphertext or len(ciphertext) % block:
        raise KeyFileError(
            f"truncated key file: {len(ciphertext)}-byte ciphertext is not whole {block}-byte blocks"
        )
    decryptor = Cipher(cipher_alg, mode).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(cipher_alg.block_size).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise WrongPassphraseError() from None


def _encrypt(cipher_alg: CipherAlgorithm, mode: modes.Mode, plain: bytes) -> bytes:
    padder = padding.PKCS7(cipher_alg.block_size).padder()
    encryptor = Cipher(cipher_alg, mode).encryptor()
    return encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()


def _encrypt_payload(encryption: KeyEncryption, plain: bytes, passphrase: bytes) -> bytes:
    w = Writer().put_int4(encryption)
    if encryption is KeyEncryption.DES_ECB:
        return w.put_raw(_encrypt(TripleDES(_md5_des_key(passphrase)), modes.ECB(), plain)).getvalue()
    if encryption is KeyEncryption.DES_CBC:
        iv = os.urandom(8)
        ciphertext = _encrypt(TripleDES(_md5_des_key(passphrase)), modes.CBC(iv), plain)
        return w.put_raw(iv).put_raw(ciphertext).getvalue()
    key_bits = 192 if encryption is KeyEncryption.PBKDF2_DESEDE_CBC else 128
    salt = os.urandom(PBKDF2_SALT_BYTES)
    cipher_alg = _pbkdf2_cipher(encryption, _pbkdf2(passphrase, salt, PBKDF2_ITERATIONS, key_bits // 8))
    iv = os.urandom(cipher_alg.block_size // 8)
    ciphertext = _encrypt(cipher_alg, modes.CBC(iv), plain)
    w.put_byte_array(salt).put_int4(PBKDF2_ITERATIONS).put_int4(key_bits)
    return w.put_byte_array(iv).put_byte_array(ciphertext).getvalue()


# ---------------------------------------------------------------------------------------------------------
# Public keys (values.md 5)


def public_key_to_bytes(pub: PublicKey) -> bytes:
    """HS_PUBKEY encoding, byte-identical to Java ``Util.getBytesFromPublicKey``."""
    data: PublicKeyData
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        data = RSAPublicKeyData(e=nums.e, n=nums.n)
    elif isinstance(pub, dsa.DSAPublicKey):
        dsa_nums = pub.public_numbers()
        params = dsa_nums.parameter_numbers
        data = DSAPublicKeyData(q=params.q, p=params.p, g=params.g, y=dsa_nums.y)
    elif isinstance(pub, DHPublicKey):
        dh_nums = pub.public_numbers()
        data = DHPublicKeyData(y=dh_nums.y, p=dh_nums.parameter_numbers.p, g=dh_nums.parameter_numbers.g)
    else:
        raise TypeError(f"unsupported public key type {type(pub).__name__}: only RSA, DSA and DH")
    return encode_public_key(data)


def public_key_from_bytes(data: bytes) -> PublicKey:
    """Decode an HS_PUBKEY encoding into a cryptography key; raises ``DecodeError`` only."""
    key = decode_public_key(data)
    try:
        if isinstance(key, RSAPublicKeyData):
            return rsa.RSAPublicNumbers(key.e, key.n).public_key()
        if isinstance(key, DSAPublicKeyData):
            params = dsa.DSAParameterNumbers(key.p, key.q, key.g)
            return dsa.DSAPublicNumbers(key.y, params).public_key()
        with _ffdh_allowed():
            return dh.DHPublicNumbers(key.y, dh.DHParameterNumbers(key.p, key.g)).public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DecodeError(f"unusable public key: {exc}") from exc


def keys_match(private: PrivateKey, public: PublicKey) -> bool:
    """Whether ``public`` is the public half of ``private`` (Java ``Util.isMatchingKeyPair``)."""
    if isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
        return private.public_key().public_numbers() == public.public_numbers()
    if isinstance(private, dsa.DSAPrivateKey) and isinstance(public, dsa.DSAPublicKey):
        return private.public_key().public_numbers() == public.public_numbers()
    return False


# ---------------------------------------------------------------------------------------------------------
# Key generation and PEM


def generate_key_pair(algorithm: str = "RSA", bits: int | None = None) -> PrivateKey:
    """A new private key (its ``public_key()`` is the pair's other half); sizes default like hdl-keygen."""
    alg = algorithm.upper()
    if alg not in DEFAULT_KEY_BITS:
        raise ValueError(f"unsupported key algorithm {algorithm!r}: use RSA or DSA")
    size = bits if bits is not None else DEFAULT_KEY_BITS[alg]
    try:
        if alg == "RSA":
            return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=size)
        return dsa.generate_private_key(key_size=size)
    except ValueError as exc:
        raise ValueError(f"cannot generate a {size}-bit {alg} key: {exc}") from exc


def private_key_to_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the passphrase when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_key_to_pem(pub: PublicKey) -> bytes:
    """X.509 SubjectPublicKeyInfo PEM."""
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_key_from_pem(data: bytes, passphrase: bytes | None = None) -> PrivateKey:
    """An RSA or DSA private key from PEM (PKCS#8, or the traditional OpenSSL forms)."""
    encrypted = b"ENCRYPTED" in data
    if encrypted and passphrase is None:
        raise PassphraseRequiredError()
    try:
        key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if encrypted:
            raise WrongPassphraseError() from exc
        raise KeyFileError(f"not a usable PEM private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey):
        raise KeyFileError(f"unsupported private key type {type(key).__name__}: only RSA and DSA")
    return key


def public_key_from_pem(data: bytes) -> PublicKey:
    """An RSA, DSA or DH public key from SubjectPublicKeyInfo PEM."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"not a usable PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey | DHPublicKey):
        raise KeyFileError(f"unsupported public key type {type(key).__name__}: only RSA, DSA and DH")
    return key


# ---------------------------------------------------------------------------------------------------------
# Files on disk


_PEM_START = b"-----BEGIN "


def _read_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror or exc}") from exc


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKey:
    """Read a Java key file, or a PEM private key (recognised by its ``-----BEGIN`` line)."""
    data = _read_file(path)
    try:
        if data.lstrip().startswith(_PEM_START):
            return private_key_from_pem(data, passphrase)
        return read_private_key_file(data, passphrase)
    except (PassphraseRequiredError, WrongPassphraseError) as exc:
        # Same class, so callers can still tell "ask for a passphrase" from "bad file"; now naming the file.
        raise type(exc)(path) from None
    except KeyFileError as exc:
        raise KeyFileError(_located(path, str(exc))) from None


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a Java public key file (pubkey.bin: the bare HS_PUBKEY encoding) or a PEM public key."""
    data = _read_file(path)
    if data.lstrip().startswith(_PEM_START):
        try:
            return public_key_from_pem(data)
        except KeyFileError as exc:
            raise KeyFileError(f"{path}: {exc}") from exc
    try:
        return public_key_from_bytes(data)
    except DecodeError as exc:
        raise KeyFileError(f"{path}: not a public key file: {exc}") from exc


def write_secret_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a file readable by its owner only (0600 from creation, also when replacing)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        if hasattr(os, "fchmod"):  # a pre-existing file keeps its old mode through O_CREAT
            os.fchmod(f.fileno(), 0o600)
        f.write(data)


def save_private_key(
    path: str | os.PathLike[str],
    key: PrivateKey,
    passphrase: bytes | None,
    encryption: KeyEncryption = KeyEncryption.PBKDF2_AES_CBC,
) -> None:
    """Write a Java key file with owner-only permissions; raises ``OSError`` when the path is unwritable."""
    write_secret_file(path, write_private_key_file(key, passphrase, encryption))


def save_public_key(path: str | os.PathLike[str], pub: PublicKey) -> None:
    """Write a Java public key file (the bare HS_PUBKEY encoding); raises ``OSError`` on failure."""
    Path(path).write_bytes(public_key_to_bytes(pub))


# ---------------------------------------------------------------------------------------------------------
# Signatures (auth.md 4.1, wire.md 11.3)


_DIGESTS: dict[bytes, type[hashes.HashAlgorithm]] = {
    b"SHA-256": hashes.SHA256,
    b"SHA256": hashes.SHA256,
    b"SHA1": hashes.SHA1,
    b"SHA-1": hashes.SHA1,
    b"MD5": hashes.MD5,
    b"\x01": hashes.MD5,  # legacy one-byte ids, accepted on input
    b"\x02": hashes.SHA1,
    b"\x03": hashes.SHA256,
}


def parse_digest_name(name: bytes | str) -> hashes.HashAlgorithm:
    """The hash named by a credential/answer digest identifier (exact, case-sensitive, as Java compares)."""
    raw = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    try:
        return _DIGESTS[raw]()
    except KeyError:
        raise DecodeError(f"unknown digest algorithm {raw!r}") from None


def _dsa_hash(digest: bytes | str) -> hashes.HashAlgorithm:
    algorithm = parse_digest_name(digest)
    if isinstance(algorithm, hashes.MD5):
        # Java maps this to "MD5withDSA", which no JDK provider implements.
        raise ValueError("DSA signatures with MD5 are not supported (Java has no MD5withDSA)")
    return algorithm


def sign(key: PrivateKey, data: bytes, digest: bytes | str) -> bytes:
    """The Java signature of ``data``: ``<digest>withRSA`` (PKCS#1 v1.5) or ``<digest>withDSA`` (DER r,s)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, PKCS1v15(), parse_digest_name(digest))
    if isinstance(key, dsa.DSAPrivateKey):
        return key.sign(data, _dsa_hash(digest))
    raise TypeError(f"cannot sign with a {type(key).__name__}")


def verify(pub: PublicKey, signature: bytes, data: bytes, digest: bytes | str) -> bool:
    """Whether ``signature`` is a valid Java signature of ``data``; False for anything unusable.

    The server turns every failure into RC 403 (auth.md 5), so unknown digests, key types that cannot
    sign and malformed signatures are all just "does not verify".
    """
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(signature, data, PKCS1v15(), parse_digest_name(digest))
        elif isinstance(pub, dsa.DSAPublicKey):
            pub.verify(signature, data, _dsa_hash(digest))
        else:
            return False
    except (InvalidSignature, DecodeError, ValueError, UnsupportedAlgorithm):
        return False
    return True

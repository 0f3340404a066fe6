"""HS_PUBKEY data: the Java public-key encodings of RSA, DSA and DH keys (values.md section 5).

Big integers are written as Java's ``BigInteger.toByteArray()`` (minimal two's complement) and read
as unsigned magnitudes of any length.

``Util.getBytesFromPublicKey`` sizes its RSA buffer 4 bytes too large, so every Java RSA_PUB_KEY
ends in 4 zero bytes (see the vectors in shared/vectors/keys); we write them too, because Java
compares server keys by their encoded bytes, and the reader ignores whatever follows the last field.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Reader, Writer

RSA_PUB_KEY = b"RSA_PUB_KEY"
DSA_PUB_KEY = b"DSA_PUB_KEY"
DH_PUB_KEY = b"DH_PUB_KEY"


def java_bigint_bytes(n: int) -> bytes:
    """``BigInteger.toByteArray()`` of a non-negative integer: bit_length // 8 + 1 bytes."""
    if n < 0:
        raise ValueError("negative big integer")
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def read_bigint(r: Reader) -> int:
    return int.from_bytes(r.get_byte_array(), "big")


def write_bigint(w: Writer, n: int) -> None:
    w.put_byte_array(java_bigint_bytes(n))


@dataclass(frozen=True, slots=True)
class RSAPublicKeyData:
    e: int
    n: int


@dataclass(frozen=True, slots=True)
class DSAPublicKeyData:
    q: int
    p: int
    g: int
    y: int


@dataclass(frozen=True, slots=True)
class DHPublicKeyData:
    y: int
    p: int
    g: int


PublicKeyData = RSAPublicKeyData | DSAPublicKeyData | DHPublicKeyData


def decode_public_key(data: bytes) -> PublicKeyData:
    r = Reader(data)
    kind = r.get_utf8()
    r.get_int2()  # flags, always 0
    key: PublicKeyData
    if kind == RSA_PUB_KEY:
        key = RSAPublicKeyData(e=read_bigint(r), n=read_bigint(r))
    elif kind == DSA_PUB_KEY:
        key = DSAPublicKeyData(q=read_bigint(r), p=read_bigint(r), g=read_bigint(r), y=read_bigint(r))
    elif kind == DH_PUB_KEY:
        key = DHPublicKeyData(y=read_bigint(r), p=read_bigint(r), g=read_bigint(r))
    else:
        raise DecodeError(f"unknown public key type {kind!r}")
    return key


def encode_public_key(key: PublicKeyData) -> bytes:
    w = Writer()
    if isinstance(key, RSAPublicKeyData):
        w.put_utf8(RSA_PUB_KEY).put_int2(0)
        for n in (key.e, key.n):
            write_bigint(w, n)
        w.put_int4(0)
    elif isinstance(key, DSAPublicKeyData):
        w.put_utf8(DSA_PUB_KEY).put_int2(0)
        for n in (key.q, key.p, key.g, key.y):
            write_bigint(w, n)
    else:
        w.put_utf8(DH_PUB_KEY).put_int2(0)
        for n in (key.y, key.p, key.g):
            write_bigint(w, n)
    return w.getvalue()

"""Request digests (RD) placed at the start of response bodies (wire.md 7)."""

from __future__ import annotations

import hashlib

from hdlserver.wire.codes import DigestAlgorithm
from hdlserver.wire.envelope import version_at_least

_HASHES = {
    DigestAlgorithm.OLD_FORMAT: "md5",  # the pre-2.1 length-prefixed form of an MD5 digest
    DigestAlgorithm.MD5: "md5",
    DigestAlgorithm.SHA1: "sha1",
    DigestAlgorithm.SHA256: "sha256",
}


def compute_digest(alg: int, data: bytes) -> bytes:
    try:
        name = _HASHES[DigestAlgorithm(alg)]
    except ValueError:
        raise ValueError(f"unknown request digest algorithm {alg}") from None
    return hashlib.new(name, data).digest()


def digest_algorithm_for(response_version: tuple[int, int]) -> int:
    """The algorithm the Java server uses for a response of this version."""
    if version_at_least(response_version, (2, 7)):
        return DigestAlgorithm.SHA256
    if version_at_least(response_version, (2, 1)):
        return DigestAlgorithm.SHA1
    return DigestAlgorithm.OLD_FORMAT


def request_digest(header_body: bytes, response_version: tuple[int, int]) -> tuple[int, bytes]:
    """(algorithm byte, digest) of a request's header + body as received, for a response of this version."""
    alg = digest_algorithm_for(response_version)
    return alg, compute_digest(alg, header_body)

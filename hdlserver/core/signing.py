"""HS_SIGNED credentials for certified responses (wire.md 11.2-11.3).

The digest follows the Java server: SHA-256 for response versions >= 2.11; else SHA-1 for DSA keys;
else SHA-256 from 2.7 and SHA-1 below.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import dsa

from hdlserver.auth import keys
from hdlserver.wire.credential import Credential, signed_prefix
from hdlserver.wire.envelope import version_at_least

HS_SIGNED = b"HS_SIGNED"


def signature_digest_name(version: tuple[int, int], is_dsa: bool) -> str:
    if version_at_least(version, (2, 11)):
        return "SHA-256"
    if is_dsa:
        return "SHA1"
    return "SHA-256" if version_at_least(version, (2, 7)) else "SHA1"


@dataclass(frozen=True, slots=True)
class ResponseSigner:
    private_key: keys.PrivateKey

    @property
    def is_dsa(self) -> bool:
        return isinstance(self.private_key, dsa.DSAPrivateKey)

    def credential(self, header_body: bytes, version: tuple[int, int], suggested: tuple[int, int],
                   session_id: int, request_id: int, counter: int = 0) -> Credential:
        digest = signature_digest_name(version, self.is_dsa)
        prefix = signed_prefix(version, suggested, session_id, request_id, counter)
        signature = keys.sign(self.private_key, prefix + header_body, digest)
        return Credential(signer_index=counter, type=HS_SIGNED, digest_alg=digest.encode(), signature=signature)

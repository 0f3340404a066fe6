"""The server's TLS certificate: ``serverCertificate.pem`` and ``serverCertificatePrivateKey.bin`` (server.md 1).

Like the Java server:

* ``serverCertificate.pem`` present: its chain is used, with the key in ``serverCertificatePrivateKey.bin``
  when that file exists, else the server key (``privkey.bin``). A certificate whose key differs from the
  HS_SITE key is used anyway, with a warning: Java clients that pin the HS_SITE key will refuse it.
* absent, RSA server key: a self-signed certificate for the server key is written, so clients that pin the
  HS_SITE key accept it; no private key file is written (the key is privkey.bin).
* absent, DSA server key: a fresh RSA-2048 key signs the certificate and is written, unencrypted (type 1),
  to ``serverCertificatePrivateKey.bin`` (Java clients accept any certificate from servers with DSA keys).

The self-signed certificate has Java's form: subject and issuer ``CN=anonymous``, a random positive 20-byte
serial number, valid from 2000-01-01 to 9999-12-31, signed with SHA-256.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.x509.oid import NameOID

from hdlserver.auth import keys
from hdlserver.errors import ConfigError, KeyFileError

log = logging.getLogger("hdlserver.http")

CERTIFICATE_FILE = "serverCertificate.pem"
CERTIFICATE_KEY_FILE = "serverCertificatePrivateKey.bin"
CERTIFICATE_KEY_BITS = 2048
_NOT_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anonymous")])  # a UTF8String, as Java writes it


@dataclass(frozen=True)
class ServerCertificate:
    chain: tuple[x509.Certificate, ...]  # the server's certificate first
    private_key: keys.PrivateKey

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def public_key_bytes(self) -> bytes:
        """The certificate's public key in the HS_PUBKEY encoding, for comparison with the HS_SITE key."""
        return keys.public_key_to_bytes(self.chain[0].public_key())  # type: ignore[arg-type]


def self_signed_certificate(private_key: keys.PrivateKey) -> x509.Certificate:
    serial = int.from_bytes(secrets.token_bytes(20), "big") & ((1 << 159) - 1)
    builder = (x509.CertificateBuilder()
               .subject_name(_SUBJECT).issuer_name(_SUBJECT)
               .public_key(private_key.public_key())
               .serial_number(serial or 1)
               .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER))
    return builder.sign(private_key, hashes.SHA256())


def _read_chain(path: Path) -> tuple[x509.Certificate, ...]:
    try:
        chain = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the TLS certificate: {exc}", str(path)) from exc
    if not chain:
        raise ConfigError("no certificate in the file", str(path))
    return chain


def _read_certificate_key(path: Path) -> keys.PrivateKey:
    try:
        data = path.read_bytes()
        if keys.is_encrypted_key_file(data):
            raise ConfigError("the TLS certificate key is encrypted; store it unencrypted (type 1)", str(path))
        return keys.read_private_key_file(data, None)
    except OSError as exc:
        raise ConfigError(f"cannot read the TLS certificate key: {exc.strerror or exc}", str(path)) from exc
    except KeyFileError as exc:
        raise ConfigError(str(exc), str(path)) from exc


def _same_key(certificate: x509.Certificate, private_key: keys.PrivateKey) -> bool:
    public = certificate.public_key()
    return (isinstance(public, rsa.RSAPublicKey | dsa.DSAPublicKey)
            and keys.keys_match(private_key, public))


def load_or_create_certificate(server_dir: Path, server_key: keys.PrivateKey,
                               site_public_key: bytes) -> ServerCertificate:
    """The certificate for HTTPS, created in ``server_dir`` on first use (see the module docstring).

    Raises ConfigError when an existing certificate cannot be read or does not match its private key.
    """
    cert_path = server_dir / CERTIFICATE_FILE
    key_path = server_dir / CERTIFICATE_KEY_FILE
    if cert_path.exists():
        chain = _read_chain(cert_path)
        private_key = _read_certificate_key(key_path) if key_path.exists() else server_key
        if not _same_key(chain[0], private_key):
            source = key_path if key_path.exists() else server_dir / "privkey.bin"
            raise ConfigError(f"{CERTIFICATE_FILE} does not match the private key in {source.name}", str(cert_path))
        certificate = ServerCertificate(chain, private_key)
        if not isinstance(server_key, dsa.DSAPrivateKey) and certificate.public_key_bytes() != site_public_key:
            log.warning("the key of %s is not the server's HS_SITE key: Java clients will refuse HTTPS", cert_path)
        return certificate
    if isinstance(server_key, dsa.DSAPrivateKey):
        private_key = keys.generate_key_pair("RSA", CERTIFICATE_KEY_BITS)
        keys.save_private_key(key_path, private_key, None)
    else:
        private_key = server_key
    certificate = self_signed_certificate(private_key)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    log.info("created the self-signed TLS certificate %s", cert_path)
    return ServerCertificate((certificate,), private_key)

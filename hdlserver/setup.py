"""Non-interactive creation of a server directory (``hdl-setup-server``, and ``hdl-server --init``).

Writes what Handle.Net's setup writes -- config.dct, siteinfo.json, the server and administrator key
pairs in the Java key-file formats -- and fills the store with the prefix handle ``0.NA/<prefix>``
holding the administrator identity (HS_ADMIN at 100, HS_SECKEY at 300, HS_PUBKEY at 301).
The administrator's public key is either generated (with admpriv.bin/admpub.bin) or supplied by the
operator (``admin_public_key``, read with ``read_admin_public_key`` from PEM or a Java public key file),
so that the private half never has to be on the server.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import dsa, rsa

from hdlserver.auth import keys
from hdlserver.config.dct import format_dct
from hdlserver.config.siteinfo import save_site_info_json
from hdlserver.errors import ConfigError, DecodeError, KeyFileError
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.handles import NA_PREFIX, to_prefix_handle
from hdlserver.wire.site import (
    IF_ADMIN_AND_QUERY,
    IF_QUERY,
    PROTO_HTTP,
    PROTO_TCP,
    PROTO_UDP,
    Interface,
    ServerInfo,
    SiteInfo,
    address_from_text,
)
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

ADMIN_ADMIN_INDEX = 100
SECKEY_INDEX = 300
PUBKEY_INDEX = 301
SECKEY_PERMISSIONS = 0x0C  # 1100: admin read/write only (values.md 7)
SAMPLE_SUFFIX = "hello"


@dataclass
class SetupOptions:
    server_dir: Path
    prefixes: list[str] = field(default_factory=lambda: ["DEMO"])
    bind_address: str = "0.0.0.0"
    public_address: str = "127.0.0.1"
    port: int = 2641
    server_id: int = 1
    description: str = "hdlserver"
    admin_secret: str | None = None
    admin_key: bool = True  # generate an administrator key pair (ignored when admin_public_key is given)
    admin_public_key: bytes | None = None  # HS_PUBKEY encoding of the operator's administrator key
    key_algorithm: str = "RSA"
    key_bits: int | None = None
    server_key_passphrase: bytes | None = None
    admin_key_passphrase: bytes | None = None
    partitions: int = 4
    case_sensitive: bool = False
    log_accesses: bool = True
    serve_prefix_handles: bool = True  # home 0.NA/0.NA so identities in 0.NA/<prefix> verify locally
    sample_handle: bool = False
    http_port: int | None = None  # also an hdl_http interface (and an HTTP entry in the site record)

    @property
    def has_admin_key(self) -> bool:
        """Whether the administrator has a public key (supplied or generated) at index 301."""
        return self.admin_public_key is not None or self.admin_key


@dataclass
class SetupResult:
    server_dir: Path
    prefix_handles: list[str]
    admin_identities: list[str]
    sample_handle: str | None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def build_config(opts: SetupOptions, prefix_handles: list[str]) -> dict[str, object]:
    homed = (["0.NA/0.NA"] if opts.serve_prefix_handles else []) + prefix_handles
    admins = []
    for handle in prefix_handles:
        if opts.admin_secret is not None:
            admins.append(f"{SECKEY_INDEX}:{handle}")
        if opts.has_admin_key:
            admins.append(f"{PUBKEY_INDEX}:{handle}")
    interface = {"bind_address": opts.bind_address, "bind_port": str(opts.port), "num_threads": "15",
                 "log_accesses": "yes" if opts.log_accesses else "no"}
    listeners: dict[str, object] = {
        "interfaces": ["hdl_udp", "hdl_tcp"],
        "hdl_udp_config": dict(interface),
        "hdl_tcp_config": {**interface, "max_idle_time": "300000", "backlog": "128"},
    }
    if opts.http_port is not None:
        listeners["interfaces"] = ["hdl_udp", "hdl_tcp", "hdl_http"]
        listeners["hdl_http_config"] = {**interface, "bind_port": str(opts.http_port)}
    return {
        "server_type": "server",
        **listeners,
        "log_save_config": {"log_save_interval": "Never"},
        "server_config": {
            "this_server_id": str(opts.server_id),
            "server_admins": admins,
            "server_admin_full_access": "yes",
            "allow_na_admins": "yes",
            "allow_list_hdls": "yes",
            "case_sensitive": "yes" if opts.case_sensitive else "no",
            "max_auth_time": "60000",
            "max_session_time": "86400",
            "auto_homed_prefixes": homed,
            "storage_type": "lmdb",
            "storage_partitions": str(opts.partitions),
            "enable_txn_queue": "yes",
        },
    }


def build_site(opts: SetupOptions, server_public_key: bytes) -> SiteInfo:
    interfaces = (Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, opts.port), Interface(IF_QUERY, PROTO_UDP, opts.port))
    if opts.http_port is not None:
        interfaces += (Interface(IF_ADMIN_AND_QUERY, PROTO_HTTP, opts.http_port),)
    server = ServerInfo(server_id=opts.server_id, address=address_from_text(opts.public_address),
                        public_key=server_public_key, interfaces=interfaces)
    return SiteInfo(serial=1, primary=True, multi_primary=False, hash_option=2,
                    attributes=((b"desc", opts.description.encode("utf-8")),), servers=(server,))


def prefix_record(prefix_handle: str, admin_secret: str | None, admin_public: bytes | None,
                  now: int) -> list[HandleValue]:
    identity_index = SECKEY_INDEX if admin_secret is not None else PUBKEY_INDEX
    admin = AdminRecord(ALL_PERMISSIONS, prefix_handle.encode("utf-8"), identity_index)
    values = [HandleValue(ADMIN_ADMIN_INDEX, b"HS_ADMIN", encode_admin(admin), timestamp=now)]
    if admin_secret is not None:
        values.append(HandleValue(SECKEY_INDEX, b"HS_SECKEY", admin_secret.encode("utf-8"),
                                  permissions=SECKEY_PERMISSIONS, timestamp=now))
    if admin_public is not None:
        values.append(HandleValue(PUBKEY_INDEX, b"HS_PUBKEY", admin_public, timestamp=now))
    return values


def setup_server_dir(opts: SetupOptions) -> SetupResult:
    d = opts.server_dir
    if (d / "config.dct").exists():
        raise ConfigError("a server directory already exists here (config.dct found); not overwriting", str(d))
    if not opts.prefixes:
        raise ConfigError("at least one prefix is needed")
    if opts.admin_secret is None and not opts.has_admin_key:
        raise ConfigError("an administrator needs a secret key or a key pair")
    for name, port in (("port", opts.port), ("HTTP port", opts.http_port)):
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"{name} {port} is out of range (1-65535)")
    if opts.http_port == opts.port:
        raise ConfigError(f"the HTTP port cannot be the handle protocol port {opts.port}")
    try:
        address_from_text(opts.public_address)
    except ValueError:
        raise ConfigError(f"the public address {opts.public_address!r} is not an IP address (the site record "
                          "advertises an address, not a host name)") from None
    d.mkdir(parents=True, exist_ok=True)
    (d / "logs").mkdir(exist_ok=True)
    server_key = keys.generate_key_pair(opts.key_algorithm, opts.key_bits)
    server_public = keys.public_key_to_bytes(server_key.public_key())
    _write_private(d / "privkey.bin", keys.write_private_key_file(server_key, opts.server_key_passphrase))
    (d / "pubkey.bin").write_bytes(server_public)
    admin_public = opts.admin_public_key
    if admin_public is None and opts.admin_key:
        admin_key = keys.generate_key_pair(opts.key_algorithm, opts.key_bits)
        admin_public = keys.public_key_to_bytes(admin_key.public_key())
        _write_private(d / "admpriv.bin", keys.write_private_key_file(admin_key, opts.admin_key_passphrase))
        (d / "admpub.bin").write_bytes(admin_public)
    prefix_handles = [to_prefix_handle(p.encode("utf-8")).decode("utf-8") for p in opts.prefixes]
    save_site_info_json(d / "siteinfo.json", build_site(opts, server_public))
    (d / "config.dct").write_text(format_dct(build_config(opts, prefix_handles)), encoding="utf-8")

    now = int(time.time())
    store = open_store(d, case_sensitive=opts.case_sensitive, partitions=opts.partitions)
    sample = None
    try:
        for handle in prefix_handles:
            store.create_handle(handle.encode("utf-8"),
                                prefix_record(handle, opts.admin_secret, admin_public, now), overwrite=True)
        if opts.sample_handle:
            prefix = prefix_handles[0][len(NA_PREFIX):]
            sample = f"{prefix}/{SAMPLE_SUFFIX}"
            admin = AdminRecord(ALL_PERMISSIONS, prefix_handles[0].encode("utf-8"), 0)
            store.create_handle(sample.encode("utf-8"), [
                HandleValue(ADMIN_ADMIN_INDEX, b"HS_ADMIN", encode_admin(admin), timestamp=now),
                HandleValue(1, b"URL", b"https://www.handle.net/", timestamp=now),
                HandleValue(2, b"DESC", b"A sample handle created by hdlserver setup", timestamp=now),
            ], overwrite=True)
    finally:
        store.close()
    identities = [a for h in prefix_handles for a in
                  ([f"{SECKEY_INDEX}:{h}"] if opts.admin_secret is not None else [])
                  + ([f"{PUBKEY_INDEX}:{h}"] if opts.has_admin_key else [])]
    return SetupResult(d, prefix_handles, identities, sample)


def generate_admin_secret() -> str:
    return secrets.token_urlsafe(18)


def read_admin_public_key(data: bytes, source: str) -> bytes:
    """The HS_PUBKEY encoding of an administrator public key given as PEM (SubjectPublicKeyInfo) or as a
    Java public key file (admpub.bin). ``ConfigError`` naming ``source`` when it is neither, or not a key
    that can sign (RSA or DSA)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN "):
            key = keys.public_key_from_pem(data)
        else:
            key = keys.public_key_from_bytes(data)
    except (KeyFileError, DecodeError) as exc:
        raise ConfigError(f"not an administrator public key (PEM or Java public key file): {exc}", source) from None
    if not isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        raise ConfigError("the administrator public key must be RSA or DSA (it has to verify signatures)", source)
    return keys.public_key_to_bytes(key)

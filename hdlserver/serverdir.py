"""Opening a Handle.Net style server directory (design.md 6, server.md 1 and 4) into a ServerState."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hdlserver.auth import keys
from hdlserver.auth.challenges import IdAllocator, InMemoryChallengeStore
from hdlserver.auth.sessions import InMemorySessionStore
from hdlserver.config.settings import Settings, load_settings
from hdlserver.config.siteinfo import load_site_info
from hdlserver.core.answer_templates import AnswerTemplates
from hdlserver.core.context import ServerState
from hdlserver.core.homed import HomedPrefixes
from hdlserver.core.signing import ResponseSigner
from hdlserver.errors import ConfigError, KeyFileError
from hdlserver.store.lmdb_store import open_store
from hdlserver.store.record_cache import RecordCache
from hdlserver.wire.handles import to_prefix_handle
from hdlserver.wire.site import encode_site

log = logging.getLogger("hdlserver.server")

PASSPHRASE_ENV = "HDL_SERVER_PASSPHRASE"
PLACEHOLDER_PREFIX = b"0.NA/YOUR_PREFIX"
# The caches' byte bounds follow their entry bounds (the defaults: 16 384 entries, 16 MB and 32 MB).
RECORD_BYTES_PER_ENTRY = 1024
TEMPLATE_BYTES_PER_ENTRY = 2048


def read_passphrase_from_stdin() -> bytes:
    """Like the Java server: the raw bytes of one line from standard input (server.md 4 step 3)."""
    if sys.stdin is None:
        raise ConfigError("privkey.bin is encrypted and no passphrase was given")
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Passphrase for the server private key: ").encode("utf-8")
    line = sys.stdin.buffer.readline()
    return line.rstrip(b"\r\n")


def load_server_key(server_dir: Path, passphrase: bytes | None,
                    ask_passphrase: Callable[[], bytes] = read_passphrase_from_stdin) -> keys.PrivateKey:
    path = server_dir / "privkey.bin"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the server private key: {exc.strerror}", str(path)) from exc
    try:
        if keys.is_encrypted_key_file(data) and passphrase is None:
            env = os.environ.get(PASSPHRASE_ENV)
            passphrase = env.encode("utf-8") if env is not None else ask_passphrase()
        return keys.read_private_key_file(data, passphrase)
    except KeyFileError as exc:
        raise ConfigError(str(exc), str(path)) from exc


def open_server_state(server_dir: Path, *, passphrase: bytes | None = None,
                      clock: Callable[[], float] = time.time) -> ServerState:
    """Read config.dct, the site record and the server key, open the store and home auto_homed_prefixes."""
    settings: Settings = load_settings(server_dir)
    site = load_site_info(server_dir)
    server_id = settings.server.this_server_id
    position = next((i for i, s in enumerate(site.servers) if s.server_id == server_id), None)
    if position is None:
        raise ConfigError(f"this_server_id {server_id} is not a server of the site record",
                          str(server_dir / "config.dct"))
    this_server = site.servers[position]
    private_key = load_server_key(server_dir, passphrase)
    try:
        site_public_key = keys.public_key_from_bytes(this_server.public_key)
    except Exception as exc:
        raise ConfigError(f"the public key of server {server_id} in the site record is unreadable: {exc}",
                          str(server_dir)) from exc
    if not keys.keys_match(private_key, site_public_key):
        raise ConfigError(f"privkey.bin does not match the public key of server {server_id} in the site record",
                          str(server_dir / "privkey.bin"))
    store = open_store(server_dir, case_sensitive=settings.server.case_sensitive,
                       partitions=settings.server.storage_partitions,
                       db_directory=settings.server.db_directory)
    if settings.server.read_only_txn_queue:
        store.refuse_txn_log_writes()
    cache_entries = settings.server.resolution_cache_entries
    store.record_cache = RecordCache(cache_entries, cache_entries * RECORD_BYTES_PER_ENTRY)
    homed = HomedPrefixes(store)
    if site.primary:
        for prefix in settings.server.auto_homed_prefixes:
            prefix_handle = to_prefix_handle(prefix.encode("utf-8"))
            if prefix_handle != PLACEHOLDER_PREFIX.upper() and prefix_handle not in homed:
                log.info("homing prefix %s (auto_homed_prefixes)", prefix_handle.decode("utf-8", "replace"))
                # a read-only queue cannot log it; homing is still what the operator asked for
                homed.home(prefix_handle, log=not settings.server.read_only_txn_queue)
    return ServerState(settings=settings, site=site, site_bytes=encode_site(site), this_server=this_server,
                       this_server_position=position, store=store, homed=homed,
                       signer=ResponseSigner(private_key),
                       challenges=InMemoryChallengeStore(settings.server.max_auth_time_ms / 1000.0),
                       ids=IdAllocator(), sessions=InMemorySessionStore(), clock=clock,
                       answer_templates=AnswerTemplates(cache_entries, cache_entries * TEMPLATE_BYTES_PER_ENTRY))

"""Receiving a DUMP_HANDLES stream into a fresh store (replication.md 7, the receiver rules).

The dump goes into a new store beside the live one; only a complete dump (the final 0xFF) replaces it,
by renaming directories, so a dump that fails midway leaves the server's handles exactly as they were.
A cut stream is resumed after the last handle or prefix received (up to ``MAX_TRIES_WITHOUT_PROGRESS``
tries without progress, as Java does). Records of prefixes outside ``replication_accept_prefixes`` are
skipped with a log line.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hdlserver.client.admin import Identity
from hdlserver.config.dct import parse_dct
from hdlserver.errors import ConfigError, HandleError, StorageError
from hdlserver.replication.mirror import REDUMP_NOTICE_FILE, TXNSTAT_FILE, ReplicationState, accepts
from hdlserver.replication.puller import StreamConnection
from hdlserver.replication.source_sites import FILE_SOURCE_NAME
from hdlserver.replication.streams import (
    DumpDate,
    DumpDone,
    DumpHandle,
    DumpHomedPrefix,
    DumpOtherSiteInfo,
    DumpThisServerInfo,
    read_dump_stream,
)
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_HOME_NA
from hdlserver.store.lmdb_store import LmdbStore, open_store
from hdlserver.wire.bodies import DumpHandlesRequest
from hdlserver.wire.codes import OpCode
from hdlserver.wire.site import ServerInfo
from hdlserver.wire.values import HandleValue

log = logging.getLogger("hdlserver.replication")

MAX_TRIES_WITHOUT_PROGRESS = 3
BATCH = 512
RESUME_AFTER_HANDLE_DATE = 0
RESUME_AFTER_PREFIX_DATE = 1
RESUME_AFTER_HANDLE = 2
RESUME_AFTER_PREFIX = 3

Fetch = Callable[[ServerInfo, int, object, Identity, float], StreamConnection]


@dataclass
class DumpProgress:
    handles: int = 0
    prefixes: int = 0
    dates: int = 0
    skipped: int = 0
    resume_point: bytes | None = None
    resume_type: int = RESUME_AFTER_HANDLE
    this_server: DumpThisServerInfo | None = None
    other_sites: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


def _other_sites(text: str) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for site, servers in parse_dct(text).items():
        if isinstance(servers, list):
            out[site] = [(int(str(s.get("last_txn_id", -1))), int(str(s.get("last_timestamp", 0))))
                         for s in servers if isinstance(s, dict)]
    return out


def receive(store: LmdbStore, events: Iterator[object], progress: DumpProgress,
            accept_prefixes: tuple[str, ...] | None) -> bool:
    """Store the events of one dump stream; True when it reached ABSOLUTELY_DONE. Replication dates are
    kept as sent (they seed the conflict rule of a server that tracks dates)."""
    batch: list[tuple[bytes, tuple[HandleValue, ...]]] = []
    dates: list[tuple[bool, bytes, int, int]] = []

    def flush() -> None:
        if dates:
            store.set_replication_dates(dates)
            progress.dates += len(dates)
            last = dates[-1]
            progress.resume_point = last[1]
            progress.resume_type = RESUME_AFTER_PREFIX_DATE if last[0] else RESUME_AFTER_HANDLE_DATE
            dates.clear()
        if batch:
            store.create_handles(batch, overwrite=True, log=False)
            progress.handles += len(batch)
            progress.resume_point, progress.resume_type = batch[-1][0], RESUME_AFTER_HANDLE
            batch.clear()

    try:
        for event in events:
            if isinstance(event, DumpHandle):
                if accepts(event.handle, TXN_ADD_HANDLE, accept_prefixes):
                    batch.append((event.handle, event.values))
                    if len(batch) >= BATCH:
                        flush()
                else:
                    progress.skipped += 1
                    log.debug("dump: %s skipped, its prefix is not in replication_accept_prefixes",
                              event.handle.decode("utf-8", "replace"))
            elif isinstance(event, DumpHomedPrefix):
                flush()
                if accepts(event.prefix_handle, TXN_HOME_NA, accept_prefixes):
                    store.home_prefix(event.prefix_handle, log=False)
                    progress.prefixes += 1
                progress.resume_point, progress.resume_type = event.prefix_handle, RESUME_AFTER_PREFIX
            elif isinstance(event, DumpThisServerInfo):
                progress.this_server = event
            elif isinstance(event, DumpOtherSiteInfo):
                progress.other_sites = _other_sites(event.dct_text)
            elif isinstance(event, DumpDate):
                dates.append((event.prefix, event.handle, event.date_ms, event.priority))
                if len(dates) >= BATCH:
                    flush()
            elif isinstance(event, DumpDone):
                flush()
                if progress.skipped:
                    log.warning("dump: %d handles of prefixes this server does not accept "
                                "(replication_accept_prefixes) were left out", progress.skipped)
                return True
    finally:
        flush()
    return False


@dataclass
class DumpResult:
    progress: DumpProgress
    source_index: int


def dump_from(server_dir: Path, db_directory: str, partitions: int, case_sensitive: bool,
              servers: list[ServerInfo], request: DumpHandlesRequest, identity: Identity, fetch: Fetch,
              timeout: float, accept_prefixes: tuple[str, ...] | None, retry_wait: float = 5.0) -> DumpResult:
    """Dump from the first source server that completes one into ``<db_directory>.dump``, then swap it in.

    Raises HandleError/OSError/StorageError when no server completed a dump; the live store is untouched.
    """
    staging = db_directory + ".dump"
    shutil.rmtree(server_dir / staging, ignore_errors=True)
    errors: list[str] = []
    for index, server in enumerate(servers):
        progress = DumpProgress()
        with open_store(server_dir, case_sensitive=case_sensitive, partitions=partitions,
                        db_directory=staging) as store:
            done = _dump_with_resume(store, server, request, identity, fetch, timeout, accept_prefixes, progress,
                                     retry_wait, errors)
        if done:
            _swap(server_dir, db_directory, staging)
            return DumpResult(progress, index)
        shutil.rmtree(server_dir / staging, ignore_errors=True)
    raise HandleError("no source server completed a dump: " + "; ".join(errors))


def _dump_with_resume(store: LmdbStore, server: ServerInfo, request: DumpHandlesRequest, identity: Identity,
                      fetch: Fetch, timeout: float, accept_prefixes: tuple[str, ...] | None,
                      progress: DumpProgress, retry_wait: float, errors: list[str]) -> bool:
    tries_without_progress = 0
    current = request
    while tries_without_progress < MAX_TRIES_WITHOUT_PROGRESS:
        before = (progress.handles, progress.prefixes, progress.dates)
        try:
            connection = fetch(server, OpCode.DUMP_HANDLES, current, identity, timeout)
            try:
                if receive(store, read_dump_stream(connection.reader), progress, accept_prefixes):
                    return True
                raise HandleError("the dump stream ended without its final record")
            finally:
                connection.close()
        except (HandleError, OSError, StorageError) as e:
            errors.append(f"{server.address_text()}: {e}")
            log.error("dump from %s failed after %d handles: %s", server.address_text(), progress.handles, e)
        now = (progress.handles, progress.prefixes, progress.dates)
        tries_without_progress = 0 if now != before else tries_without_progress + 1
        if progress.resume_point is not None:
            current = DumpHandlesRequest(request.receiver_hash_type, request.num_servers, request.server_num,
                                         progress.resume_point, progress.resume_type)
        if tries_without_progress < MAX_TRIES_WITHOUT_PROGRESS:
            time.sleep(retry_wait)
    return False


def _swap(server_dir: Path, db_directory: str, staging: str) -> None:
    live, new, old = server_dir / db_directory, server_dir / staging, server_dir / (db_directory + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if live.exists():
        live.rename(old)
    new.rename(live)
    shutil.rmtree(old, ignore_errors=True)


def record_dump_state(server_dir: Path, result: DumpResult, own_site_name: str | None = None,
                      source_site_name: str = FILE_SOURCE_NAME) -> ReplicationState:
    """txnstat.dct after a dump: THIS_SERVER info for the dumped server's queue (``<index>:<source_site_name>``),
    OTHER_SITE info for the other queues except the dumped site's own and this server's (replication.md 7)."""
    state = ReplicationState(server_dir / TXNSTAT_FILE)
    for site, servers in result.progress.other_sites.items():
        if site in (source_site_name, own_site_name):
            continue
        for i, (last_id, last_ts) in enumerate(servers):
            queue = state.queue(site, i)
            queue.last_txn_id, queue.last_timestamp = last_id, last_ts
    info = result.progress.this_server
    if info is not None:
        queue = state.queue(source_site_name, result.source_index)
        queue.last_txn_id, queue.last_timestamp = info.last_txn_id, info.date_ms
    state.save()
    with contextlib.suppress(FileNotFoundError):
        (server_dir / REDUMP_NOTICE_FILE).unlink()
    return state


def refuse_if_running(server_dir: Path, stop_file: str) -> None:
    if (server_dir / stop_file).exists():
        raise ConfigError(f"the server seems to be running ({stop_file} exists): stop it before a dump",
                          str(server_dir))

"""The mirror side: replication state (``txnstat.dct``), sources (``txnsrcsv.*``), one pull round, lag.

A round asks every server of the source site for the transactions after the last one applied from it
(replication.md 8) and applies them as they arrive (8.1), in batches whose LMDB transactions also record
how far each partition got (``LmdbStore.apply_replicated``), so a mirror killed mid-round restarts after
the last transaction it applied, without loss and without applying one twice. ``txnstat.dct`` is written
atomically after every successful round, for operators and Java tools; on start the larger of its id and
the store's mark is used.

The network is injected (``fetch``: puller.open_stream in the server, fakes in tests); the asyncio task
that runs rounds every ``replication_interval`` is in task.py. Lag per source is kept in ``SourceStatus``
objects: ``Mirror.status()`` is what the metrics and the logs read.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hdlserver.client.admin import Identity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.config.dct import DctValue, format_dct, load_dct
from hdlserver.config.settings import ServerConfig
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.errors import ConfigError, HandleError, StorageError
from hdlserver.replication.puller import StreamConnection
from hdlserver.replication.streams import (
    STATUS_NEED_TO_REDUMP,
    QueueLastTimestamp,
    QueueName,
    StreamError,
    TxnRecord,
    TxnStreamEnd,
    TxnStreamHead,
    read_txn_stream,
)
from hdlserver.store.base import TXN_HOME_NA, TXN_UNHOME_NA
from hdlserver.store.lmdb_store import LmdbStore, ReplicatedTxn
from hdlserver.wire.bodies import RetrieveTxnLogRequest
from hdlserver.wire.codes import OpCode
from hdlserver.wire.handles import prefix_handle_of, to_prefix_handle
from hdlserver.wire.site import PROTO_TCP, ServerInfo, SiteInfo

log = logging.getLogger("hdlserver.replication")

TXNSTAT_FILE = "txnstat.dct"
SOURCE_FILES = ("txnsrcsv.bin", "txnsrcsv.json")  # the binary one wins, as in Java
REDUMP_NOTICE_FILE = "SERVER_NEEDS_REDUMP.txt"
FILE_SOURCE_NAME = "sources"  # the site name of the file-based source (replication.md 3)
FRESH_TXN_ID = -1  # what a fresh Java mirror asks from
APPLY_BATCH = 256  # pulled transactions committed together (one synced LMDB commit per partition touched)

Fetch = Callable[[ServerInfo, int, object, Identity, float], StreamConnection]


@dataclass
class QueueState:
    last_txn_id: int = FRESH_TXN_ID
    last_timestamp: int = 0


@dataclass
class SourceStatus:
    """What a mirror knows of one source server (one queue); read by metrics and logged every round.

    ``lag_txns``: transactions the last round had to apply, i.e. how far behind the mirror was when it
    began (0 once caught up); ``lag_seconds``: now minus the source's time of the newest state pulled
    (the END date), so it grows when pulls fail.
    """

    queue: str
    last_txn_id: int = FRESH_TXN_ID
    last_timestamp_ms: int = 0
    lag_txns: int = 0
    last_round_applied: int = 0
    last_error: str | None = None
    last_error_time: float | None = None
    last_success_time: float | None = None
    errors: int = 0  # failed rounds since the server started
    needs_redump: bool = False

    def last_error_free_round(self) -> int:
        """Record a round that ended well; returns the transactions it applied."""
        self.last_error = None
        self.lag_txns = self.last_round_applied
        return self.last_round_applied

    def lag_seconds(self, now: float) -> float | None:
        return None if self.last_timestamp_ms <= 0 else max(0.0, now - self.last_timestamp_ms / 1000.0)


class ReplicationState:
    """``txnstat.dct``: per site name, one table per source server index (replication.md 3)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sites: dict[str, list[QueueState]] = {}

    @classmethod
    def load(cls, path: Path) -> ReplicationState:
        state = cls(path)
        if not path.exists():
            return state
        table = load_dct(path)
        for site, servers in table.items():
            if not isinstance(servers, list):
                raise ConfigError(f"{site!r} is not a list of server states", str(path))
            queues = []
            for entry in servers:
                if not isinstance(entry, dict):
                    raise ConfigError(f"a state of {site!r} is not a table", str(path))
                try:
                    queues.append(QueueState(int(str(entry.get("last_txn_id", FRESH_TXN_ID))),
                                             int(str(entry.get("last_timestamp", 0)))))
                except ValueError as e:
                    raise ConfigError(f"a state of {site!r} is not a number: {e}", str(path)) from None
            state.sites[site] = queues
        return state

    def queue(self, site: str, index: int) -> QueueState:
        queues = self.sites.setdefault(site, [])
        while len(queues) <= index:
            queues.append(QueueState())
        return queues[index]

    def text(self) -> str:
        table: dict[str, DctValue] = {
            site: [{"last_txn_id": str(q.last_txn_id), "last_timestamp": str(q.last_timestamp)} for q in queues]
            for site, queues in self.sites.items()}
        return format_dct(table)

    def save(self, sync: bool = True) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.text())
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)


def queue_name(index: int, site: str) -> str:
    return f"{index}:{site}"


def accepts(handle: bytes, action: int, accept_prefixes: tuple[str, ...] | None) -> bool:
    """``replication_accept_prefixes`` (8.1): None accepts everything; prefixes compare ASCII-case-blind."""
    if accept_prefixes is None:
        return True
    prefix = to_prefix_handle(handle) if action in (TXN_HOME_NA, TXN_UNHOME_NA) else prefix_handle_of(handle)
    wanted = {to_prefix_handle(p.encode("utf-8")).upper() for p in accept_prefixes}
    return prefix.upper() in wanted


@dataclass
class _Batch:
    """Transactions received and verified but not yet committed, and the id the queue reaches with them."""

    queue: bytes
    state: QueueState
    txns: list[ReplicatedTxn] = field(default_factory=list)
    last_id: int = FRESH_TXN_ID

    def __post_init__(self) -> None:
        self.last_id = self.state.last_txn_id


@dataclass
class Mirror:
    """One replicating server: its store, identity, sources and state. ``run_round`` does blocking I/O
    through ``fetch`` and is meant to run in a worker thread."""

    server_dir: Path
    config: ServerConfig
    store: LmdbStore
    own_site: SiteInfo
    own_position: int
    identity: Identity
    fetch: Fetch
    clock: Callable[[], float]
    state: ReplicationState = field(init=False)
    statuses: dict[str, SourceStatus] = field(default_factory=dict)
    _sources: tuple[float, SiteInfo] | None = None
    _current: StreamConnection | None = None
    _aborted: bool = False

    def abort(self) -> None:
        """From another thread, at shutdown: close the stream being read so the round ends at once; what it
        applied so far stays applied and recorded."""
        self._aborted = True
        current = self._current
        if current is not None:
            current.close()

    def __post_init__(self) -> None:
        self.state = ReplicationState.load(self.server_dir / TXNSTAT_FILE)

    # -- sources

    def source_site(self) -> SiteInfo:
        """The file-based source site, re-read when the file changes (8 step 1)."""
        for name in SOURCE_FILES:
            path = self.server_dir / name
            if path.exists():
                mtime = path.stat().st_mtime
                if self._sources is None or self._sources[0] != mtime:
                    self._sources = (mtime, read_site_info_file(path))
                    log.info("replication source: %s (%d servers)", path.name, len(self._sources[1].servers))
                return self._sources[1]
        raise ConfigError(f"no replication source: neither {' nor '.join(SOURCE_FILES)} exists", str(self.server_dir))

    def status(self) -> list[SourceStatus]:
        """Per source server: last pulled id, lag, last error (the metrics hook, see the module docstring)."""
        return list(self.statuses.values())

    def status_text(self) -> str:
        """The replication state as txnstat.dct text (what this server's dumps carry as OTHER_SITE info)."""
        return self.state.text()

    # -- a round

    def run_round(self) -> int:
        """Pull from every source server once; returns the number of transactions applied."""
        site = self.source_site()
        applied = 0
        for index, server in enumerate(site.servers):
            if self._aborted:
                break
            if self._cannot_hold_ours(site, index) or self._is_me(server):
                continue
            applied += self.pull(FILE_SOURCE_NAME, index, server)
        self._redump_notice()
        return applied

    def _is_me(self, server: ServerInfo) -> bool:
        """A source server at this server's own address and TCP port is this server (8 step 1)."""
        me = self.own_site.servers[self.own_position] if self.own_site.servers else None
        if me is None or server.address != me.address:
            return False
        mine = {i.port for i in me.interfaces if i.protocol == PROTO_TCP}
        return any(i.protocol == PROTO_TCP and i.port in mine for i in server.interfaces)

    def _cannot_hold_ours(self, site: SiteInfo, index: int) -> bool:
        own = self.own_site
        return (site.hash_option == own.hash_option and len(site.servers) == len(own.servers) > 1
                and index != self.own_position)

    def pull(self, site_name: str, index: int, server: ServerInfo) -> int:
        """One RETRIEVE_TXN_LOG from one source server; errors are logged and kept in its status."""
        name = queue_name(index, site_name)
        status = self.statuses.setdefault(name, SourceStatus(name))
        queue = self.state.queue(site_name, index)
        mark_id, mark_date = self.store.replication_mark(name.encode())
        if mark_id > queue.last_txn_id:
            # killed after applying transactions of an unfinished round: continue after them. Their date
            # stands for the round's end date: the queue has been seen up to it (redump rule 6.3.3).
            queue.last_txn_id = mark_id
            queue.last_timestamp = max(queue.last_timestamp, mark_date)
        request = RetrieveTxnLogRequest(last_txn_id=queue.last_txn_id, last_query_date=queue.last_timestamp,
                                        receiver_hash_type=self.own_site.hash_option,
                                        num_servers=max(1, len(self.own_site.servers)),
                                        server_num=self.own_position)
        status.last_round_applied = 0
        try:
            connection = self.fetch(server, OpCode.RETRIEVE_TXN_LOG, request, self.identity,
                                    self.config.replication_timeout_ms / 1000.0)
            self._current = connection
            try:
                self._consume(name, queue, status, read_txn_stream(connection.reader))
            finally:
                self._current = None
                connection.close()
        except (HandleError, OSError, StorageError) as e:
            if self._aborted:
                log.info("replication from %s stopped at txn %d: the server is stopping", name, queue.last_txn_id)
            else:
                self._failed(status, queue, server, e)
            return status.last_round_applied
        applied = status.last_error_free_round()
        status.last_success_time = self.clock()
        log.log(logging.INFO if applied else logging.DEBUG,
                "replication from %s (%s): %d transactions applied, now at txn %d, lag %.1f s", name,
                server.address_text(), applied, queue.last_txn_id, status.lag_seconds(self.clock()) or 0.0)
        return applied

    def _failed(self, status: SourceStatus, queue: QueueState, server: ServerInfo, e: Exception) -> None:
        if isinstance(e, HandleResponseError):
            reason = f"refused by the source: {e}"
        elif isinstance(e, StreamError):
            reason = f"bad stream: {e}"
        else:
            reason = f"{type(e).__name__}: {e}"
        status.last_error = reason
        status.last_error_time = self.clock()
        status.errors += 1
        status.last_txn_id = queue.last_txn_id
        log.error("replication from %s (%s) failed at txn %d: %s; the next round retries", status.queue,
                  server.address_text(), queue.last_txn_id, reason)

    def _consume(self, name: str, queue: QueueState, status: SourceStatus, events: Iterator[object]) -> None:
        """Apply a stream's transactions in batches of ``APPLY_BATCH`` (each transaction's record was verified
        before it arrives here); what arrived before a failure is applied too. ``status.last_round_applied``
        counts them as they commit."""
        batch = _Batch(name.encode(), queue)
        try:
            self._consume_events(name, queue, status, events, batch)
        finally:
            self._flush(batch, status)

    def _consume_events(self, name: str, queue: QueueState, status: SourceStatus, events: Iterator[object],
                        batch: _Batch) -> None:
        accept = self.config.replication_accept_prefixes
        for event in events:
            if isinstance(event, TxnStreamHead):
                if event.status == STATUS_NEED_TO_REDUMP:
                    status.needs_redump = True
                    log.error("replication source %s says this server NEEDS TO REDUMP (run hdl-dumpfromprimary); "
                              "nothing was applied", name)
                    return
                status.needs_redump = False
            elif isinstance(event, TxnRecord):
                if event.txn_id <= batch.last_id:
                    log.warning("replication from %s: txn %d is not after %d, already applied: skipped", name,
                                event.txn_id, batch.last_id)
                    continue
                if accepts(event.handle, event.action, accept):
                    batch.txns.append(ReplicatedTxn(event.txn_id, event.date_ms, event.action, event.handle,
                                                    event.values))
                else:
                    log.info("replication from %s: txn %d for %s skipped (replication_accept_prefixes)", name,
                             event.txn_id, event.handle.decode("utf-8", "replace"))
                batch.last_id = event.txn_id
                if len(batch.txns) >= APPLY_BATCH:
                    self._flush(batch, status)
            elif isinstance(event, QueueName | QueueLastTimestamp):
                continue  # the all-sources form is not requested by this mirror
            elif isinstance(event, TxnStreamEnd):
                self._flush(batch, status)
                if event.date_ms is not None:
                    queue.last_timestamp = status.last_timestamp_ms = event.date_ms
                self.state.save(sync=not self.config.file_write_no_sync)

    def _flush(self, batch: _Batch, status: SourceStatus) -> None:
        """Commit the pending transactions; only then does the queue's last id move past them."""
        if batch.txns:
            status.last_round_applied += self.store.apply_replicated(batch.queue, batch.txns)
            batch.txns.clear()
        batch.state.last_txn_id = status.last_txn_id = batch.last_id

    def _redump_notice(self) -> None:
        path = self.server_dir / REDUMP_NOTICE_FILE
        waiting = [s.queue for s in self.statuses.values() if s.needs_redump]
        if waiting:
            path.write_text("This server needs to be redumped (hdl-dumpfromprimary); sources asking for it: "
                            + ", ".join(waiting) + "\n", encoding="utf-8")
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

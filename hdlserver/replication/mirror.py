"""The pulling side (a mirror, or a primary of a multi-primary site): replication state (``txnstat.dct``),
one pull round, lag.

A round re-reads the sources (source_sites.py: ``txnsrcsv.*`` or a replication sites handle) and asks
every server of every source site for the transactions after the last one applied from it
(replication.md 8), in the single-source form or, with ``replication_pull_other_transactions``, in the
all-sources form that also carries the queues the source pulled from others (proxied mirroring). They are
applied as they arrive (8.1), in batches whose LMDB transactions also record how far each partition got
(``LmdbStore.apply_replicated``), so a server killed mid-round restarts after the last transaction it
applied, without loss and without applying one twice; with ``replication_keep_other_transactions`` the
same commit keeps a copy of each pulled queue, which this server then serves to others. Where
replication dates are tracked, each transaction goes through the conflict rule with its queue's
priority. ``txnstat.dct`` is written atomically after every successful pull, for operators and Java
tools; at every round the larger of its id and the store's mark is used.

The network is injected (``fetch``: puller.open_stream in the server, fakes in tests); the asyncio task
that runs rounds every ``replication_interval`` is in task.py. Lag per source is kept in ``SourceStatus``
objects: ``Mirror.status()`` is what the metrics and the logs read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hdlserver.client.admin import Identity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.config.dct import DctValue, format_dct, load_dct
from hdlserver.config.settings import ServerConfig
from hdlserver.errors import ConfigError, HandleError, StorageError
from hdlserver.replication.puller import StreamConnection
from hdlserver.replication.source_sites import SourceCollection, source_collection, values_resolver
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
REDUMP_NOTICE_FILE = "SERVER_NEEDS_REDUMP.txt"
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

    def snapshot(self) -> list[tuple[str, list[QueueState]]]:
        """A copy to read from another thread (the server answering all-sources pulls) while rounds run."""
        return [(site, [QueueState(q.last_txn_id, q.last_timestamp) for q in list(queues)])
                for site, queues in list(self.sites.items())]

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


def split_queue_name(name: str) -> tuple[int, str] | None:
    """(server index, site name) of ``<index>:<site name>`` (replication.md 4.4); None if it is not one."""
    index, sep, site = name.partition(":")
    if not sep or not site or not index.isdigit():
        return None
    return int(index), site


def site_priority(site: str) -> int:
    """A queue's conflict-rule priority: the integer before the first ':' of its site name (the index of
    the source's HS_SITE value); 0 for the file-based ``sources`` (replication.md 8.1)."""
    head, sep, _ = site.partition(":")
    return int(head) if sep and head.isdigit() else 0


def accepts(handle: bytes, action: int, accept_prefixes: tuple[str, ...] | None) -> bool:
    """``replication_accept_prefixes`` (8.1): None accepts everything; prefixes compare ASCII-case-blind."""
    if accept_prefixes is None:
        return True
    prefix = to_prefix_handle(handle) if action in (TXN_HOME_NA, TXN_UNHOME_NA) else prefix_handle_of(handle)
    wanted = {to_prefix_handle(p.encode("utf-8")).upper() for p in accept_prefixes}
    return prefix.upper() in wanted


@dataclass
class _Batch:
    """Transactions of one queue received and verified but not yet committed, and the id the queue reaches
    with them."""

    queue: bytes
    state: QueueState
    status: SourceStatus
    priority: int
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
    sources: SourceCollection | None = None  # default: from the config (source_sites.source_collection)
    state: ReplicationState = field(init=False)
    statuses: dict[str, SourceStatus] = field(default_factory=dict)
    own_name: str | None = None  # this server's site name among the sources (handle-based sources)
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
        if self.sources is None:
            self.sources = source_collection(self.server_dir, self.config, self._me(), values_resolver(self.store))

    def _me(self) -> ServerInfo:
        return self.own_site.servers[self.own_position]

    def status(self) -> list[SourceStatus]:
        """Per source server: last pulled id, lag, last error (the metrics hook, see the module docstring)."""
        return list(self.statuses.values())

    def status_text(self) -> str:
        """The replication state as txnstat.dct text (what this server's dumps carry as OTHER_SITE info)."""
        return self.state.text()

    # -- a round

    def run_round(self) -> int:
        """Pull from every source server once; returns the number of transactions applied."""
        assert self.sources is not None
        try:
            sources = self.sources.refresh()
        except (ConfigError, HandleError, OSError, StorageError) as e:
            log.error("replication: cannot read the replication sources, no pull this round: %s", e)
            return 0
        self.own_name = sources.own_name
        if self.store.tracks_replication_dates:
            self.store.track_replication_dates(sources.own_priority)
        if not sources.sites:
            log.warning("replication: no source sites to pull from")
        self._adopt_marks()
        applied = 0
        for source in sources.sites:
            for index, server in enumerate(source.site.servers):
                if self._aborted:
                    break
                if self._cannot_hold_ours(source.site, index) or self._is_me(server):
                    continue
                applied += self.pull(source.name, index, server)
        self._redump_notice()
        return applied

    def _adopt_marks(self) -> None:
        """Continue after transactions applied in an unfinished round (killed before txnstat.dct was
        saved): the store's marks say how far each queue got. Their date stands for the round's end date:
        the queue has been seen up to it (redump rule 6.3.3)."""
        for name, (mark_id, mark_date) in self.store.replication_marks().items():
            parsed = split_queue_name(name.decode("utf-8", "replace"))
            if parsed is None:
                continue
            queue = self.state.queue(parsed[1], parsed[0])
            if mark_id > queue.last_txn_id:
                queue.last_txn_id = mark_id
                queue.last_timestamp = max(queue.last_timestamp, mark_date)

    def _status(self, name: str) -> SourceStatus:
        return self.statuses.setdefault(name, SourceStatus(name))

    def _state_document(self) -> bytes:
        """The all-sources request's ``replicationServerStates`` (4.1): every queue known here."""
        states = {queue_name(i, site): {"lastTxnId": q.last_txn_id, "lastTimestamp": q.last_timestamp}
                  for site, queues in self.state.sites.items() for i, q in enumerate(queues)}
        return json.dumps({"replicationServerStates": states, "ownName": self.own_name},
                          separators=(",", ":")).encode("utf-8")

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
        status = self._status(name)
        queue = self.state.queue(site_name, index)
        all_sources = self.config.replication_pull_other_transactions
        request = RetrieveTxnLogRequest(last_txn_id=queue.last_txn_id, last_query_date=queue.last_timestamp,
                                        receiver_hash_type=self.own_site.hash_option,
                                        num_servers=max(1, len(self.own_site.servers)),
                                        server_num=self.own_position,
                                        replication_state=self._state_document() if all_sources else None)
        pulled = _Pulled(self._batch(name, site_name, index))
        try:
            connection = self.fetch(server, OpCode.RETRIEVE_TXN_LOG, request, self.identity,
                                    self.config.replication_timeout_ms / 1000.0)
            self._current = connection
            try:
                self._consume(pulled, read_txn_stream(connection.reader))
            finally:
                self._current = None
                connection.close()
        except (HandleError, OSError, StorageError) as e:
            if self._aborted:
                log.info("replication from %s stopped at txn %d: the server is stopping", name, queue.last_txn_id)
            else:
                self._failed(status, queue, server, e)
            return pulled.applied()
        now = self.clock()
        for batch in pulled.batches.values():
            batch.status.last_error_free_round()
            batch.status.last_success_time = now
        applied = pulled.applied()
        log.log(logging.INFO if applied else logging.DEBUG,
                "replication from %s (%s): %d transactions applied, now at txn %d, lag %.1f s", name,
                server.address_text(), applied, queue.last_txn_id, status.lag_seconds(now) or 0.0)
        return applied

    def _batch(self, name: str, site_name: str, index: int) -> _Batch:
        status = self._status(name)
        status.last_round_applied = 0
        return _Batch(name.encode(), self.state.queue(site_name, index), status, site_priority(site_name))

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

    def _consume(self, pulled: _Pulled, events: Iterator[object]) -> None:
        """Apply a stream's transactions in batches of ``APPLY_BATCH`` (each transaction's record was verified
        before it arrives here); what arrived before a failure is applied too. Each queue's status counts
        its transactions as they commit."""
        try:
            self._consume_events(pulled, events)
        finally:
            for batch in pulled.batches.values():
                self._flush(batch)

    def _consume_events(self, pulled: _Pulled, events: Iterator[object]) -> None:
        accept = self.config.replication_accept_prefixes
        batch = pulled.current
        for event in events:
            if isinstance(event, TxnStreamHead):
                if event.status == STATUS_NEED_TO_REDUMP:
                    batch.status.needs_redump = True
                    log.error("replication source %s says this server NEEDS TO REDUMP (run hdl-dumpfromprimary); "
                              "nothing was applied", batch.status.queue)
                    return
                batch.status.needs_redump = False
            elif isinstance(event, QueueName):
                self._flush(batch)
                batch = pulled.switch(self, event.name.decode("utf-8", "replace"))
            elif isinstance(event, TxnRecord):
                if batch.queue == OWN_QUEUE_SKIPPED:
                    continue
                if event.txn_id <= batch.last_id:
                    log.warning("replication from %s: txn %d is not after %d, already applied: skipped",
                                batch.status.queue, event.txn_id, batch.last_id)
                    continue
                accepted = accepts(event.handle, event.action, accept)
                if not accepted:
                    log.info("replication from %s: txn %d for %s skipped (replication_accept_prefixes)",
                             batch.status.queue, event.txn_id, event.handle.decode("utf-8", "replace"))
                batch.txns.append(ReplicatedTxn(event.txn_id, event.date_ms, event.action, event.handle,
                                                event.values, accepted))
                batch.last_id = event.txn_id
                if len(batch.txns) >= APPLY_BATCH:
                    self._flush(batch)
            elif isinstance(event, QueueLastTimestamp):
                self._flush(batch)
                if batch.queue != OWN_QUEUE_SKIPPED:
                    batch.state.last_timestamp = batch.status.last_timestamp_ms = event.date_ms
            elif isinstance(event, TxnStreamEnd):
                for each in pulled.batches.values():
                    self._flush(each)
                if event.date_ms is not None:
                    batch.state.last_timestamp = batch.status.last_timestamp_ms = event.date_ms
                self.state.save(sync=not self.config.file_write_no_sync)

    def _flush(self, batch: _Batch) -> None:
        """Commit the pending transactions; only then does the queue's last id move past them."""
        if batch.txns:
            batch.status.last_round_applied += self.store.apply_replicated(
                batch.queue, batch.txns, batch.priority,
                keep_copies=self.config.replication_keep_other_transactions)
            batch.txns.clear()
        batch.state.last_txn_id = batch.status.last_txn_id = batch.last_id

    def _redump_notice(self) -> None:
        path = self.server_dir / REDUMP_NOTICE_FILE
        waiting = [s.queue for s in self.statuses.values() if s.needs_redump]
        if waiting:
            path.write_text("This server needs to be redumped (hdl-dumpfromprimary); sources asking for it: "
                            + ", ".join(waiting) + "\n", encoding="utf-8")
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


OWN_QUEUE_SKIPPED = b""  # the batch of a queue of this server's own site: its records are not applied


@dataclass
class _Pulled:
    """The queues one all-sources stream carries (just the source server's own in the single-source form)."""

    current: _Batch
    batches: dict[bytes, _Batch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.batches[self.current.queue] = self.current

    def switch(self, mirror: Mirror, name: str) -> _Batch:
        """The batch of queue ``name`` (QUEUE_NAME record); queues of this server's own site are skipped,
        as are names that are not ``<index>:<site>``."""
        parsed = split_queue_name(name)
        if parsed is None or parsed[1] == mirror.own_name:
            if parsed is None:
                log.warning("replication: queue name %r is not <index>:<site>; its transactions are skipped", name)
            skipped = _Batch(OWN_QUEUE_SKIPPED, QueueState(), SourceStatus(name), 0)
            self.current = skipped
            return skipped
        key = name.encode("utf-8")
        if key not in self.batches:
            self.batches[key] = mirror._batch(name, parsed[1], parsed[0])
        self.current = self.batches[key]
        return self.current

    def applied(self) -> int:
        return sum(b.status.last_round_applied for b in self.batches.values() if b.queue != OWN_QUEUE_SKIPPED)

"""The asyncio side of replication: a pull round every ``replication_interval`` and transaction-log pruning
every hour, each in a worker thread.

Started by net/server.py: the pull loop when the server replicates (``do_replication``; by default: not a
primary, or multi-primary), the pruner when ``txnlog_num_days_to_keep`` > 0. Stopping waits for the job in
progress (bounded by ``replication_timeout``) so the store is never closed under a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from pathlib import Path

from hdlserver.core.context import ServerState
from hdlserver.errors import ConfigError
from hdlserver.replication.mirror import Mirror
from hdlserver.replication.puller import open_stream, replication_identity
from hdlserver.store.lmdb_store import LmdbStore

log = logging.getLogger("hdlserver.replication")

STOP_WAIT_SECONDS = 30.0
PRUNE_INTERVAL_SECONDS = 3600.0


def replicates(state: ServerState) -> bool:
    configured = state.settings.server.do_replication
    if configured is not None:
        return configured
    return state.site.multi_primary or not state.site.primary


def tracks_dates(state: ServerState) -> bool:
    """Whether a replicating server keeps replication dates (Java's replicationDb): a primary (so
    multi-primary), or a server pulling from handle-based sources or pulling other transactions
    (replication.md 3, 10). A plain single primary and a mirror of ``txnsrcsv.*`` keep none."""
    config = state.settings.server
    return (state.site.primary or bool(config.replication_sites_handle or config.replication_site_handle_value)
            or config.replication_pull_other_transactions)


def build_mirror(state: ServerState, server_dir: Path) -> Mirror:
    if not isinstance(state.store, LmdbStore):
        raise TypeError("replication needs the LMDB store")
    config = state.settings.server
    if tracks_dates(state):
        state.store.track_replication_dates(0)  # the own priority is known once the sources are read
    return Mirror(server_dir=server_dir, config=config, store=state.store, own_site=state.site,
                  own_position=state.this_server_position,
                  identity=replication_identity(server_dir, config.replication_authentication),
                  fetch=open_stream, clock=state.clock)


def parse_start_time(text: str) -> float:
    """``replication_start_time`` as seconds since 1970: an ISO 8601 date and time (``2026-12-04T03:00``,
    ``20261204T030000Z``, with or without an offset; without one it is local time, as Java reads it)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"invalid replication_start_time {text!r}: expected an ISO 8601 date and time such as "
                          "2026-12-04T03:00:00") from None
    return moment.timestamp()


def initial_delay(start: float, now: float, interval: float) -> float:
    """Seconds until the next round aligned to ``start`` modulo ``interval`` (0 when aligned now), so that
    several servers started at different times pull at the same moments."""
    return (interval - ((now - start) % interval)) % interval


class PeriodicTask:
    """Runs ``job`` in a worker thread, then waits ``interval`` seconds, until stopped; the first run waits
    ``initial_delay`` seconds."""

    def __init__(self, name: str, job: Callable[[], object], interval_seconds: float,
                 abort: Callable[[], None] | None = None, initial_delay: float = 0.0) -> None:
        self.name = name
        self.job = job
        self.interval = interval_seconds
        self.initial_delay = initial_delay
        self.abort = abort  # makes a running job return early (called from the event loop's thread)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        log.info("%s: every %.1f s%s", self.name, self.interval,
                 f", first in {self.initial_delay:.1f} s" if self.initial_delay else "")
        if self.initial_delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.initial_delay)
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.job)
            except Exception:
                log.exception("%s failed", self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def stop(self) -> None:
        self._stop.set()
        if self.abort is not None:
            self.abort()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_SECONDS)
            except TimeoutError:
                log.warning("%s still running after %.0f s at shutdown", self.name, STOP_WAIT_SECONDS)


class ReplicationTasks:
    """The replication jobs of a running server: the pull loop and the transaction-log pruner."""

    def __init__(self, tasks: list[PeriodicTask]) -> None:
        self.tasks = tasks

    async def stop(self) -> None:
        for task in self.tasks:
            await task.stop()


def prune_job(store: LmdbStore, days: int, clock: Callable[[], float]) -> Callable[[], int]:
    def prune() -> int:
        deleted = store.prune_transactions(int((clock() - days * 86_400) * 1000))
        if deleted:
            log.info("transaction log: %d entries older than %d days pruned", deleted, days)
        return deleted

    return prune


def start_replication(state: ServerState, server_dir: Path) -> ReplicationTasks:
    """Start the pull loop if this server replicates (its status then goes into the dumps it serves and to
    ``state.mirror`` for metrics), and the pruner when ``txnlog_num_days_to_keep`` is set."""
    config = state.settings.server
    tasks = []
    if replicates(state):
        interval = config.replication_interval_ms / 1000.0
        delay = 0.0
        if config.replication_start_time:
            delay = initial_delay(parse_start_time(config.replication_start_time), state.clock(), interval)
        mirror = build_mirror(state, server_dir)
        state.mirror = mirror
        tasks.append(PeriodicTask("replication pull", mirror.run_round, interval, abort=mirror.abort,
                                  initial_delay=delay))
    if config.enable_txn_queue and config.txnlog_num_days_to_keep > 0 and isinstance(state.store, LmdbStore):
        tasks.append(PeriodicTask("transaction log pruning",
                                  prune_job(state.store, config.txnlog_num_days_to_keep, state.clock),
                                  PRUNE_INTERVAL_SECONDS))
    for task in tasks:
        task.start()
    return ReplicationTasks(tasks)

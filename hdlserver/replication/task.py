"""The asyncio side of the mirror: run a pull round every ``replication_interval`` in a worker thread.

Started by net/server.py when the server replicates (``do_replication``; by default: not a primary, or
multi-primary). Stopping waits for the round in progress (bounded by ``replication_timeout``) so the
store is never closed under a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from hdlserver.core.context import ServerState
from hdlserver.replication.mirror import Mirror
from hdlserver.replication.puller import open_stream, replication_identity
from hdlserver.store.lmdb_store import LmdbStore

log = logging.getLogger("hdlserver.replication")

STOP_WAIT_SECONDS = 30.0


def replicates(state: ServerState) -> bool:
    configured = state.settings.server.do_replication
    if configured is not None:
        return configured
    return state.site.multi_primary or not state.site.primary


def build_mirror(state: ServerState, server_dir: Path) -> Mirror:
    if not isinstance(state.store, LmdbStore):
        raise TypeError("replication needs the LMDB store")
    config = state.settings.server
    return Mirror(server_dir=server_dir, config=config, store=state.store, own_site=state.site,
                  own_position=state.this_server_position,
                  identity=replication_identity(server_dir, config.replication_authentication),
                  fetch=open_stream, clock=state.clock)


class MirrorTask:
    def __init__(self, mirror: Mirror, interval_seconds: float) -> None:
        self.mirror = mirror
        self.interval = interval_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        log.info("replication: pulling every %.1f s", self.interval)
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.mirror.run_round)
            except Exception:
                log.exception("replication round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_SECONDS)
            except TimeoutError:
                log.warning("replication round still running after %.0f s at shutdown", STOP_WAIT_SECONDS)


def start_mirror(state: ServerState, server_dir: Path) -> MirrorTask | None:
    """Start the pull loop if this server replicates; its status text then goes into the dumps it serves."""
    if not replicates(state):
        return None
    mirror = build_mirror(state, server_dir)
    state.replication_status_text = mirror.status_text
    task = MirrorTask(mirror, state.settings.server.replication_interval_ms / 1000.0)
    task.start()
    return task

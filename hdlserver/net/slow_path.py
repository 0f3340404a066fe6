"""The requests the fast path does not answer, handled off the event loop.

Everything beyond a plain resolution -- challenges and the HMAC or signature checks of their answers,
synced LMDB commits, Diffie-Hellman session setup, signed answers, listings, identities verified at
their own server (up to ``REMOTE_TIMEOUT`` seconds), REST and the HTTP tunnel -- runs in one worker
thread, so the event loop goes on answering resolutions meanwhile. Measured with
``scripts/bench_resolution.py --writes-per-second 200``: while admin writes ran on the event loop, each one
stopped resolution for its synced commit.

One thread, because it keeps the dispatcher's work in arrival order, as it was on the event loop, and
because the state it shares with the loop's fast path (the store, its record cache, the homed prefixes,
the session and challenge tables) is already safe to use from a second thread: the replication pull loop
writes from one. A TCP connection stops reading while its request is in the worker, so its answers keep
their order; UDP answers go out as they complete. The queue is bounded: past ``max_pending`` requests a
transport answers "server too busy" instead of queueing more.

Stopping: ``close`` refuses new work, lets the queued requests finish (their answers are still sent on the
open connections) and only then returns, so the store is never closed under a write.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

log = logging.getLogger("hdlserver.server")

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_MAX_PENDING = 1024


class SlowPathClosed(RuntimeError):
    """The server is stopping: no new slow-path work is taken."""


class SlowPath:
    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self._closing = False
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hdl-slow-path")

    @property
    def full(self) -> bool:
        return self.pending >= self.max_pending

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """``fn(*args)`` in the worker; the future completes on the running event loop. Raises
        ``SlowPathClosed`` once the server is stopping."""
        if self._closing:
            raise SlowPathClosed("the server is stopping")
        loop = asyncio.get_running_loop()
        self.pending += 1
        future = loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: asyncio.Future[object]) -> None:
        self.pending -= 1  # the caller's own callback takes the result or the exception

    async def close(self, timeout: float) -> None:
        """Take no new work, wait (at most ``timeout`` seconds) for the queued work and its answers."""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending and loop.time() < deadline:
            await asyncio.sleep(0.01)  # the done-callbacks that send the answers run on this loop
        if self.pending:
            log.warning("stopping with %d requests still in the slow path", self.pending)
        await asyncio.to_thread(self._executor.shutdown, wait=True)

"""Access logging shared by the transports: one line per answered request, off the event loop."""

from __future__ import annotations

import logging
import time

from hdlserver.core.accesslog import format_access_line
from hdlserver.net import logs
from hdlserver.net.logs import ACCESS_LOGGER

_access = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    def __init__(self, enabled: bool, transport: str) -> None:
        self.enabled = enabled
        self.transport = transport

    def record(self, client: str, suggested: tuple[int, int], started: float, opcode: int, response_code: int,
               handle: bytes, identity: str = "") -> None:
        if not self.enabled:
            return
        entry = (client, self.transport, suggested, time.time(), opcode, response_code,
                 int((time.monotonic() - started) * 1000), identity, handle)
        sink = logs.access_sink
        if sink is not None:
            sink(entry)  # formatted on the log writer thread
        else:
            _access.info(format_access_line(*entry))

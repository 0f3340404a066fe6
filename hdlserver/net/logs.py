"""Server logging: ``logs/error.log`` and ``logs/access.log`` in the Handle.Net formats (server.md 12).

Access lines go through a queue to a writer thread, so logging never blocks the event loop on disk.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from dataclasses import dataclass
from pathlib import Path

from hdlserver.core.accesslog import format_log_time

ACCESS_LOGGER = "hdlserver.access"

# Python levels to the Java error-log levels: 25 info, 50 normal, 75 bad, 100 fatal.
_JAVA_LEVELS = {logging.DEBUG: 25, logging.INFO: 50, logging.WARNING: 75, logging.ERROR: 75,
                logging.CRITICAL: 100}


class ErrorLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _JAVA_LEVELS.get(record.levelno, 50)
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f'"{format_log_time(record.created)}" {level} {text}'


class AccessLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


@dataclass
class LogSetup:
    listener: logging.handlers.QueueListener
    handlers: list[logging.Handler]

    def stop(self) -> None:
        self.listener.stop()
        for handler in self.handlers:
            handler.close()
        for name in ("hdlserver", ACCESS_LOGGER):
            logger = logging.getLogger(name)
            for h in list(logger.handlers):
                logger.removeHandler(h)


def setup_logging(log_dir: Path | None, *, to_stdout: bool = False, verbose: bool = False) -> LogSetup:
    """Route ``hdlserver.*`` to error.log and ``hdlserver.access`` to access.log (or both to stdout)."""
    handlers: list[logging.Handler] = []
    if to_stdout or log_dir is None:
        error_handler: logging.Handler = logging.StreamHandler(sys.stdout)
        access_handler: logging.Handler = logging.StreamHandler(sys.stdout)
    else:
        log_dir.mkdir(parents=True, exist_ok=True)
        error_handler = logging.FileHandler(log_dir / "error.log", encoding="utf-8")
        access_handler = logging.FileHandler(log_dir / "access.log", encoding="utf-8")
    error_handler.setFormatter(ErrorLogFormatter())
    access_handler.setFormatter(AccessLogFormatter())
    handlers += [error_handler, access_handler]

    log_queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(log_queue, _RouteByLogger(error_handler, access_handler),
                                              respect_handler_level=False)
    listener.start()
    queue_handler = logging.handlers.QueueHandler(log_queue)
    for name, level in (("hdlserver", logging.DEBUG if verbose else logging.INFO), (ACCESS_LOGGER, logging.INFO)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(queue_handler)
    logging.getLogger(ACCESS_LOGGER).propagate = False
    logging.getLogger("hdlserver").propagate = False
    return LogSetup(listener, handlers)


class _RouteByLogger(logging.Handler):
    """Sends access records to the access handler and everything else to the error handler."""

    def __init__(self, error_handler: logging.Handler, access_handler: logging.Handler) -> None:
        super().__init__()
        self.error_handler = error_handler
        self.access_handler = access_handler

    def emit(self, record: logging.LogRecord) -> None:
        target = self.access_handler if record.name == ACCESS_LOGGER else self.error_handler
        target.handle(record)

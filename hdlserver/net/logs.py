"""Server logging: ``error.log`` and ``access.log`` in the Handle.Net formats (server.md 12).

Access and error records go through a queue to one writer thread, so logging never blocks the event loop
on disk. The files live in ``log_save_directory`` and start afresh each period of ``log_save_interval``
(server.md 12.3: ``Never`` -> ``access.log``; ``Monthly`` -> ``access.log-YYYYMM``; ``Weekly``/``Daily``
-> ``access.log-YYYYMMDD`` of the period start, local time). ``LogSetup.reopen`` closes and reopens the
files (the server calls it on SIGHUP) so that an external rotator such as logrotate can rename them.
With ``log_redirect_stderr`` (Java's default) whatever is written to ``sys.stderr`` while the server runs
goes into the error log, one record per line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO

from hdlserver.config.settings import LogInterval, LogSaveConfig
from hdlserver.core.accesslog import AccessEntry, format_access_line, format_log_time
from hdlserver.errors import ConfigError

ACCESS_LOGGER = "hdlserver.access"
STDERR_LOGGER = "hdlserver.stderr"
ERROR_LOG_NAME = "error.log"
ACCESS_LOG_NAME = "access.log"

# Where the transports put raw access entries while logging runs (setup_logging sets it to the log queue's
# put): a tuple put on a SimpleQueue costs well under a microsecond on the event loop, where a logger call
# with its LogRecord and the line's formatting cost tens (design.md 7). None: no queue, use the logger.
access_sink: Callable[[AccessEntry], None] | None = None

# Python levels to the Java error-log levels: 25 info, 50 normal, 75 bad, 100 fatal.
_JAVA_LEVELS = {logging.DEBUG: 25, logging.INFO: 50, logging.WARNING: 75, logging.ERROR: 75,
                logging.CRITICAL: 100}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # date.weekday()


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


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def log_period(interval: LogInterval, weekday: str, when: datetime) -> tuple[str, datetime | None]:
    """The file-name suffix of the log period holding the local time ``when``, and the local start of the
    next period (None for ``Never``). ``weekday`` is the English day a ``Weekly`` period starts on."""
    day = when.date()
    if interval == "Never":
        return "", None
    if interval == "Monthly":
        return f"-{day:%Y%m}", datetime.combine(_first_of_next_month(day), datetime.min.time())
    if interval == "Daily":
        start, length = day, 1
    else:
        first = _WEEKDAYS.index(weekday) if weekday in _WEEKDAYS else _WEEKDAYS.index("Sunday")
        start, length = day - timedelta(days=(day.weekday() - first) % 7), 7
    return f"-{start:%Y%m%d}", datetime.combine(start + timedelta(days=length), datetime.min.time())


class PeriodLogFile(logging.StreamHandler):  # type: ignore[type-arg]
    """A log file named ``<name><suffix of the current period>`` in ``directory``, appended to.

    Each record is written to the file of the period its time falls in, so the switch happens with the
    first record of a new period. Opening is eager: an unusable directory fails at startup, not later.
    """

    def __init__(self, directory: Path, name: str, interval: LogInterval = "Never", weekday: str = "Sunday"
                 ) -> None:
        super().__init__()
        self.directory = directory
        self.name_base = name
        self.interval = interval
        self.weekday = weekday
        self._next_start: float | None = None
        self._reported_failure = False
        self.path = self._path_for(datetime.now().timestamp())
        self.stream = self._open()

    def _path_for(self, created: float) -> Path:
        suffix, next_start = log_period(self.interval, self.weekday, datetime.fromtimestamp(created))
        self._next_start = None if next_start is None else next_start.timestamp()
        return self.directory / f"{self.name_base}{suffix}"

    def _open(self) -> TextIO:
        return open(self.path, "a", encoding="utf-8")  # kept open for the handler's life

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()

    def emit(self, record: logging.LogRecord) -> None:
        # Runs under the handler lock (Handler.handle), as reopen() does.
        try:
            if self._next_start is not None and record.created >= self._next_start:
                self._close_stream()
                self.path = self._path_for(record.created)
            if self.stream is None:
                self.stream = self._open()
            self.stream.write(self.format(record) + self.terminator)
            self.stream.flush()
        except Exception:
            self.handleError(record)
            return
        self._reported_failure = False

    def reopen(self) -> None:
        """Close the file and open it again by name (after logrotate moved it away)."""
        with self.lock:  # type: ignore[union-attr]
            self._close_stream()
            try:
                self.stream = self._open()
            except OSError as exc:
                self._report(f"cannot reopen {self.path}: {exc.strerror or exc}")
                return
            self._reported_failure = False

    def handleError(self, record: logging.LogRecord) -> None:
        # Never through sys.stderr: it may be redirected into this very log.
        exc = sys.exc_info()[1]
        self._report(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}")

    def _report(self, message: str) -> None:
        if self._reported_failure:
            return  # once per failure streak, not once per record
        self._reported_failure = True
        real_stderr = sys.__stderr__
        if real_stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                real_stderr.write(f"hdlserver: {message}\n")
                real_stderr.flush()

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._close_stream()
        logging.Handler.close(self)


class StderrToLog(io.TextIOBase):
    """A stand-in for ``sys.stderr`` that logs each complete line as an error-log record."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._pending = ""
        self._lock = threading.Lock()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"  # some writers look at it; the text goes to the UTF-8 error log

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._pending + text).split("\n")
            self._pending = lines.pop()
        for line in lines:
            if line.strip():
                self._logger.info("%s", line.rstrip("\r"))
        return len(text)

    def flush_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, ""
        if pending.strip():
            self._logger.info("%s", pending)


@dataclass
class LogSetup:
    listener: logging.handlers.QueueListener
    handlers: list[logging.Handler]
    stderr_redirect: StderrToLog | None = None
    saved_stderr: TextIO | None = None
    _stopped: bool = field(default=False, repr=False)

    def reopen(self) -> None:
        """Reopen every log file by name (SIGHUP); a no-op when logging to standard output."""
        for handler in self.handlers:
            if isinstance(handler, PeriodLogFile):
                handler.reopen()

    def stop(self) -> None:
        """Restore standard error, write out what is queued and close the files; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.stderr_redirect is not None:
            self.stderr_redirect.flush_pending()
            if sys.stderr is self.stderr_redirect:
                sys.stderr = self.saved_stderr
        global access_sink
        access_sink = None
        self.listener.stop()
        for handler in self.handlers:
            handler.close()
        for name in ("hdlserver", ACCESS_LOGGER):
            logger = logging.getLogger(name)
            for h in list(logger.handlers):
                logger.removeHandler(h)


def log_directory(server_dir: Path, save: LogSaveConfig) -> Path:
    """``log_save_directory``, relative to the server directory unless absolute."""
    return Path(server_dir) / save.directory


def setup_logging(log_dir: Path | None, *, to_stdout: bool = False, verbose: bool = False,
                  save: LogSaveConfig | None = None) -> LogSetup:
    """Route ``hdlserver.*`` to error.log and ``hdlserver.access`` to access.log in ``log_dir`` (or both to
    stdout), rotated and with standard error redirected as ``save`` says (Java's defaults when None).

    Raises ``ConfigError`` naming the directory when it cannot be created or its files cannot be opened.
    """
    save = save or LogSaveConfig()
    handlers: list[logging.Handler] = []
    if to_stdout or log_dir is None:
        error_handler: logging.Handler = logging.StreamHandler(sys.stdout)
        access_handler: logging.Handler = logging.StreamHandler(sys.stdout)
    else:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            error_handler = PeriodLogFile(log_dir, ERROR_LOG_NAME, save.interval, save.weekday)
            try:
                access_handler = PeriodLogFile(log_dir, ACCESS_LOG_NAME, save.interval, save.weekday)
            except OSError:
                error_handler.close()
                raise
        except OSError as exc:
            raise ConfigError(f"cannot write logs there: {exc.strerror or exc} (log_save_config."
                              f"log_save_directory)", str(log_dir)) from exc
    error_handler.setFormatter(ErrorLogFormatter())
    access_handler.setFormatter(AccessLogFormatter())
    handlers += [error_handler, access_handler]

    global access_sink
    log_queue: queue.SimpleQueue[logging.LogRecord | AccessEntry] = queue.SimpleQueue()
    listener = _LogWriter(log_queue, _RouteByLogger(error_handler, access_handler), respect_handler_level=False)
    listener.start()
    access_sink = log_queue.put
    queue_handler = logging.handlers.QueueHandler(log_queue)
    for name, level in (("hdlserver", logging.DEBUG if verbose else logging.INFO), (ACCESS_LOGGER, logging.INFO)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(queue_handler)
    logging.getLogger(ACCESS_LOGGER).propagate = False
    logging.getLogger("hdlserver").propagate = False
    setup = LogSetup(listener, handlers)
    if save.redirect_stderr and isinstance(error_handler, PeriodLogFile):
        setup.saved_stderr = sys.stderr
        setup.stderr_redirect = StderrToLog(logging.getLogger(STDERR_LOGGER))
        sys.stderr = setup.stderr_redirect
    return setup


class _LogWriter(logging.handlers.QueueListener):
    """The writer thread: takes log records, and raw access entries which it turns into access records."""

    def prepare(self, record: logging.LogRecord | AccessEntry) -> logging.LogRecord:  # type: ignore[override]
        if isinstance(record, logging.LogRecord):
            return record
        return logging.makeLogRecord({"name": ACCESS_LOGGER, "levelno": logging.INFO, "levelname": "INFO",
                                      "msg": format_access_line(*record), "created": record[3]})


class _RouteByLogger(logging.Handler):
    """Sends access records to the access handler and everything else to the error handler."""

    def __init__(self, error_handler: logging.Handler, access_handler: logging.Handler) -> None:
        super().__init__()
        self.error_handler = error_handler
        self.access_handler = access_handler

    def emit(self, record: logging.LogRecord) -> None:
        target = self.access_handler if record.name == ACCESS_LOGGER else self.error_handler
        target.handle(record)

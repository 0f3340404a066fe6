"""Access-log lines: the time format, and entries handed raw to the log writer thread instead of the logger."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hdlserver.core import accesslog
from hdlserver.core.accesslog import format_log_time
from hdlserver.net import logs
from hdlserver.net.access import AccessLog
from hdlserver.net.logs import ACCESS_LOGGER, setup_logging


def reference_time(when: float) -> str:
    local = datetime.fromtimestamp(when).astimezone()
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    zone = "Z" if minutes == 0 else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return local.strftime("%Y-%m-%d %H:%M:%S") + f".{int((when % 1) * 1000):03d}{zone}"


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Kolkata"])
def zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # The formatter keeps the last second's text; a server's zone does not change while it runs, a test's does.
    monkeypatch.setattr(accesslog, "_last_second", (-1, "", ""))
    saved = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def test_log_time_matches_the_local_clock_across_seconds_and_zones(zone: str) -> None:
    base = datetime(2026, 3, 8, 6, 59, 58, tzinfo=UTC).timestamp()  # across a DST change in New York
    for when in [base + step / 8 for step in range(0, 40)] + [base + 3600 * 24 * 200, base]:
        assert format_log_time(when) == reference_time(when), (zone, when)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_entries_reach_the_file_without_a_logger_call_on_the_callers_thread(tmp_path: Path) -> None:
    setup = setup_logging(tmp_path)
    seen = Collect()
    logging.getLogger(ACCESS_LOGGER).addHandler(seen)
    try:
        before = time.time()
        AccessLog(True, "UDP").record("127.0.0.1", (2, 11), time.monotonic(), 1, 100, b"TEST/a b", "300:0.NA/TEST")
        after = time.time()
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(seen)
        setup.stop()  # drains the queue into the file
    assert seen.records == []  # the transport only queued the raw entry; the writer thread made the line
    line = (tmp_path / "access.log").read_text(encoding="utf-8").strip()
    head, stamp, tail = line.split('"')
    assert head == "127.0.0.1 UDP:HDL(2.11) "
    assert tail == " 1 100 0ms adm=300:0.NA/TEST TEST/a%20b"
    assert format_log_time(before) <= stamp <= format_log_time(after)


def test_without_running_logs_entries_go_to_the_logger(caplog: pytest.LogCaptureFixture) -> None:
    assert logs.access_sink is None
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        AccessLog(True, "TCP").record("10.0.0.1", (2, 10), time.monotonic(), 2, 1, b"")
    lines = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(lines) == 1 and lines[0].startswith('10.0.0.1 TCP:HDL(2.10) "')


def test_stopping_the_logs_drains_queued_entries_and_removes_the_sink(tmp_path: Path) -> None:
    setup = setup_logging(tmp_path)
    access = AccessLog(True, "UDP")
    for i in range(500):
        access.record("127.0.0.1", (2, 11), time.monotonic(), 1, 1, f"TEST/{i}".encode())
    setup.stop()
    assert logs.access_sink is None
    lines = (tmp_path / "access.log").read_text(encoding="utf-8").splitlines()
    assert [line.rsplit(" ", 1)[1] for line in lines] == [f"TEST/{i}" for i in range(500)]


def test_disabled_access_log_writes_nothing(tmp_path: Path) -> None:
    setup = setup_logging(tmp_path)
    AccessLog(False, "UDP").record("127.0.0.1", (2, 11), time.monotonic(), 1, 1, b"TEST/x")
    setup.stop()
    assert (tmp_path / "access.log").read_text(encoding="utf-8") == ""

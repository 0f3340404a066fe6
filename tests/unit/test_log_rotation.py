"""Log files: rotation periods and names (server.md 12.3), reopening for logrotate, stderr redirection."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from hdlserver.config.settings import LogSaveConfig
from hdlserver.errors import ConfigError
from hdlserver.net.logs import PeriodLogFile, log_directory, log_period, setup_logging


@pytest.mark.parametrize(("interval", "weekday", "when", "suffix", "next_start"), [
    ("Never", "Sunday", datetime(2024, 5, 17, 13, 0), "", None),
    ("Monthly", "Sunday", datetime(2024, 5, 17, 13, 0), "-202405", datetime(2024, 6, 1)),
    ("Monthly", "Sunday", datetime(2024, 12, 31, 23, 59), "-202412", datetime(2025, 1, 1)),
    ("Daily", "Sunday", datetime(2024, 5, 17, 0, 0), "-20240517", datetime(2024, 5, 18)),
    ("Daily", "Sunday", datetime(2024, 2, 29, 23, 59, 59), "-20240229", datetime(2024, 3, 1)),
    # 2024-05-17 is a Friday: the week started on Sunday the 12th.
    ("Weekly", "Sunday", datetime(2024, 5, 17, 9, 30), "-20240512", datetime(2024, 5, 19)),
    ("Weekly", "Sunday", datetime(2024, 5, 12, 0, 0), "-20240512", datetime(2024, 5, 19)),
    ("Weekly", "Friday", datetime(2024, 5, 17, 9, 30), "-20240517", datetime(2024, 5, 24)),
    ("Weekly", "Saturday", datetime(2024, 5, 17, 9, 30), "-20240511", datetime(2024, 5, 18)),
    ("Weekly", "Caturday", datetime(2024, 5, 17, 9, 30), "-20240512", datetime(2024, 5, 19)),  # -> Sunday
    ("Weekly", "Monday", datetime(2024, 12, 31, 12, 0), "-20241230", datetime(2025, 1, 6)),
])
def test_log_period(interval: str, weekday: str, when: datetime, suffix: str, next_start: datetime | None) -> None:
    assert log_period(interval, weekday, when) == (suffix, next_start)  # type: ignore[arg-type]


def _record(message: str, created: datetime) -> logging.LogRecord:
    record = logging.LogRecord("hdlserver.test", logging.INFO, __file__, 1, message, None, None)
    record.created = created.timestamp()
    return record


@pytest.fixture
def daily_file(tmp_path: Path) -> Iterator[PeriodLogFile]:
    handler = PeriodLogFile(tmp_path, "error.log", "Daily")
    handler.setFormatter(logging.Formatter("%(message)s"))
    yield handler
    handler.close()


def test_records_go_to_the_file_of_their_period(tmp_path: Path, daily_file: PeriodLogFile) -> None:
    daily_file.handle(_record("first day", datetime(2030, 1, 30, 23, 59, 59)))
    daily_file.handle(_record("second day", datetime(2030, 1, 31, 0, 0, 1)))
    daily_file.handle(_record("third day", datetime(2030, 2, 1, 8, 0)))
    assert (tmp_path / "error.log-20300130").read_text() == "first day\n"
    assert (tmp_path / "error.log-20300131").read_text() == "second day\n"
    assert (tmp_path / "error.log-20300201").read_text() == "third day\n"
    assert daily_file.path == tmp_path / "error.log-20300201"


def test_the_current_period_file_is_opened_at_once(tmp_path: Path) -> None:
    handler = PeriodLogFile(tmp_path, "access.log", "Monthly")
    try:
        assert handler.path == tmp_path / f"access.log-{datetime.now():%Y%m}"
        assert handler.path.exists()
    finally:
        handler.close()
    never = PeriodLogFile(tmp_path, "access.log")
    try:
        assert never.path == tmp_path / "access.log"
    finally:
        never.close()


def test_reopen_after_an_external_rename(tmp_path: Path) -> None:
    handler = PeriodLogFile(tmp_path, "access.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        handler.handle(_record("before", datetime.now()))
        (tmp_path / "access.log").rename(tmp_path / "access.log.1")
        handler.handle(_record("still the old file", datetime.now()))
        handler.reopen()
        handler.handle(_record("after", datetime.now()))
    finally:
        handler.close()
    assert (tmp_path / "access.log.1").read_text() == "before\nstill the old file\n"
    assert (tmp_path / "access.log").read_text() == "after\n"


def test_a_file_that_cannot_be_written_is_reported_once_on_the_real_stderr(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    handler = PeriodLogFile(directory, "error.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        (directory / "error.log").unlink()
        directory.rmdir()
        handler.reopen()  # the directory is gone: no exception, one message
        handler.handle(_record("lost", datetime.now()))
        handler.handle(_record("lost too", datetime.now()))
    finally:
        handler.close()
    err = capfd.readouterr().err
    assert err.count("hdlserver: cannot") == 1, err
    assert str(directory / "error.log") in err


def test_setup_logging_names_an_unusable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the log directory should be")
    with pytest.raises(ConfigError) as info:
        setup_logging(blocker / "logs")
    assert str(blocker / "logs") in str(info.value)
    assert "log_save_directory" in str(info.value)


def test_log_directory_is_relative_to_the_server_directory_unless_absolute(tmp_path: Path) -> None:
    assert log_directory(tmp_path, LogSaveConfig()) == tmp_path / "logs"
    assert log_directory(tmp_path, LogSaveConfig(directory="var/log")) == tmp_path / "var" / "log"
    assert log_directory(tmp_path, LogSaveConfig(directory="/var/log/hdl")) == Path("/var/log/hdl")


def test_standard_error_goes_into_the_error_log_and_comes_back(tmp_path: Path) -> None:
    original = sys.stderr
    logs = setup_logging(tmp_path, save=LogSaveConfig(interval="Never", redirect_stderr=True))
    try:
        assert sys.stderr is not original
        print("a stray warning\nin two lines", file=sys.stderr)
        sys.stderr.write("no newline at the end")
        logging.getLogger("hdlserver.test").info("a logged line")
    finally:
        logs.stop()
        logs.stop()  # idempotent
    assert sys.stderr is original
    lines = (tmp_path / "error.log").read_text().splitlines()
    assert [line.split(" ", 3)[-1] for line in lines] == [
        "a stray warning", "in two lines", "a logged line", "no newline at the end"]
    assert all(line.startswith('"') and line.split('" ', 1)[1].startswith("50 ") for line in lines), lines


def test_standard_error_is_left_alone_when_not_redirected(tmp_path: Path) -> None:
    original = sys.stderr
    logs = setup_logging(tmp_path, save=LogSaveConfig(redirect_stderr=False))
    try:
        assert sys.stderr is original
    finally:
        logs.stop()
    stdout_logs = setup_logging(None, to_stdout=True, save=LogSaveConfig(redirect_stderr=True))
    try:
        assert sys.stderr is original  # nothing to redirect into when logging to standard output
    finally:
        stdout_logs.stop()


def test_setup_reopen_and_rotation_through_the_queue(tmp_path: Path) -> None:
    logs = setup_logging(tmp_path, save=LogSaveConfig(interval="Daily", redirect_stderr=False))
    try:
        logging.getLogger("hdlserver.access").info("access line")
        logging.getLogger("hdlserver.server").info("error line")
        logs.listener.stop()  # drain the queue, then keep going with a fresh listener thread
        today = f"{datetime.now():%Y%m%d}"
        assert (tmp_path / f"access.log-{today}").read_text() == "access line\n"
        assert (tmp_path / f"error.log-{today}").read_text().endswith(" 50 error line\n")
        (tmp_path / f"access.log-{today}").rename(tmp_path / "moved")
        logs.reopen()
        logs.listener.start()
        logging.getLogger("hdlserver.access").info("after reopen")
    finally:
        logs.stop()
    assert (tmp_path / f"access.log-{today}").read_text() == "after reopen\n"
    assert (tmp_path / "moved").read_text() == "access line\n"


def test_a_full_disk_is_reported_once_until_writing_works_again(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    class FullDisk(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    handler = PeriodLogFile(tmp_path, "error.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    real = handler.stream
    try:
        handler.stream = FullDisk()
        handler.handle(_record("lost 1", datetime.now()))
        handler.handle(_record("lost 2", datetime.now()))
        handler.stream = real
        handler.handle(_record("written", datetime.now()))
        handler.stream = FullDisk()
        handler.handle(_record("lost 3", datetime.now()))
    finally:
        handler.stream = real
        handler.close()
    err = capfd.readouterr().err
    assert err.count("No space left on device") == 2, err
    assert (tmp_path / "error.log").read_text() == "written\n"

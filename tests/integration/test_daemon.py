"""Running as a daemon: log files per log_save_config, SIGHUP reopening them for logrotate, logging to
standard output, an unusable log directory, and the sample systemd unit."""

from __future__ import annotations

import configparser
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from servers import free_port, run_cli, setup_server_dir, start_server

from hdlserver.client.resolver import Resolver
from hdlserver.config.dct import format_dct, load_dct

REPO = Path(__file__).resolve().parents[2]


def set_log_config(directory: Path, **entries: str) -> None:
    path = directory / "config.dct"
    table = dict(load_dct(path))
    table["log_save_config"] = dict(entries)
    path.write_text(format_dct(table), encoding="utf-8")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def test_daily_files_in_the_configured_directory(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    set_log_config(directory, log_save_interval="Daily", log_save_directory="var/log")
    days = {f"{datetime.now():%Y%m%d}"}
    server = start_server(directory, port)
    try:
        Resolver([server.address], udp=False).resolve("TEST/hello")
    finally:
        assert server.stop() == 0
    days.add(f"{datetime.now():%Y%m%d}")  # a run across midnight may have used either day
    log_dir = directory / "var" / "log"
    access = "".join(read(log_dir / f"access.log-{day}") for day in days)
    errors = "".join(read(log_dir / f"error.log-{day}") for day in days)
    assert " TCP:HDL(" in access and "TEST/hello" in access
    assert "hdlserver started" in errors and "stopped" in errors
    assert not (directory / "logs" / "error.log").exists()


def test_sighup_reopens_the_log_files(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port, extra=("--pid-file", str(tmp_path / "hdl.pid")))
    logs = directory / "logs"
    try:
        resolver = Resolver([server.address], udp=False)
        resolver.resolve("TEST/hello", types=["URL"])
        wait_for(lambda: "TEST/hello" in read(logs / "access.log"), "the first access line")
        (logs / "access.log").rename(logs / "access.log.1")  # what logrotate does
        (logs / "error.log").rename(logs / "error.log.1")
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: log files reopened" in read(logs / "error.log"), "the reopen message")
        resolver.resolve("0.NA/TEST")
        wait_for(lambda: "0.NA/TEST" in read(logs / "access.log"), "an access line in the new file")
        assert server.process.poll() is None
        assert "0.NA/TEST" not in read(logs / "access.log.1")
        assert "hdlserver started" in read(logs / "error.log.1")
    finally:
        assert server.stop() == 0
    assert "stopped" in read(logs / "error.log")


def test_logging_to_standard_output(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port, extra=("--log-stdout",))
    try:
        Resolver([server.address], udp=False).resolve("TEST/hello")
        server.process.send_signal(signal.SIGHUP)  # nothing to reopen: must not stop the server
        time.sleep(0.3)
        assert server.process.poll() is None
    finally:
        assert server.stop() == 0
    out = server.process.stdout.read().decode("utf-8")  # type: ignore[union-attr]
    assert "hdlserver started" in out and "TEST/hello" in out and "SIGHUP" in out
    assert not (directory / "logs" / "error.log").exists()


def test_an_unusable_log_directory_stops_startup_with_its_name(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    (directory / "blocker").write_text("a file where a directory should be")
    set_log_config(directory, log_save_directory="blocker/logs")
    proc = run_cli("hdlserver.cli.server", directory, check=False, timeout=60)
    assert proc.returncode == 1
    assert str(directory / "blocker" / "logs") in proc.stderr and "log_save_directory" in proc.stderr
    assert not (directory / "delete_this_to_stop_server").exists()


def test_a_listener_failure_is_reported_on_the_real_standard_error(tmp_path: Path) -> None:
    """With log_redirect_stderr (the default) standard error goes into error.log while serving; a failure
    to start must still reach the operator's terminal."""
    directory = tmp_path / "srv"
    port = setup_server_dir(directory, port=free_port())
    server = start_server(directory, port)
    try:
        second = tmp_path / "second"
        setup_server_dir(second, port=port)
        proc = run_cli("hdlserver.cli.server", second, check=False, timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 1
    assert "cannot start the listeners" in proc.stderr


def test_the_sample_systemd_unit() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "conf" / "hdlserver.service", encoding="utf-8")
    service = unit["Service"]
    assert service["Type"] == "simple"  # hdl-server stays in the foreground
    assert "hdl-server" in service["ExecStart"] and "--pid-file" in service["ExecStart"]
    assert service["ExecReload"].endswith("kill -HUP $MAINPID")
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"

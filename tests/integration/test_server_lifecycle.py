"""Starting and stopping the server: signals, the stop file, bad configuration, first-start init."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from http_support import request
from servers import free_port, run_cli, setup_server_dir, start_server

from hdlserver.client.resolver import Resolver


def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    return proc.wait(timeout)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tmp_path: Path, sig: int) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port, extra=("--pid-file", str(tmp_path / "server.pid")))
    assert (directory / "delete_this_to_stop_server").exists()
    assert int((tmp_path / "server.pid").read_text()) == server.process.pid
    assert server.stop(sig) == 0
    assert not (directory / "delete_this_to_stop_server").exists()
    assert not (tmp_path / "server.pid").exists()
    assert "stopped" in server.error_log()


def test_deleting_stop_file_stops_server(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    (directory / "delete_this_to_stop_server").unlink()
    assert wait_exit(server.process) == 0


def test_data_survives_restart(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    first = Resolver([server.address]).resolve("TEST/hello").values
    server.stop()
    server = start_server(directory, port)
    try:
        assert Resolver([server.address]).resolve("TEST/hello").values == first
    finally:
        server.stop()


def test_config_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    config = directory / "config.dct"
    lines = config.read_text().splitlines()
    lines.insert(3, '  "broken" = "unterminated')
    config.write_text("\n".join(lines) + "\n")
    proc = run_cli("hdlserver.cli.server", directory, check=False, timeout=30)
    assert proc.returncode != 0
    assert re.search(r"config\.dct:\d+: \S", proc.stderr), proc.stderr


def test_missing_directory_without_init_is_explained(tmp_path: Path) -> None:
    proc = run_cli("hdlserver.cli.server", tmp_path / "nothing", check=False)
    assert proc.returncode == 1
    assert "hdl-setup-server" in proc.stderr and "--init" in proc.stderr


def test_wrong_server_key_refuses_to_start(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    other = tmp_path / "other"
    setup_server_dir(other)
    (directory / "privkey.bin").write_bytes((other / "privkey.bin").read_bytes())
    proc = run_cli("hdlserver.cli.server", directory, check=False)
    assert proc.returncode == 1
    assert "does not match" in proc.stderr


def test_encrypted_server_key_with_passphrase(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    secret_file = tmp_path / "pass.txt"
    secret_file.write_text("s3cret passphrase\n")
    port = setup_server_dir(directory, extra=("--server-passphrase-file", str(secret_file)))
    proc = run_cli("hdlserver.cli.server", directory, check=False, input_text="wrong\n")
    assert proc.returncode == 1 and "passphrase" in proc.stderr
    server = start_server(directory, port, extra=("--passphrase-file", str(secret_file)))
    try:
        assert Resolver([server.address]).resolve("TEST/hello").values
    finally:
        server.stop()


def test_init_creates_a_working_demo_server(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    port, http_port = free_port(), free_port()
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "hdlserver.cli.server", "--init", "--port", str(port),
                             "--http-port", str(http_port), "--ready-file", str(ready), str(directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        result = Resolver([("127.0.0.1", port)]).resolve("DEMO/hello")
        assert any(v.type == b"URL" for v in result.values)
        reply = request(("127.0.0.1", http_port), "GET", "/api/handles/DEMO/hello")
        assert reply.status == 200 and reply.json()["handle"] == "DEMO/hello"
        secret = (directory / "admin_secret.txt").read_text().strip()
        assert len(secret) >= 16
        assert (directory / "admin_secret.txt").stat().st_mode & 0o077 == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0

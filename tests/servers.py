"""Starting real hdlserver processes for integration and interop tests (loopback, ephemeral ports)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A port that is free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port found")


def run_cli(module: str, *args: str | Path, check: bool = True, timeout: float = 120,
            input_text: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, input=input_text, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def setup_server_dir(directory: Path, *, prefix: str = "TEST", secret: str = "secret", port: int | None = None,
                     extra: tuple[str, ...] = ()) -> int:
    """Create a server directory with ``hdl-setup-server``; returns its port."""
    port = port or free_port()
    run_cli("hdlserver.cli.setup_server", directory, "--prefix", prefix, "--port", str(port),
            "--bind-address", "127.0.0.1", "--public-address", "127.0.0.1", "--admin-secret", secret,
            "--sample-handle", *extra)
    return port


@dataclass
class ServerProcess:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode

    def error_log(self) -> str:
        path = self.directory / "logs" / "error.log"
        return path.read_text(encoding="utf-8") if path.exists() else ""


def start_server(directory: Path, port: int, *, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> ServerProcess:
    ready = directory / "ready.txt"
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    proc = subprocess.Popen([sys.executable, "-m", "hdlserver.cli.server", str(directory),
                             "--ready-file", str(ready), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text():
            return ServerProcess(directory, port, proc)
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"hdl-server exited with {proc.returncode}:\n{out.decode()}\n{err.decode()}")
        time.sleep(0.05)
    proc.kill()
    out, err = proc.communicate()
    raise AssertionError(f"hdl-server did not start in {START_TIMEOUT}s:\n{out.decode()}\n{err.decode()}")

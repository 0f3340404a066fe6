"""Process helpers shared by the benchmark scripts: loopback ports, CPU pinning, /proc memory figures."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (the servers share one port for UDP and TCP)."""
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
    raise RuntimeError("no free loopback port found in 50 tries")


def pinned(cpu: int | None, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (the Java wrapper script starts a JVM child; a server may use workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo and len(tree) < 1000:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def status_kb(pid: int, key: str) -> int:
    """Sum of a /proc/<pid>/status field (VmRSS, VmHWM) over the process tree, in kB."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


def status_mb(pid: int, key: str) -> float:
    return round(status_kb(pid, key) / 1024, 1)

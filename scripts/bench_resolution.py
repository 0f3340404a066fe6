#!/usr/bin/env python3
"""Resolution benchmark: hdlserver against the Java Handle.Net 9.2 server, in the same run.

Both servers are set up in a temporary directory on free loopback ports with the same N handles
(BENCH/1..N, a URL and an HS_ADMIN value each), started pinned to one CPU, and driven by the C load
generator (scripts/loadgen.c, compiled here with ``cc -O2``) pinned to another CPU. For every
server x transport x missing-percent scenario it prints requests/s, latency percentiles, errors and
server memory, then the hdlserver/java ratio per scenario. With ``--writes-per-second R`` an admin
client (scripts/admin_writer.py, on the load CPU) creates and deletes handles at R operations per second
during each scenario, to show what admin traffic does to resolution. See scripts/README-bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_procs import free_port, pinned, process_tree, status_kb

REPO = Path(__file__).resolve().parents[1]
LOADGEN_SOURCE = REPO / "scripts" / "loadgen.c"
ADMIN_WRITER = REPO / "scripts" / "admin_writer.py"
DEFAULT_JAVA_DIR = REPO.parent / "shared" / "handle-java"
PREFIX = "BENCH"
ADMIN_SECRET = "x"

SETUP_TIMEOUT = 180.0
START_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0
COMPILE_TIMEOUT = 120.0
PROBE_INTERVAL = 0.02
IDLE_SETTLE = 1.0
LOADGEN_SLACK = 30.0  # beyond warmup + duration: TCP probe (<= 3 s), drain (1 s), process start

# Handle protocol constants (spec/wire.md sections 3, 4, 9.1, 14).
ENVELOPE = struct.Struct(">BBBBIIII")
HEADER = struct.Struct(">IIIHBBII")
OP_RESOLUTION = 1
RC_SUCCESS = 1
RC_HANDLE_NOT_FOUND = 100
REQUEST_FLAGS = 0x19000000  # REC | CA | PO, as Java clients send
EXPIRATION_SECONDS = 43200
LOST_AFTER = 1.0


# ---------------------------------------------------------------- wire helpers


def resolution_request(handle: bytes, request_id: int, expiration: int) -> bytes:
    """A version-2.11 RESOLUTION request without filters, in the Java client's layout."""
    body = struct.pack(">I", len(handle)) + handle + b"\0\0\0\0\0\0\0\0"
    message = (
        HEADER.pack(OP_RESOLUTION, 0, REQUEST_FLAGS, 0xFFFF, 0, 0, expiration, len(body)) + body + b"\0\0\0\0"
    )
    return ENVELOPE.pack(2, 11, 2, 11, 0, request_id, 0, len(message)) + message


def answer_fields(datagram: bytes) -> tuple[int, int, int] | None:
    """(request id, opcode, response code) of an answer, or None when it is too short."""
    if len(datagram) < ENVELOPE.size + 8:
        return None
    request_id = struct.unpack_from(">I", datagram, 8)[0]
    opcode, rc = struct.unpack_from(">II", datagram, ENVELOPE.size)
    return request_id, opcode, rc


def handle_names(count: int) -> list[str]:
    return [f"{PREFIX}/{n}" for n in range(1, count + 1)]


def handle_values(n: int) -> list[dict[str, Any]]:
    return [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": f"http://example.org/{n}"}},
        {
            "index": 100,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {"handle": f"0.NA/{PREFIX}", "index": 300, "permissions": "011111110011"},
            },
        },
    ]


# ---------------------------------------------------------------- processes


def run_checked(
    argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_busy_seconds(cpu: int | None) -> float | None:
    """Non-idle time of one CPU (all processes and the kernel), from /proc/stat."""
    if cpu is None:
        return None
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields[0] == f"cpu{cpu}":
                ticks = [int(v) for v in fields[1:8]]  # user nice system idle iowait irq softirq
                return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return None


@dataclass
class Server:
    """A server process this script started (and is the only one to stop)."""

    name: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def start(self, argv: list[str], env: dict[str, str], probe_handle: str) -> None:
        self.log_path = self.directory.parent / f"{self.name}.out"
        with self.log_path.open("wb") as log:
            started = time.monotonic()
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.directory.parent,
                start_new_session=True,
            )
        try:
            ttfa = first_answer_after(self, probe_handle, started)
        except BaseException:
            self.stop()
            raise
        time.sleep(IDLE_SETTLE)
        self.info.update(
            pid=self.process.pid,
            ttfa_s=round(ttfa, 3),
            idle_rss_mb=round(status_kb(self.process.pid, "VmRSS") / 1024, 1),
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def first_answer_after(server: Server, handle: str, started: float) -> float:
    """Seconds from process start until the first RC 1 answer to a UDP resolution."""
    deadline = started + START_TIMEOUT
    expiration = int(time.time()) + EXPIRATION_SECONDS
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PROBE_INTERVAL)
        request_id = 0x10000
        while time.monotonic() < deadline:
            if server.process is not None and server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            request_id += 1
            try:
                sock.sendto(
                    resolution_request(handle.encode(), request_id, expiration), ("127.0.0.1", server.port)
                )
                fields = answer_fields(sock.recv(65536))
            except TimeoutError:  # no answer within PROBE_INTERVAL
                continue
            except OSError:  # not listening yet (ICMP port unreachable)
                time.sleep(PROBE_INTERVAL)
                continue
            if fields and fields[0] == request_id:
                if fields[2] != RC_SUCCESS:
                    raise RuntimeError(f"{server.name} answered {handle} with RC {fields[2]}, not 1")
                return time.monotonic() - started
    raise RuntimeError(f"{server.name} gave no answer within {START_TIMEOUT:.0f}s:\n{server.log_tail()}")


# ---------------------------------------------------------------- server setup


def setup_hdlserver(work: Path, count: int, python: str, no_uvloop: bool, cpu: int | None,
                    cache_entries: int | None = None) -> Server:
    directory = work / "hdlserver"
    if os.sep in python:  # the server runs in another working directory
        python = os.path.abspath(python)
    server = Server("hdlserver-asyncio" if no_uvloop else "hdlserver", directory, free_port())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    run_checked(
        [
            python,
            "-m",
            "hdlserver.cli.setup_server",
            str(directory),
            "--prefix",
            PREFIX,
            "--port",
            str(server.port),
            "--bind-address",
            "127.0.0.1",
            "--public-address",
            "127.0.0.1",
            "--admin-secret",
            ADMIN_SECRET,
            "--no-access-log",
        ],
        timeout=SETUP_TIMEOUT,
        env=env,
    )
    if cache_entries is not None:
        config = directory / "config.dct"
        text = config.read_text()
        config.write_text(text.replace('"server_config" = {',
                                       f'"server_config" = {{\n    "resolution_cache_entries" = "{cache_entries}"', 1))
    records = [{"handle": name, "values": handle_values(n)} for n, name in enumerate(handle_names(count), 1)]
    handles_json = work / "hdlserver-handles.json"
    handles_json.write_text(json.dumps(records))
    out = run_checked(
        [python, "-m", "hdlserver.cli.loadjson", str(directory), str(handles_json)],
        timeout=SETUP_TIMEOUT,
        env=env,
    )
    server.info["load_output"] = out.strip()
    argv = [
        python,
        "-m",
        "hdlserver.cli.server",
        str(directory),
        "--ready-file",
        str(work / "hdlserver.ready"),
    ]
    if no_uvloop:
        argv.append("--no-uvloop")
    server.start(pinned(cpu, argv), env, handle_names(1)[0])
    return server


def java_unavailable(java_dir: Path) -> str | None:
    if shutil.which("java") is None:
        return "no 'java' on PATH (run ../shared/handle-java/install.sh)"
    if not (java_dir / "bin" / "hdl-local-server-setup").exists():
        return f"no {java_dir}/bin/hdl-local-server-setup"
    return None


def setup_java(work: Path, count: int, java_dir: Path, cpu: int | None) -> Server:
    directory = work / "java"
    server = Server("java", directory, free_port())
    run_checked(
        [
            str(java_dir / "bin" / "hdl-local-server-setup"),
            str(directory),
            str(server.port),
            PREFIX,
            ADMIN_SECRET,
        ],
        timeout=SETUP_TIMEOUT,
    )
    config = (directory / "config.dct").read_text()
    if '"log_accesses" = "yes"' in config or '"log_accesses" = "no"' not in config:
        raise RuntimeError(f"{directory}/config.dct does not turn access logging off")
    records = {
        name: {"handle": name, "values": handle_values(n)} for n, name in enumerate(handle_names(count), 1)
    }
    handles_json = work / "java-handles.json"
    handles_json.write_text(json.dumps({"handleRecords": records}))
    out = run_checked(
        [
            str(java_dir / "bin" / "hdl-java"),
            "net.handle.apps.tools.LoadHandlesIntoStorageFromJson",
            "-f",
            str(handles_json),
            "-h",
            str(directory),
        ],
        timeout=SETUP_TIMEOUT,
    )
    created = sum(1 for line in out.splitlines() if line.startswith("Created: "))
    if created != count:
        raise RuntimeError(
            f"LoadHandlesIntoStorageFromJson created {created} of {count} handles:\n{out[-2000:]}"
        )
    server.info["java_heap"] = os.environ.get("HDL_SERVER_MEM", "-Xmx200M")
    env = {**os.environ, "JAVA_OPTS": f"-Dnet.handle.configDir={directory / 'client'}"}
    server.start(pinned(cpu, [str(java_dir / "bin" / "hdl-server"), str(directory)]), env, handle_names(1)[0])
    return server


# ---------------------------------------------------------------- load generator


def compiler() -> str | None:
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def build_loadgen(cache_dir: Path) -> list[str] | None:
    """The compiled C generator (cached by source hash), or None when no C compiler exists."""
    cc = compiler()
    if cc is None:
        return None
    digest = hashlib.sha256(LOADGEN_SOURCE.read_bytes()).hexdigest()[:16]
    binary = cache_dir / f"loadgen-{digest}"
    if not binary.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cache_dir / f"loadgen-{digest}.{os.getpid()}.tmp"
        run_checked([cc, "-O2", "-o", str(partial), str(LOADGEN_SOURCE)], timeout=COMPILE_TIMEOUT)
        partial.replace(binary)
    return [str(binary)]


def run_loadgen(
    generator: list[str],
    cpu: int | None,
    port: int,
    mode: str,
    args: argparse.Namespace,
    missing: float,
    names_file: Path,
    server: Server,
    server_cpu: int | None,
) -> dict[str, Any]:
    argv = pinned(
        cpu,
        [
            *generator,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--mode",
            mode,
            "--window",
            str(args.window),
            "--connections",
            str(args.connections),
            "--duration",
            str(args.seconds),
            "--warmup",
            str(args.warmup),
            "--handles",
            str(names_file),
            "--missing-percent",
            str(missing),
        ],
    )
    assert server.process is not None
    server_cpu_before = cpu_seconds(server.process.pid)
    busy_before = cpu_busy_seconds(server_cpu), cpu_busy_seconds(cpu)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    writer = start_writer(args, cpu, port)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=args.warmup + args.seconds + LOADGEN_SLACK)
        writes = finish_writer(writer)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)
        raise RuntimeError(f"load generator did not finish: {' '.join(argv)}") from None
    finally:  # interrupted or failed: do not leave the generator or the writer running
        for child in (proc, writer):
            if child is not None and child.poll() is None:
                child.kill()
                child.wait(STOP_TIMEOUT)
    wall = time.monotonic() - started
    server_seconds = cpu_seconds(server.process.pid) - server_cpu_before
    busy_after = cpu_busy_seconds(server_cpu), cpu_busy_seconds(cpu)
    # the generator and the writer are the only children reaped since children_before (taskset execs them)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    generator_seconds = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"load generator failed ({proc.returncode}): {' '.join(argv)}\n{out.decode()}{err.decode()}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    result["writes"] = writes
    result["server_cpu_pct"] = percent(server_seconds, wall)
    result["generator_cpu_pct"] = percent(generator_seconds, wall)
    # What else ran on each pinned CPU: other processes, and kernel work not charged to ours.
    result["server_cpu_other_pct"] = other_percent(busy_before[0], busy_after[0], server_seconds, wall)
    result["load_cpu_other_pct"] = other_percent(busy_before[1], busy_after[1], generator_seconds, wall)
    return result


def start_writer(args: argparse.Namespace, cpu: int | None, port: int) -> subprocess.Popen[bytes] | None:
    """The paced admin writer for one scenario (``--writes-per-second``), running as long as the generator."""
    if not args.writes_per_second:
        return None
    argv = [args.python or default_python(), str(ADMIN_WRITER), "--port", str(port),
            "--rate", str(args.writes_per_second), "--duration", str(args.warmup + args.seconds)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(pinned(cpu, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def finish_writer(writer: subprocess.Popen[bytes] | None) -> dict[str, Any] | None:
    if writer is None:
        return None
    out, err = writer.communicate(timeout=LOADGEN_SLACK)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if writer.returncode != 0 or not lines:
        raise RuntimeError(f"admin writer failed ({writer.returncode}):\n{out.decode()}{err.decode()}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def percent(seconds: float, wall: float) -> float:
    return round(100 * seconds / wall, 1)


def other_percent(before: float | None, after: float | None, ours: float, wall: float) -> float | None:
    if before is None or after is None:
        return None
    return max(0.0, percent(after - before - ours, wall))


# ---------------------------------------------------------------- Python fallback generator


class _PyStats:
    """Counters and a latency histogram shared by the fallback generator's UDP and TCP modes."""

    def __init__(self, window: int, measure_start: float, send_end: float) -> None:
        self.counts = dict.fromkeys(
            (
                "sent",
                "answered",
                "ok",
                "not_found",
                "errors",
                "lost",
                "late",
                "closed",
                "connect_errors",
                "send_errors",
                "reconnects",
            ),
            0,
        )
        self.latencies_us: dict[int, int] = {}
        self.max_us = 0
        self.sum_us = 0
        self.measure_start, self.send_end = measure_start, send_end
        self.pending: dict[int, tuple[float, bool, bool]] = {}  # id -> (sent, missing, counted)
        self.next_id = 0
        self.window = window

    def new_request(self, now: float, is_missing: bool) -> int:
        self.next_id = self.next_id % 0x7FFFFFFE + 1
        counted = self.measure_start <= now < self.send_end
        self.pending[self.next_id] = (now, is_missing, counted)
        if counted:
            self.counts["sent"] += 1
        return self.next_id

    def answer(self, data: bytes, now: float) -> bool:
        fields = answer_fields(data)
        if fields is None:
            self.counts["errors"] += 1
            return False
        entry = self.pending.pop(fields[0], None)
        if entry is None:
            self.counts["late"] += 1
            return False
        sent, is_missing, counted = entry
        if counted:
            self.counts["answered"] += 1
            expected = RC_HANDLE_NOT_FOUND if is_missing else RC_SUCCESS
            if fields[1] != OP_RESOLUTION or fields[2] != expected:
                self.counts["errors"] += 1
            else:
                self.counts["not_found" if is_missing else "ok"] += 1
            micros = int((now - sent) * 1e6)
            bucket = (
                micros
                if micros < 1024
                else (micros >> (micros.bit_length() - 7)) << (micros.bit_length() - 7)
            )
            self.latencies_us[bucket] = self.latencies_us.get(bucket, 0) + 1
            self.max_us = max(self.max_us, micros)
            self.sum_us += micros
        return True

    def expire(self, now: float) -> None:
        for request_id, (sent, _missing, counted) in list(self.pending.items()):
            if now - sent > LOST_AFTER:
                del self.pending[request_id]
                if counted:
                    self.counts["lost"] += 1

    def percentile(self, p: float) -> int:
        total = sum(self.latencies_us.values())
        seen = 0
        for bucket in sorted(self.latencies_us):
            seen += self.latencies_us[bucket]
            if seen >= max(1, int(p * total)):
                return min(bucket, self.max_us)
        return self.max_us


async def _py_loadgen(opts: argparse.Namespace) -> dict[str, Any]:
    names = [line.strip() for line in Path(opts.handles).read_text().splitlines() if line.strip()]
    prefix = names[0].split("/", 1)[0]
    missing_names = [f"{prefix}/bench-missing-{i}" for i in range(1024)]
    expiration = int(time.time()) + EXPIRATION_SECONDS
    rng = random.Random(opts.seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    stats = _PyStats(opts.window, start + opts.warmup, start + opts.warmup + opts.duration)
    wake = asyncio.Event()

    def next_request(now: float) -> tuple[int, bytes]:
        is_missing = rng.random() * 100 < opts.missing_percent
        name = rng.choice(missing_names if is_missing else names)
        request_id = stats.new_request(now, is_missing)
        return request_id, resolution_request(name.encode(), request_id, expiration)

    tcp_mode = None
    if opts.mode == "udp":

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                if len(data) >= 16 and struct.unpack_from(">I", data, 12)[0] == 0:
                    stats.answer(data, loop.time())
                    wake.set()

        transport, _ = await loop.create_datagram_endpoint(Receiver, remote_addr=(opts.host, opts.port))
        while loop.time() < stats.send_end + LOST_AFTER:
            now = loop.time()
            if now >= stats.send_end and not stats.pending:
                break
            while now < stats.send_end and len(stats.pending) < opts.window:
                transport.sendto(next_request(now)[1])
            stats.expire(now)
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), 0.01)
        transport.close()
    else:
        tcp_mode = "reconnect"  # the simple, always-correct mode: one request per connection

        async def worker() -> None:
            while loop.time() < stats.send_end:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(opts.host, opts.port), LOST_AFTER
                    )
                except (OSError, TimeoutError):
                    stats.counts["connect_errors"] += 1
                    await asyncio.sleep(0.01)
                    continue
                stats.counts["reconnects"] += 1
                request_id, request = next_request(loop.time())
                writer.write(request)
                try:
                    head = await asyncio.wait_for(reader.readexactly(20), LOST_AFTER)
                    rest = await asyncio.wait_for(
                        reader.readexactly(struct.unpack_from(">I", head, 16)[0]), LOST_AFTER
                    )
                    stats.answer(head + rest, loop.time())
                except (OSError, TimeoutError, asyncio.IncompleteReadError):
                    if stats.pending.pop(request_id, (0.0, False, False))[2]:
                        stats.counts["lost"] += 1
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        await asyncio.gather(*(worker() for _ in range(opts.window)))
    for _request_id, (_sent, _missing, counted) in stats.pending.items():
        if counted:
            stats.counts["lost"] += 1
    answered = stats.counts["answered"]
    return {
        "generator": "python",
        "mode": opts.mode,
        "tcp_mode": tcp_mode,
        "host": opts.host,
        "port": opts.port,
        "window": opts.window,
        "connections": opts.window if tcp_mode else 1,
        "duration_s": opts.duration,
        "warmup_s": opts.warmup,
        "missing_percent": opts.missing_percent,
        "handles": len(names),
        **stats.counts,
        "rps": round(answered / opts.duration, 1),
        "p50_us": stats.percentile(0.5),
        "p99_us": stats.percentile(0.99),
        "max_us": stats.max_us,
        "mean_us": round(stats.sum_us / answered, 1) if answered else 0.0,
        "error_codes": {},
    }


def py_loadgen_main(argv: list[str]) -> int:
    """Entry of the fallback generator: same options and output as loadgen.c (pipelined TCP excepted)."""
    p = argparse.ArgumentParser(prog="bench_resolution.py --python-loadgen")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=("udp", "tcp"), default="udp")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--warmup", type=float, default=1)
    p.add_argument("--handles", required=True)
    p.add_argument("--missing-percent", type=float, default=0)
    p.add_argument("--seed", type=int, default=1)
    opts = p.parse_args(argv)
    print(json.dumps(asyncio.run(_py_loadgen(opts))), flush=True)
    return 0


# ---------------------------------------------------------------- report

COLUMNS = (
    "server",
    "transport",
    "missing%",
    "rps",
    "p50 ms",
    "p99 ms",
    "errors",
    "lost",
    "RSS MB",
    "srv cpu%",
    "srv other%",
    "gen cpu%",
    "gen other%",
    "writes/s",
    "write p99 ms",
)


def optional_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for r in results:
        transport = r["mode"] if not r.get("tcp_mode") else f"{r['mode']}({r['tcp_mode']})"
        rows.append(
            (
                r["server"],
                transport,
                f"{r['missing_percent']:g}",
                f"{r['rps']:.0f}",
                f"{r['p50_us'] / 1000:.2f}",
                f"{r['p99_us'] / 1000:.2f}",
                str(r["errors"]),
                str(r["lost"]),
                f"{r['peak_rss_mb']:.1f}",
                f"{r['server_cpu_pct']:.0f}",
                optional_percent(r.get("server_cpu_other_pct")),
                f"{r['generator_cpu_pct']:.0f}",
                optional_percent(r.get("load_cpu_other_pct")),
                "-" if not r.get("writes") else f"{r['writes']['per_second']:.0f}",
                "-" if not r.get("writes") else f"{r['writes']['p99_ms']:.1f}",
            )
        )
    return rows


def format_table(results: list[dict[str, Any]]) -> str:
    rows = [COLUMNS, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        " | ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """hdlserver (either event loop) over java, per transport and missing percentage."""
    by_key = {(r["server"], r["mode"], r["missing_percent"]): r for r in results}
    out = []
    for (name, mode, missing), ours in by_key.items():
        java = by_key.get(("java", mode, missing))
        if not name.startswith("hdlserver") or java is None:
            continue
        out.append(
            {
                "server": name,
                "mode": mode,
                "missing_percent": missing,
                "rps": ratio(ours["rps"], java["rps"]),
                "p50": ratio(ours["p50_us"], java["p50_us"]),
                "p99": ratio(ours["p99_us"], java["p99_us"]),
                "rss": ratio(ours["peak_rss_mb"], java["peak_rss_mb"]),
            }
        )
    return out


def format_ratio(r: dict[str, Any]) -> str:
    def x(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}x"

    return (
        f"ratio {r['server']}/java {r['mode']} {r['missing_percent']:g}% missing: rps {x(r['rps'])}, "
        f"p50 {x(r['p50'])}, p99 {x(r['p99'])}, RSS {x(r['rss'])}"
    )


# ---------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: scripts/bench_resolution.py --seconds 10 --json-out bench.json",
    )
    p.add_argument("--handles", type=int, default=1000, help="handles loaded into each server (default 1000)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per scenario (default 10)")
    p.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds before each scenario (default 2)"
    )
    p.add_argument("--window", type=int, default=32, help="requests in flight (default 32)")
    p.add_argument(
        "--connections",
        type=int,
        default=4,
        help="TCP connections sharing the window when the server keeps connections open (default 4)",
    )
    p.add_argument(
        "--missing-percent",
        default="0,10",
        help="comma-separated percentages of names that do not exist, one scenario each (default 0,10)",
    )
    p.add_argument("--transports", default="udp,tcp", help="comma-separated: udp, tcp (default udp,tcp)")
    p.add_argument(
        "--servers", default="hdlserver,java", help="comma-separated: hdlserver, java (default both)"
    )
    p.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to (default 0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU the load generator is pinned to (default 1)")
    p.add_argument("--no-uvloop", action="store_true", help="run hdlserver on the stdlib asyncio loop")
    p.add_argument("--json-out", type=Path, help="also write every result, as JSON, to this file")
    p.add_argument(
        "--python",
        default=None,
        help="interpreter for hdlserver (default: the repo's .venv if present, else this one)",
    )
    p.add_argument(
        "--java-dir",
        type=Path,
        default=DEFAULT_JAVA_DIR,
        help=f"Handle.Net build (default {DEFAULT_JAVA_DIR})",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hdlserver-bench",
        help="where the compiled load generator is cached",
    )
    p.add_argument("--python-generator", action="store_true", help="use the (much slower) Python generator")
    p.add_argument("--resolution-cache-entries", type=int, default=None,
                   help="hdlserver's resolution_cache_entries (default: the server's default, 16384)")
    p.add_argument("--writes-per-second", type=float, default=0.0,
                   help="also run admin CREATE/DELETE at this rate during every scenario (default 0: none)")
    p.add_argument("--keep", action="store_true", help="keep the temporary server directories")
    args = p.parse_args(argv)
    try:
        args.missing = [float(v) for v in args.missing_percent.split(",") if v.strip()]
    except ValueError:
        p.error("--missing-percent takes numbers, e.g. 0,10")
    args.transport_list = [t.strip() for t in args.transports.split(",") if t.strip()]
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not args.missing or any(not 0 <= m <= 100 for m in args.missing):
        p.error("--missing-percent values must be in 0..100")
    if not args.transport_list or set(args.transport_list) - {"udp", "tcp"}:
        p.error("--transports takes udp and/or tcp")
    if not args.server_list or set(args.server_list) - {"hdlserver", "java"}:
        p.error("--servers takes hdlserver and/or java")
    if args.handles < 1 or not 0 < args.seconds <= 3600 or not 0 <= args.warmup <= 600:
        p.error("need --handles >= 1, 0 < --seconds <= 3600, 0 <= --warmup <= 600")
    if not 1 <= args.window <= 4096 or args.connections < 1:
        p.error("need 1 <= --window <= 4096 and --connections >= 1")
    return args


def cpu_plan(args: argparse.Namespace, notes: list[str]) -> tuple[int | None, int | None]:
    if shutil.which("taskset") is None:
        notes.append("taskset not found: servers and load generator are NOT pinned")
        return None, None
    available = os.sched_getaffinity(0)
    for cpu in (args.server_cpu, args.load_cpu):
        if cpu not in available:
            raise SystemExit(f"CPU {cpu} is not available (allowed: {sorted(available)})")
    if args.server_cpu == args.load_cpu:
        notes.append(f"server and load generator share CPU {args.server_cpu}: numbers are not comparable")
    return args.server_cpu, args.load_cpu


def default_python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so the cleanup in ``finally`` runs."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def benchmark(args: argparse.Namespace) -> int:
    notes: list[str] = []
    load_before = os.getloadavg()[0]
    server_cpu, load_cpu = cpu_plan(args, notes)
    generator = None if args.python_generator else build_loadgen(args.cache_dir)
    if generator is None:
        why = "requested" if args.python_generator else "no C compiler found"
        notes.append(
            f"load generator: Python asyncio fallback ({why}); it saturates long before the servers, "
            "so rps measures the generator, not the servers"
        )
        generator = [sys.executable, str(Path(__file__).resolve()), "--python-loadgen"]
    server_names = list(args.server_list)
    if "java" in server_names:
        reason = java_unavailable(args.java_dir)
        if reason:
            notes.append(f"Java server unavailable ({reason}): benchmarking hdlserver alone")
            server_names.remove("java")
    if not server_names:
        print("nothing to benchmark", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="hdl-bench-"))
    servers: list[Server] = []
    results: list[dict[str, Any]] = []
    try:
        names_file = work / "names.txt"
        names_file.write_text("\n".join(handle_names(args.handles)) + "\n")
        for name in server_names:
            print(f"setting up {name} with {args.handles} handles ...", flush=True)
            if name == "java":
                server = setup_java(work, args.handles, args.java_dir, server_cpu)
            else:
                server = setup_hdlserver(
                    work, args.handles, args.python or default_python(), args.no_uvloop, server_cpu,
                    args.resolution_cache_entries,
                )
            servers.append(server)
            print(
                f"  {server.name}: port {server.port}, "
                f"first answer {server.info['ttfa_s']:.2f} s after start, "
                f"idle RSS {server.info['idle_rss_mb']:.1f} MB",
                flush=True,
            )
        for transport in args.transport_list:
            for missing in args.missing:
                # servers alternate per scenario so slow drifts of a noisy machine hit both alike
                for server in servers:
                    if not server.alive():
                        raise RuntimeError(f"{server.name} died:\n{server.log_tail()}")
                    result = run_loadgen(
                        generator,
                        load_cpu,
                        server.port,
                        transport,
                        args,
                        missing,
                        names_file,
                        server,
                        server_cpu,
                    )
                    assert server.process is not None
                    result["server"] = server.name
                    result["peak_rss_mb"] = round(status_kb(server.process.pid, "VmHWM") / 1024, 1)
                    result["rss_after_mb"] = round(status_kb(server.process.pid, "VmRSS") / 1024, 1)
                    results.append(result)
                    print(
                        f"  {server.name:<17} {transport} {missing:g}% missing: {result['rps']:.0f} rps, "
                        f"errors {result['errors']}, lost {result['lost']}",
                        flush=True,
                    )
        for server in servers:
            assert server.process is not None
            server.info["peak_rss_mb"] = round(status_kb(server.process.pid, "VmHWM") / 1024, 1)
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(format_table(results))
    print()
    ratio_list = ratios(results)
    for r in ratio_list:
        print(format_ratio(r))
    for server in servers:
        print(
            f"{server.name}: first answer {server.info['ttfa_s']:.2f} s after start, idle RSS "
            f"{server.info['idle_rss_mb']:.1f} MB, peak RSS {server.info['peak_rss_mb']:.1f} MB"
        )
    load_after = os.getloadavg()[0]
    print(
        f"machine load average (1 min): {load_before:.2f} before, {load_after:.2f} after "
        f"({os.cpu_count()} CPUs; the other processes on the machine add noise)"
    )
    print(
        f"settings: {args.handles} handles, window {args.window}, {args.seconds:g} s per scenario after "
        f"{args.warmup:g} s warmup, server CPU {server_cpu}, load CPU {load_cpu}, "
        f"generator {results[0]['generator'] if results else '?'}"
    )
    for note in notes:
        print(f"note: {note}")
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "command": [sys.executable, *sys.argv],
                    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "machine": {
                        "platform": platform.platform(),
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "loadavg_before": load_before,
                        "loadavg_after": load_after,
                    },
                    "settings": {
                        "handles": args.handles,
                        "seconds": args.seconds,
                        "warmup": args.warmup,
                        "window": args.window,
                        "connections": args.connections,
                        "server_cpu": server_cpu,
                        "load_cpu": load_cpu,
                    },
                    "notes": notes,
                    "servers": {s.name: s.info for s in servers},
                    "results": results,
                    "ratios": ratio_list,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--python-loadgen"]:
        return py_loadgen_main(argv[1:])
    args = parse_args(argv)
    with terminate_on_sigterm():
        try:
            return benchmark(args)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())

"""Batch throughput: a generated N-operation GenericBatch file (CREATEs) run by hdl-genericbatch.

In one run it measures every combination of client tool and server that is available:

* tools: our ``hdl-genericbatch`` (one session per server) and the Java ``hdl-genericbatch`` of
  ../shared/handle-java;
* servers: hdlserver and the Java Handle.Net 9.2 server.

Each combination gets its own handles (``TEST/bench-<tool>-<i>``), the server is pinned to one CPU and the
client to another (taskset), and the table shows operations per second over the client's whole run
(process start to exit), per-operation latency p50/p99 (our tool reports it with -verbose; the Java tool
does not), and the server's RSS (peak over the run, and at the end).

    .venv/bin/python scripts/bench_batch.py                      # 10 000 CREATEs, every combination
    .venv/bin/python scripts/bench_batch.py --ops 1000 --tools ours --servers hdlserver
    .venv/bin/python scripts/bench_batch.py --json-out bench-batch.json

Loopback only; every wait is bounded; only processes this script started are stopped (by pid).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_procs import free_port, pinned, status_mb

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JAVA_DIR = REPO.parent / "shared" / "handle-java"
SECRET = "secret"
PREFIX = "TEST"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
SETUP_TIMEOUT = 180.0
SECONDS_PER_OP_LIMIT = 0.5  # a client run is killed after ops * this (plus a minute)
LATENCY = re.compile(r"operation latency: p50 ([0-9.]+) ms, p99 ([0-9.]+) ms")
SUCCESSES = re.compile(r"Successes/Total Entries: (\d+)/(\d+)")


def run(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Server:
    name: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    siteinfo: Path
    client_config: Path  # a Java client configuration directory that routes everything to this server
    admin_key: Path
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)


def wait_for(predicate: Any, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start in {START_TIMEOUT} s")


def java_client_config(java_dir: Path, directory: Path, siteinfo: Path) -> Path:
    run([str(java_dir / "bin" / "hdl-local-client-config"), str(directory), str(siteinfo), f"0.NA/{PREFIX}"],
        SETUP_TIMEOUT)
    return directory


def start_hdlserver(work: Path, python: str, cpu: int | None, java_dir: Path | None) -> Server:
    directory = work / "hdlserver"
    port = free_port()
    run([python, "-m", "hdlserver.cli.setup_server", str(directory), "--prefix", PREFIX, "--port", str(port),
         "--bind-address", "127.0.0.1", "--public-address", "127.0.0.1", "--admin-secret", SECRET,
         "--no-access-log"], SETUP_TIMEOUT)
    ready = directory / "ready.txt"
    log = work / "hdlserver.out"
    with log.open("wb") as out:
        process = subprocess.Popen(pinned(cpu, [python, "-m", "hdlserver.cli.server", str(directory),
                                                "--ready-file", str(ready)]),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: ready.exists() and ready.read_text(), process, "hdlserver", log)
    siteinfo = directory / "siteinfo.json"
    config = java_client_config(java_dir, work / "client-hdlserver", siteinfo) if java_dir else work
    return Server("hdlserver", directory, port, process, siteinfo, config, directory / "admpriv.bin", log)


def start_java_server(work: Path, java_dir: Path, cpu: int | None) -> Server:
    directory = work / "java"
    port = free_port()
    run([str(java_dir / "bin" / "hdl-local-server-setup"), str(directory), str(port), PREFIX, SECRET], SETUP_TIMEOUT)
    log = work / "java-server.out"
    env = {**os.environ, "JAVA_OPTS": f"-Dnet.handle.configDir={directory / 'client'}"}
    with log.open("wb") as out:
        process = subprocess.Popen(pinned(cpu, [str(java_dir / "bin" / "hdl-server"), str(directory)]),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)

    def listening() -> bool:
        text = log.read_text(errors="replace")
        if "Starting TCP request handlers" not in text:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
        return False

    wait_for(listening, process, "the Java server", log)
    siteinfo = directory / "siteinfo.json"
    config = java_client_config(java_dir, work / "client-java", siteinfo)
    return Server("java", directory, port, process, siteinfo, config, directory / "admpriv.bin", log)


def write_batch(path: Path, tag: str, ops: int) -> None:
    admin = f"100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/{PREFIX}"
    with path.open("w", encoding="utf-8") as f:
        f.write(f"AUTHENTICATE SECKEY:300:0.NA/{PREFIX}\n{SECRET}\n\n")
        for i in range(ops):
            f.write(f"CREATE {PREFIX}/bench-{tag}-{i}\n{admin}\n1 URL 86400 1110 UTF8 http://example.org/{tag}/{i}\n\n")


@dataclass
class Result:
    tool: str
    server: str
    ops: int
    successes: int = 0
    seconds: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float = 0.0
    rss_after_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return self.successes / self.seconds if self.seconds else 0.0


def run_client(tool: str, server: Server, work: Path, args: argparse.Namespace, cpu: int | None) -> Result:
    tag = f"{tool}-{server.name}"
    batch, log = work / f"batch-{tag}.txt", work / f"batch-{tag}.log"
    write_batch(batch, tag, args.ops)
    if tool == "ours":
        argv = [args.python, "-m", "hdlserver.cli.genericbatch", str(batch), str(log), "-verbose",
                "--siteinfo", str(server.siteinfo)]
        env = dict(os.environ)
    else:
        argv = [str(args.java_dir / "bin" / "hdl-genericbatch"), str(batch), str(log)]
        env = {**os.environ, "JAVA_OPTS": f"-Dnet.handle.configDir={server.client_config}"}
    result = Result(tool, server.name, args.ops)
    rss_before = status_mb(server.process.pid, "VmRSS")
    start = time.monotonic()
    proc = subprocess.run(pinned(cpu, argv), capture_output=True, text=True, env=env,
                          timeout=60 + args.ops * SECONDS_PER_OP_LIMIT)
    result.seconds = time.monotonic() - start
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    counted = SUCCESSES.search(text)
    result.successes = int(counted.group(1)) if counted else 0
    latency = LATENCY.search(proc.stderr)
    if latency:
        result.p50_ms, result.p99_ms = float(latency.group(1)), float(latency.group(2))
    result.peak_rss_mb = status_mb(server.process.pid, "VmHWM")
    result.rss_after_mb = status_mb(server.process.pid, "VmRSS")
    if result.successes != args.ops:
        first_problem = next((line for line in text.splitlines() if line.startswith(("==>FAILURE", "==>INVALID"))),
                             proc.stderr.strip()[-300:])
        result.notes.append(f"only {result.successes}/{args.ops} succeeded: {first_problem}")
    result.notes.append(f"server RSS before the run {rss_before} MB")
    return result


def format_table(results: list[Result]) -> str:
    head = ("client tool", "server", "ops", "ok", "seconds", "ops/s", "p50 ms", "p99 ms", "peak RSS MB",
            "RSS after MB")
    rows = [head] + [(r.tool, r.server, str(r.ops), str(r.successes), f"{r.seconds:.1f}", f"{r.ops_per_s:,.0f}",
                      "-" if r.p50_ms is None else f"{r.p50_ms:.2f}", "-" if r.p99_ms is None else f"{r.p99_ms:.2f}",
                      f"{r.peak_rss_mb:.1f}", f"{r.rss_after_mb:.1f}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                   strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", type=int, default=10_000, help="CREATE operations per batch file (default 10000)")
    p.add_argument("--tools", default="ours,java", help="client tools: ours, java (default both)")
    p.add_argument("--servers", default="hdlserver,java", help="servers: hdlserver, java (default both)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"), help="interpreter for hdlserver")
    p.add_argument("--java-dir", type=Path, default=DEFAULT_JAVA_DIR)
    p.add_argument("--json-out", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the work directory (its path is printed)")
    return p.parse_args(argv)


@contextlib.contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work directory kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def java_missing(java_dir: Path) -> str | None:
    if not (java_dir / "bin" / "hdl").is_file():
        return f"{java_dir} not found"
    if shutil.which("java") is None:
        return "java not installed (run ../shared/handle-java/install.sh)"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.python).exists():
        args.python = sys.executable
    tools = [t for t in args.tools.split(",") if t]
    servers = [s for s in args.servers.split(",") if s]
    notes: list[str] = []
    missing = java_missing(args.java_dir)
    if missing:
        notes.append(f"Java unavailable ({missing}): only our tool against hdlserver")
        tools = [t for t in tools if t != "java"]
        servers = [s for s in servers if s != "java"]
    server_cpu, client_cpu = args.server_cpu, args.client_cpu
    if shutil.which("taskset") is None:
        notes.append("taskset not found: nothing is pinned")
        server_cpu = client_cpu = None
    results: list[Result] = []
    with work_directory(args.keep) as work:
        for server_name in servers:
            java_dir = None if missing else args.java_dir
            server = (start_hdlserver(work, args.python, server_cpu, java_dir) if server_name == "hdlserver"
                      else start_java_server(work, args.java_dir, server_cpu))
            try:
                print(f"{server_name}: started (pid {server.process.pid}, port {server.port}, "
                      f"RSS {status_mb(server.process.pid, 'VmRSS')} MB)", flush=True)
                for tool in tools:
                    result = run_client(tool, server, work, args, client_cpu)
                    results.append(result)
                    print(f"  {tool} hdl-genericbatch: {result.successes}/{result.ops} in {result.seconds:.1f} s "
                          f"({result.ops_per_s:,.0f} ops/s)" + "".join(f"; {n}" for n in result.notes), flush=True)
            finally:
                server.stop()
    print()
    print(format_table(results))
    for note in notes:
        print(f"note: {note}")
    print(f"server on CPU {server_cpu}, client on CPU {client_cpu}; ops/s = successful operations / wall time "
          "of the client process (JVM or interpreter start included)")
    if args.json_out:
        args.json_out.write_text(json.dumps({"results": [{**r.__dict__, "ops_per_s": r.ops_per_s} for r in results],
                                             "notes": notes, "ops": args.ops, "server_cpu": server_cpu,
                                             "client_cpu": client_cpu}, indent=2))
    return 0 if results and all(r.successes == r.ops for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

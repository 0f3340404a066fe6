"""Catch-up rate of a mirror N transactions behind its primary, every pairing of hdlserver and Java 9.2.

    .venv/bin/python scripts/bench_repl_catchup.py [N]        (default 10 000; loopback; about 1 minute)

For each primary (hdlserver: N handles created offline, one transaction each; Java: N CREATEs through one
hdl-genericbatch session), a fresh mirror of each kind is started and timed from its start until its
txnstat.dct shows the primary's newest transaction id. The time includes the mirror's start-up (a JVM
for Java). "hdlserver (multi-primary)" is a primary with the multi-primary bit pulling the same
transactions: it also keeps replication dates and applies the conflict rule. The primary runs on CPU 0,
the mirror on CPU 1 (every thread, ``taskset -a``). Needs ../shared/handle-java with the replication
build (install.sh --repl).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"  # reuses the test suite's server and mirror helpers
sys.path[:0] = [str(TESTS), str(TESTS / "interop")]

from bench_procs import process_tree, status_mb  # noqa: E402
from repl_support import make_mirror, set_multi_primary, txnstat_last_id  # noqa: E402
from servers import setup_server_dir, start_server  # noqa: E402
from test_repl_java import (  # noqa: E402
    HS_ADMIN_LINE,
    java_batch,
    make_java_mirror,
    set_java_server_config,
    setup_java,
    start_java_repl_server,
)

from hdlserver.store.lmdb_store import open_store  # noqa: E402
from hdlserver.wire.values import HandleValue  # noqa: E402

LIMIT_SECONDS = 900.0
PRIMARY_CPU, MIRROR_CPU = 0, 1
MIRROR_KINDS = ("hdlserver", "hdlserver (multi-primary)", "java")


def pin(pid: int, cpu: int) -> None:
    """Every thread of the process tree of ``pid`` onto ``cpu`` (a JVM has started its threads by now)."""
    for member in process_tree(pid):
        subprocess.run(["taskset", "-a", "-cp", str(cpu), str(member)], capture_output=True, check=False)


def hdlserver_primary(directory: Path, n: int) -> tuple[Callable[[], object], int]:
    port = setup_server_dir(directory)
    start_server(directory, port).stop()  # the first start homes the prefixes (2 transactions)
    with open_store(directory, case_sensitive=False) as store:
        store.create_handles((f"TEST/bench-{i}".encode(), [HandleValue(1, b"URL", f"http://example.org/{i}".encode())])
                             for i in range(n))
        newest = store.last_txn_id()
    server = start_server(directory, port)
    pin(server.process.pid, PRIMARY_CPU)
    return server.stop, newest


def java_primary(directory: Path, n: int) -> tuple[Callable[[], object], int]:
    port = setup_java(directory, "secret")
    set_java_server_config(directory, '"enable_txn_queue" = "yes"')
    server = start_java_repl_server(directory, port)
    pin(server.process.pid, PRIMARY_CPU)
    body = "\n".join(f"CREATE TEST/bench-{i}\n{HS_ADMIN_LINE}\n1 URL 86400 1110 UTF8 http://example.org/{i}\n"
                     for i in range(n))
    log = java_batch(directory / "client", directory.parent, "bulk", body)
    assert log.count("==>SUCCESS[") == n, log[-2000:]
    return server.stop, n


def _multi_primary_member(directory: Path, primary: Path) -> int:
    """A primary with the multi-primary bit that pulls ``primary`` (as a second primary of a pair would)."""
    port = make_mirror(directory, primary / "siteinfo.json", primary / "admpriv.bin", interval_ms=200)
    siteinfo = directory / "siteinfo.json"
    site = json.loads(siteinfo.read_text(encoding="utf-8"))
    site["primarySite"] = True
    siteinfo.write_text(json.dumps(site, indent=2), encoding="utf-8")
    set_multi_primary(siteinfo)
    return port


def time_mirror(kind: str, directory: Path, primary: Path, newest: int) -> tuple[float, float]:
    """(seconds to catch up, peak RSS MB of the mirror)."""
    if kind == "java":
        port = make_java_mirror(directory, primary / "siteinfo.json", primary / "admpriv.bin")
        started = time.monotonic()
        server = start_java_repl_server(directory, port)
    else:
        if kind == "hdlserver":
            port = make_mirror(directory, primary / "siteinfo.json", primary / "admpriv.bin", interval_ms=200)
        else:
            port = _multi_primary_member(directory, primary)
        started = time.monotonic()
        server = start_server(directory, port)
    pin(server.process.pid, MIRROR_CPU)
    try:
        while txnstat_last_id(directory) != newest:
            if time.monotonic() - started > LIMIT_SECONDS:
                raise AssertionError(f"{kind} mirror did not catch up in {LIMIT_SECONDS} s")
            time.sleep(0.05)
        return time.monotonic() - started, status_mb(server.process.pid, "VmHWM")
    finally:
        server.stop()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    base = Path(tempfile.mkdtemp(prefix="repl-catchup-"))
    print("| mirror | primary | transactions | seconds | transactions/s | mirror peak RSS |", flush=True)
    print("|---|---|---|---|---|---|", flush=True)
    try:
        for primary_kind, make_primary in (("hdlserver", hdlserver_primary), ("java", java_primary)):
            primary_dir = base / f"{primary_kind}-primary" / "srv"
            primary_dir.parent.mkdir()
            stop, newest = make_primary(primary_dir, n)
            try:
                for i, mirror_kind in enumerate(MIRROR_KINDS):
                    seconds, rss = time_mirror(mirror_kind, base / f"{primary_kind}-mirror-{i}", primary_dir, newest)
                    print(f"| {mirror_kind} | {primary_kind} | {n} | {seconds:.1f} | {n / seconds:.0f} "
                          f"| {rss:.0f} MB |", flush=True)
            finally:
                stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Catch-up rate of a mirror N transactions behind its primary, every pairing of hdlserver and Java 9.2.

    .venv/bin/python scripts/bench_repl_catchup.py [N]        (default 10 000; loopback; about 3 minutes)

For each primary (hdlserver: N handles created offline, one transaction each; Java: N CREATEs through one
hdl-genericbatch session), a fresh mirror of each kind is started and timed from its start until its
txnstat.dct shows the primary's newest transaction id. The time includes the mirror's start-up (a JVM
for Java). Needs ../shared/handle-java with the replication build (install.sh --repl).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"  # reuses the test suite's server and mirror helpers
sys.path[:0] = [str(TESTS), str(TESTS / "interop")]

from repl_support import make_mirror, txnstat_last_id  # noqa: E402
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


def hdlserver_primary(directory: Path, n: int) -> tuple[Callable[[], object], int]:
    port = setup_server_dir(directory)
    start_server(directory, port).stop()  # the first start homes the prefixes (2 transactions)
    with open_store(directory, case_sensitive=False) as store:
        store.create_handles((f"TEST/bench-{i}".encode(), [HandleValue(1, b"URL", f"http://example.org/{i}".encode())])
                             for i in range(n))
        newest = store.last_txn_id()
    return start_server(directory, port).stop, newest


def java_primary(directory: Path, n: int) -> tuple[Callable[[], object], int]:
    port = setup_java(directory, "secret")
    set_java_server_config(directory, '"enable_txn_queue" = "yes"')
    server = start_java_repl_server(directory, port)
    body = "\n".join(f"CREATE TEST/bench-{i}\n{HS_ADMIN_LINE}\n1 URL 86400 1110 UTF8 http://example.org/{i}\n"
                     for i in range(n))
    log = java_batch(directory / "client", directory.parent, "bulk", body)
    assert log.count("==>SUCCESS[") == n, log[-2000:]
    return server.stop, n


def time_mirror(kind: str, directory: Path, primary: Path, newest: int) -> float:
    if kind == "java":
        port = make_java_mirror(directory, primary / "siteinfo.json", primary / "admpriv.bin")
        started = time.monotonic()
        server = start_java_repl_server(directory, port)
    else:
        port = make_mirror(directory, primary / "siteinfo.json", primary / "admpriv.bin", interval_ms=200)
        started = time.monotonic()
        server = start_server(directory, port)
    try:
        while txnstat_last_id(directory) != newest:
            if time.monotonic() - started > LIMIT_SECONDS:
                raise AssertionError(f"{kind} mirror did not catch up in {LIMIT_SECONDS} s")
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        server.stop()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    base = Path(tempfile.mkdtemp(prefix="repl-catchup-"))
    try:
        for primary_kind, make_primary in (("hdlserver", hdlserver_primary), ("java", java_primary)):
            primary_dir = base / f"{primary_kind}-primary" / "srv"
            primary_dir.parent.mkdir()
            stop, newest = make_primary(primary_dir, n)
            try:
                for mirror_kind in ("hdlserver", "java"):
                    seconds = time_mirror(mirror_kind, base / f"{primary_kind}-{mirror_kind}", primary_dir, newest)
                    print(f"{mirror_kind:9} mirror of a {primary_kind:9} primary: {n} transactions in {seconds:5.1f} s"
                          f" = {n / seconds:6.0f} transactions/s", flush=True)
            finally:
                stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

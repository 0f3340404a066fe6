"""Paced admin writes for the resolution benchmark (``bench_resolution.py --writes-per-second R``).

    python scripts/admin_writer.py --port P --rate R --duration S

CREATE then DELETE of ``BENCH/w-<n>`` alternately, at most R operations per second for S seconds, each
authenticated as 300:0.NA/BENCH with secret "x" (no session: every operation is challenged, as a plain
Java admin client is), against either server. Prints one JSON line: operations, errors, p50/p99 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.errors import HandleError
from hdlserver.wire.values import HandleValue

IDENTITY = SecretKeyIdentity(b"0.NA/BENCH", 300, b"x")
ADMIN_VALUE = HandleValue(100, b"HS_ADMIN", bytes.fromhex("0fff0000000a302e4e412f42454e43480000012c"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, required=True, help="operations per second at most")
    p.add_argument("--duration", type=float, required=True, help="seconds")
    args = p.parse_args(argv)
    latencies: list[float] = []
    errors = 0
    started = time.monotonic()
    with AdminClient((args.host, args.port), IDENTITY, timeout=5.0) as admin:
        n = 0
        while (now := time.monotonic()) - started < args.duration:
            due = started + n / args.rate
            if now < due:
                time.sleep(due - now)
            handle = f"BENCH/w-{n // 2}"
            begin = time.monotonic()
            try:
                if n % 2 == 0:
                    admin.create_handle(handle, [HandleValue(1, b"URL", b"http://example.org/w"), ADMIN_VALUE])
                else:
                    admin.delete_handle(handle)
            except (HandleError, OSError):
                errors += 1
            latencies.append(time.monotonic() - begin)
            n += 1
    latencies.sort()

    def percentile(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2) if latencies else 0.0

    wall = time.monotonic() - started
    print(json.dumps({"operations": len(latencies), "errors": errors, "per_second": round(len(latencies) / wall, 1),
                      "p50_ms": percentile(0.50), "p99_ms": percentile(0.99)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

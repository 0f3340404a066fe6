#!/usr/bin/env python3
"""Micro benchmark of the resolution hot path: per-call microseconds of ``fast_answer`` and ``get_record``.

No sockets: a temporary server directory (hdl-setup-server layout, prefix BENCH) gets the handles of
scripts/bench_resolution.py (BENCH/1..N, one URL and one HS_ADMIN value each), and the functions the
UDP/TCP listeners call are timed in this process on a rotating set of distinct requests:

* ``fast_answer hit`` / ``miss`` / ``site info``: a Java-layout RESOLUTION of an existing or a missing
  handle, and a GET_SITE_INFO request, each seen before (answered from its answer template);
* ``fast_answer hit, built``: the same hits with no answer templates (what a request seen for the first
  time costs);
* ``get_record hit`` / ``miss``: the store lookup alone;
* ``access log record``: what an answered request costs the event loop with ``log_accesses`` on (the
  entry is queued; the log writer thread, running meanwhile, formats and writes it).

Each figure is the best of ``--repeat`` rounds of ``--calls`` calls (the minimum is the least disturbed
by other load on the machine). Run: ``.venv/bin/python scripts/bench_fast_path.py [--handles 1000]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hdlserver.client.resolver import build_request  # noqa: E402
from hdlserver.core.answer_templates import AnswerTemplates  # noqa: E402
from hdlserver.core.context import ServerState  # noqa: E402
from hdlserver.core.resolve import fast_answer  # noqa: E402
from hdlserver.net.access import AccessLog  # noqa: E402
from hdlserver.net.logs import setup_logging  # noqa: E402
from hdlserver.serverdir import open_server_state  # noqa: E402
from hdlserver.setup import SetupOptions, setup_server_dir  # noqa: E402
from hdlserver.wire.bodies import ResolutionRequest, SiteInfoRequest  # noqa: E402
from hdlserver.wire.codes import OpCode, ResponseCode  # noqa: E402
from hdlserver.wire.valuedata import AdminRecord, encode_admin  # noqa: E402
from hdlserver.wire.values import HandleValue  # noqa: E402

PREFIX = "BENCH"


def bench_values(n: int) -> list[HandleValue]:
    admin = encode_admin(AdminRecord(permissions=0x0FFF, handle=b"0.NA/" + PREFIX.encode(), index=300))
    return [HandleValue(index=1, type=b"URL", data=f"http://example.org/{n}".encode()),
            HandleValue(index=100, type=b"HS_ADMIN", data=admin)]


def make_state(directory: Path, handles: int) -> ServerState:
    setup_server_dir(SetupOptions(server_dir=directory, prefixes=[PREFIX], bind_address="127.0.0.1", port=2641,
                                  admin_secret="x", admin_key=False, key_bits=1024, log_accesses=False))
    state = open_server_state(directory)
    state.store.create_handles((f"{PREFIX}/{n}".encode(), bench_values(n)) for n in range(1, handles + 1))
    return state


def per_call_us(fn: Callable[[bytes], object], inputs: Sequence[bytes], calls: int, repeat: int) -> float:
    """Best per-call time of ``fn`` over ``repeat`` rounds of ``calls`` calls cycling through ``inputs``."""
    rounds = max(1, calls // len(inputs))
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for _ in range(rounds):
            for item in inputs:
                fn(item)
        best = min(best, (time.perf_counter() - began) / (rounds * len(inputs)))
    return best * 1e6


def built_us(state: ServerState, fn: Callable[[bytes], object], inputs: Sequence[bytes], calls: int,
             repeat: int) -> float:
    """``per_call_us`` with no answer templates kept: every answer is built."""
    kept = state.answer_templates
    state.answer_templates = AnswerTemplates(max_entries=0)
    try:
        return per_call_us(fn, inputs, calls, repeat)
    finally:
        state.answer_templates = kept


def check(state: ServerState, request: bytes, code: int) -> None:
    """Refuse to time a request the fast path does not answer as expected (the numbers would mean nothing)."""
    answer = fast_answer(state, request)
    if answer is None or answer.response_code != code:
        raise SystemExit(f"fast_answer did not answer RC {code} for {request!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handles", type=int, default=1000, help="handles BENCH/1..N in the store")
    parser.add_argument("--distinct", type=int, default=1000, help="distinct requests cycled through per case")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round")
    parser.add_argument("--repeat", type=int, default=25, help="rounds; the best is reported")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    distinct = max(1, min(args.distinct, args.handles))

    with tempfile.TemporaryDirectory(prefix="bench-fast-path-") as tmp:
        state = make_state(Path(tmp) / "srv", args.handles)
        try:
            names = [f"{PREFIX}/{n}".encode() for n in range(1, distinct + 1)]
            missing = [f"{PREFIX}/missing-{n}".encode() for n in range(1, distinct + 1)]
            hits = [build_request(OpCode.RESOLUTION, ResolutionRequest(handle=h)) for h in names]
            misses = [build_request(OpCode.RESOLUTION, ResolutionRequest(handle=h)) for h in missing]
            site = [build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(handle=b"/"))]
            check(state, hits[0], ResponseCode.SUCCESS)
            check(state, misses[0], ResponseCode.HANDLE_NOT_FOUND)
            check(state, site[0], ResponseCode.SUCCESS)

            def answer(request: bytes) -> object:
                return fast_answer(state, request)

            get_record = state.store.get_record
            access = AccessLog(True, "UDP")

            def log_access(handle: bytes) -> None:
                access.record("127.0.0.1", (2, 11), 0.0, OpCode.RESOLUTION, ResponseCode.SUCCESS, handle)

            logs = setup_logging(Path(tmp) / "logs")
            try:
                logged = per_call_us(log_access, names, args.calls, args.repeat)
            finally:
                logs.stop()
            results = {
                "fast_answer hit": per_call_us(answer, hits, args.calls, args.repeat),
                "fast_answer miss": per_call_us(answer, misses, args.calls, args.repeat),
                "fast_answer site info": per_call_us(answer, site, args.calls, args.repeat),
                "fast_answer hit, built": built_us(state, answer, hits, args.calls, args.repeat),
                "get_record hit": per_call_us(get_record, names, args.calls, args.repeat),
                "get_record miss": per_call_us(get_record, missing, args.calls, args.repeat),
                "access log record": logged,
            }
        finally:
            state.store.close()
    if args.json:
        print(json.dumps({"handles": args.handles, "distinct": distinct, "us_per_call": results}))
    else:
        print(f"{args.handles} handles, {distinct} distinct requests per case, best of {args.repeat}")
        for name, us in results.items():
            print(f"  {name:<24} {us:7.2f} us/call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hdl-genericbatch BATCHFILE [LOGFILE] [-verbose]``: run a GenericBatch file (Handle.Net format, also as
pyhandle's BatchHandleClient writes it) against handle servers.

The log (LOGFILE, else standard output) has the Java tool's lines: ``==>SUCCESS[line]: create:HANDLE``,
``==>FAILURE[line]: ...: <response code and message>``, ``==>INVALID[line]: <reason>`` and the closing
statistics. Line numbers are the batch file's own. Problems with the file are also printed on standard
error as ``FILE:LINE: reason``. Exit status: 0 when every operation succeeded, 1 when any failed or was
invalid, 2 when the batch could not run at all.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TextIO

from hdlserver.batch.executor import BatchExecutor, BatchSummary, Outcome, SessionChoice, Status
from hdlserver.batch.parser import ACTIONS, parse_batch, split_lines
from hdlserver.batch.routing import RoutingError
from hdlserver.batch.site_fetch import fetch_site_info
from hdlserver.batch.target_options import add_target_options, router_from_args
from hdlserver.cli.common import fail
from hdlserver.errors import ConfigError

PROGRESS_INTERVAL = 0.25  # seconds between progress line updates


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-genericbatch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("batchfile", type=Path, help="the batch file (UTF-8)")
    p.add_argument("logfile", type=Path, nargs="?", help="write the log here instead of standard output")
    p.add_argument("-verbose", "--verbose", action="store_true",
                   help="print every outcome with its duration on standard error, and latency statistics")
    p.add_argument("--no-session", action="store_true",
                   help="answer a challenge for every request instead of using one session per server "
                        "(a SESSIONSETUP block with USESESSION:0 does the same from inside the file)")
    add_target_options(p)
    return p


def java_date() -> str:
    """``java.util.Date.toString()``, as the Java tool's Start/Finish lines show it."""
    return time.strftime("%a %b %d %H:%M:%S %Z %Y")


def count_operations(lines: list[bytes]) -> int:
    """How many operations the file holds, for the progress line (a cheap look at the first words)."""
    keywords = {k.encode() for k in ACTIONS}
    return sum(1 for line in lines if line.strip().split(b" ", 1)[0].upper() in keywords)


class Progress:
    """``[ 1234/10000] 12% 850 ops/s`` on a terminal's standard error, rewritten in place."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.done = 0
        self.start = self.last = time.monotonic()

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            percent = 100 * self.done // max(self.total, 1)
            self.stream.write(f"\r[{self.done:>{len(str(self.total))}}/{self.total}] {percent:3d}% {rate:,.0f} ops/s")
            self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def write_statistics(log: TextIO, summary: BatchSummary, lines: int, elapsed: float) -> None:
    """The Java tool's closing lines."""
    log.write(f"Successes/Total Entries: {summary.successes}/{summary.outcomes_total}\n")
    log.write(f"Batch File Lines: {lines}\n")
    log.write(f"Finish Time: {java_date()}\n")
    rate = summary.outcomes_total / elapsed if elapsed > 0 else 0.0
    log.write(f"This batch took {int(elapsed)} seconds to complete at an average speed of {rate} operations/second\n")


def latency_line(summary: BatchSummary) -> str:
    if not summary.latencies:
        return "no operation was sent"
    ms = sorted(x * 1000 for x in summary.latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"operation latency: p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, max {ms[-1]:.2f} ms "
            f"({len(ms)} operations)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        lines = split_lines(args.batchfile.read_bytes())
    except OSError as exc:
        return fail(f"cannot read batch file {args.batchfile}: {exc.strerror or exc}", 2)
    try:
        router = router_from_args(args)
    except (ConfigError, RoutingError) as exc:
        return fail(str(exc), 2)
    try:
        log: TextIO = args.logfile.open("w", encoding="utf-8") if args.logfile else sys.stdout
    except OSError as exc:
        return fail(f"cannot write log file {args.logfile}: {exc.strerror or exc}", 2)
    progress = Progress(sys.stderr, count_operations(lines)) if sys.stderr.isatty() and not args.verbose else None
    name = str(args.batchfile)

    def report(outcome: Outcome) -> None:
        log.write(outcome.log_line() + "\n")
        if outcome.status is Status.INVALID:
            print(f"{name}:{outcome.line}: {outcome.detail}", file=sys.stderr)
        elif args.verbose:
            print(f"{outcome.log_line()} ({outcome.seconds * 1000:.1f} ms)", file=sys.stderr)
        if progress is not None and outcome.counted:
            progress.step()

    def warn(line: int, text: str) -> None:
        print(f"{name}:{line}: warning: {text}", file=sys.stderr)

    started = time.monotonic()
    log.write(f"Start Time: {java_date()}\n")
    executor = BatchExecutor(router, report=report, fetch_site_info=fetch_site_info, warn=warn,
                             session=SessionChoice(use_session=not args.no_session))
    try:
        summary = executor.run(parse_batch(lines))
    finally:
        if progress is not None:
            progress.finish()
    write_statistics(log, executor.summary, len(lines), time.monotonic() - started)
    if args.verbose:
        print(latency_line(summary), file=sys.stderr)
    if log is not sys.stdout:
        log.close()
    if not summary.ok:
        print(f"{name}: {summary.failures} failed and {summary.invalid} invalid of {summary.outcomes_total} "
              f"operations (see the log)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

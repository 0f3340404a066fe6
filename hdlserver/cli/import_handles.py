"""``hdl-import DIR FILE``: load handles from a JSON-lines file (``hdl-export``'s output) into a server directory.

Each non-blank line is ``{"handle": "<name>", "values": [<value>, ...]}``, values in the REST JSON form
(values.md 10); other keys are ignored, so REST API answers can be fed in as well. The server may be
running: the records go into the store it serves from, and each is logged as a transaction for mirrors.

All or nothing for bad input: the whole file is checked first (JSON, value forms, positive and distinct
value indexes, storable names, a handle given twice, and, without ``--overwrite``, handles that already
exist). Any problem is reported with the file and line and nothing is written; with ``--skip-invalid``
the lines with a problem are reported and left out, and the others are imported. Only then are the records
written, in batches of ``--batch-size`` (each batch committed and synced before the next; memory stays
bounded however large the file). Existing handles are replaced only with ``--overwrite``.
A value without a ``timestamp`` gets the current time, as the server gives values it creates.

Caveat for a live server: a handle created by someone else between the check and its batch stops the
import at that batch (the batches before it stay written, and the message says how many handles that is).
FILE ``-`` reads standard input (spooled to a temporary file, since the file is read twice).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import lmdb

from hdlserver.cli.dblist import CONFIG_FILE, open_server_store, store_settings
from hdlserver.cli.export import Progress
from hdlserver.errors import DecodeError, HandleError
from hdlserver.jsonform.strict_json import DuplicateKeyError, loads_strict
from hdlserver.jsonform.values_json import value_from_json
from hdlserver.store.base import HandleExistsError
from hdlserver.store.lmdb_store import LmdbStore
from hdlserver.wire.handles import fold_case
from hdlserver.wire.values import HandleValue

PROG = "hdl-import"
DEFAULT_BATCH = 1000
MAX_LINE_BYTES = 64 << 20  # one record; far above any real handle, low enough to stop a runaway line
MAX_KEY_SIZE = 511  # LMDB's key limit; the store re-checks with the real value
MAX_REPORTED_PROBLEMS = 50
_SEEN_COMMIT_EVERY = 10_000
_SEEN_MAP_SIZE = 1 << 38  # address space only; the file grows with the handles seen


class BadLine(Exception):
    """A line that is not a valid handle record; the message says why."""


class ImportStopped(Exception):
    """The write pass could not go on; the message says how much was written."""


@dataclass
class Problems:
    """The first problems in full, and how many there were (constant memory for a hopeless file)."""

    shown: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, message: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_REPORTED_PROBLEMS:
            self.shown.append(message)


class SeenKeys:
    """A set of storage keys kept in a temporary LMDB on disk, to find handles given twice in a file of
    any size without holding every name in memory."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="hdl-import-")
        self._env = lmdb.open(self._dir, map_size=_SEEN_MAP_SIZE, subdir=True, sync=False, metasync=False,
                              lock=False, readahead=False)
        self._txn = self._env.begin(write=True)
        self._pending = 0

    def add(self, key: bytes) -> bool:
        """Record ``key``; False when it was there already."""
        added = self._txn.put(key, b"", overwrite=False)
        self._pending += 1
        if self._pending >= _SEEN_COMMIT_EVERY:  # bounds the dirty pages a write transaction holds
            self._txn.commit()
            self._txn = self._env.begin(write=True)
            self._pending = 0
        return added

    def close(self) -> None:
        self._txn.abort()
        self._env.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def parse_record(raw: bytes, *, case_sensitive: bool, now: int) -> tuple[bytes, bytes, tuple[HandleValue, ...]]:
    """(handle, storage key, values) of one line; ``BadLine`` naming the problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadLine(f"not UTF-8 (byte {e.start + 1} of the line)") from None
    try:
        obj = loads_strict(text)
    except json.JSONDecodeError as e:
        raise BadLine(f"invalid JSON at column {e.colno}: {e.msg}") from None
    except DuplicateKeyError as e:
        raise BadLine(str(e)) from None
    if not isinstance(obj, dict):
        raise BadLine('not a JSON object {"handle": ..., "values": [...]}')
    name = obj.get("handle")
    if not isinstance(name, str) or not name:
        raise BadLine('"handle" must be a non-empty string')
    try:
        handle = name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadLine(f"handle {name!a} is not valid Unicode (a lone surrogate escape)") from None
    key = fold_case(handle, case_sensitive)
    if len(key) > MAX_KEY_SIZE:
        raise BadLine(f"handle {name}: longer than {MAX_KEY_SIZE} bytes, cannot be stored")
    raw_values = obj.get("values")
    if not isinstance(raw_values, list):
        raise BadLine(f'handle {name}: "values" must be a list of value objects')
    values: list[HandleValue] = []
    indexes: set[int] = set()
    for position, raw_value in enumerate(raw_values):
        if not isinstance(raw_value, dict):
            raise BadLine(f"handle {name}: value #{position} is not a JSON object")
        try:
            value = value_from_json(raw_value, f"values[{position}]", resolve_host_names=False)
        except (ValueError, DecodeError) as e:
            raise BadLine(f"handle {name}: {e}") from None
        if value.index <= 0:
            raise BadLine(f"handle {name}: value index {value.index} is not positive")
        if value.index in indexes:
            raise BadLine(f"handle {name}: value index {value.index} is used twice")
        indexes.add(value.index)
        values.append(value.with_timestamp(now) if raw_value.get("timestamp") is None else value)
    return handle, key, tuple(values)


def numbered_lines(f: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, content without the line break) of each non-blank line; content None when the line
    is longer than MAX_LINE_BYTES (its rest is skipped without being held in memory)."""
    number = 0
    while True:
        line = f.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = f.readline(1 << 20)
            yield number, None
            continue
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]  # a UTF-8 byte order mark
        content = line.rstrip(b"\r\n")
        if content.strip():
            yield number, content


@dataclass
class CheckResult:
    records: int = 0
    replacing: int = 0  # records that replace an existing handle (with --overwrite)
    problems: Problems = field(default_factory=Problems)
    skipped: set[int] = field(default_factory=set)  # numbers of the lines left out (with --skip-invalid)


def check_file(f: BinaryIO, store: LmdbStore, *, overwrite: bool, now: int, progress: Progress,
               size: int, name: str = "", skip: bool = False) -> CheckResult:
    """The first pass: every problem of the file, as ``NAME: line N: reason``; nothing is written. With ``skip``
    the lines with a problem are recorded in ``skipped`` (a handle given twice: its later lines)."""
    result = CheckResult()
    seen = SeenKeys()
    where = f"{name}: " if name else ""

    def problem(number: int, reason: str) -> None:
        result.problems.add(f"{where}line {number}: {reason}")
        if skip:
            result.skipped.add(number)

    try:
        for number, raw in numbered_lines(f):
            progress.update(f"checking line {number} ({100 * f.tell() // max(size, 1)}%)")
            if raw is None:
                problem(number, f"longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                handle, key, _values = parse_record(raw, case_sensitive=store.case_sensitive, now=now)
            except BadLine as e:
                problem(number, str(e))
                continue
            if not seen.add(key):
                problem(number, f"handle {handle.decode('utf-8')} is given twice in the file")
                continue
            if store.exists(handle):
                if not overwrite:
                    problem(number, f"handle {handle.decode('utf-8')} already exists (use --overwrite to replace it)")
                    continue
                result.replacing += 1
            result.records += 1
    finally:
        seen.close()
    return result


def write_file(f: BinaryIO, store: LmdbStore, *, overwrite: bool, now: int, batch_size: int,
               progress: Progress, total: int, skip_lines: frozenset[int] | set[int] = frozenset()) -> int:
    """The second pass: write the checked records (but not ``skip_lines``) in batches; returns how many were
    written."""
    written = 0
    batch: list[tuple[bytes, tuple[HandleValue, ...]]] = []

    def flush() -> None:
        nonlocal written
        try:
            store.create_handles(batch, overwrite=overwrite)
        except HandleExistsError as e:
            raise ImportStopped(f"{e} (created since the check); {written} handle(s) were written before "
                                "this batch") from None
        except HandleError as e:
            raise ImportStopped(f"{e}; {written} handle(s) were written before this batch") from None
        written += len(batch)
        batch.clear()
        progress.update(f"written {written} of {total} handles", force=True)

    for number, raw in numbered_lines(f):
        if number in skip_lines:
            continue
        try:
            if raw is None:
                raise BadLine("too long")
            handle, _key, values = parse_record(raw, case_sensitive=store.case_sensitive, now=now)
        except BadLine as e:
            raise ImportStopped(f"line {number} changed since the check ({e}); {written} handle(s) were written "
                                "before it") from None
        batch.append((handle, values))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return written


def _spool_stdin() -> Path:
    fd, name = tempfile.mkstemp(prefix="hdl-import-stdin-", suffix=".jsonl")
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    return Path(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("server_dir", metavar="DIR", type=Path, help="the server directory (may be serving)")
    parser.add_argument("file", metavar="FILE", help='JSON lines, one handle record per line ("-": stdin)')
    parser.add_argument("--overwrite", action="store_true",
                        help="replace handles that already exist (default: refuse the whole import)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="report the lines with a problem and import the others (default: import nothing)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N",
                        help=f"records per write batch (default {DEFAULT_BATCH})")
    return parser


def _report(problems: Problems, outcome: str) -> None:
    for problem in problems.shown:
        print(f"{PROG}: {problem}", file=sys.stderr)
    if problems.count > len(problems.shown):
        print(f"{PROG}: ... and {problems.count - len(problems.shown)} more problems", file=sys.stderr)
    print(f"{PROG}: {outcome}", file=sys.stderr)


def run_import(server_dir: Path, path: Path, *, overwrite: bool, batch_size: int, name: str = "",
               skip: bool = False) -> int:
    progress = Progress()
    now = int(time.time())
    before = path.stat()
    store_settings(server_dir)  # a config.dct that cannot be read fails here, before the store is created
    with open_server_store(server_dir, readonly=False, create=True) as store, open(path, "rb") as f:
        checked = check_file(f, store, overwrite=overwrite, now=now, progress=progress, size=before.st_size,
                             name=name or str(path), skip=skip)
        progress.done()
        if checked.problems.count and not skip:
            _report(checked.problems, "nothing was written")
            return 1
        if checked.problems.count:
            _report(checked.problems, f"{len(checked.skipped)} line(s) with a problem are left out (--skip-invalid)")
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            print(f"{PROG}: error: {path} changed while it was being checked; nothing was written", file=sys.stderr)
            return 1
        f.seek(0)
        try:
            written = write_file(f, store, overwrite=overwrite, now=now, batch_size=batch_size, progress=progress,
                                 total=checked.records, skip_lines=checked.skipped)
        except ImportStopped as e:
            progress.done()
            print(f"{PROG}: error: import stopped: {e}", file=sys.stderr)
            return 1
        progress.done()
    replaced = f" ({checked.replacing} replaced existing ones)" if checked.replacing else ""
    skipped = f"; skipped {len(checked.skipped)} line(s)" if checked.skipped else ""
    print(f"imported {written} handle(s) into {server_dir}{replaced}{skipped}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server_dir: Path = args.server_dir
    if args.batch_size < 1:
        print(f"{PROG}: error: --batch-size must be at least 1", file=sys.stderr)
        return 2
    if not server_dir.is_dir() or not (server_dir / CONFIG_FILE).is_file():
        print(f"{PROG}: error: {server_dir} is not a server directory (it has no {CONFIG_FILE})", file=sys.stderr)
        return 1
    spooled: Path | None = None
    try:
        if args.file == "-":
            spooled = _spool_stdin()
        path = spooled or Path(args.file)
        return run_import(server_dir, path, overwrite=args.overwrite, batch_size=args.batch_size,
                          name="standard input" if spooled else args.file, skip=args.skip_invalid)
    except HandleError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: error: {e.filename or args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())

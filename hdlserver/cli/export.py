"""``hdl-export DIR > handles.jsonl``: every handle of a server directory, one JSON object per line.

Each line is ``{"handle": "<name>", "values": [<value>, ...]}`` with the values in the REST JSON form
(values.md 10, hdlserver.jsonform.values_json), in sorted handle order; ``hdl-import`` reads it back, and
it is the way to move handles between servers, including from and to a Java server. Names are the stored
(case-folded) ones.

Exactness: every exported value reads back to the very same value. Where the usual JSON form of a
value's data would not give back its stored bytes (e.g. a public key in a non-canonical encoding), the
data is written as ``{"format": "base64", ...}``, and a zero timestamp is written out as
``1970-01-01T00:00:00Z`` rather than left out (an importer gives values without one the current time).
A handle that JSON cannot carry exactly (a name or type that is not UTF-8, or permission bits outside
the four defined ones) is not written: it is named on standard error and the exit status is 1.

The store is read in short read transactions while the server goes on serving, so memory stays constant
and writers are never held up; each handle is exported as it was at one moment, but handles changed
during the export may show their state from before or after the change. For one point in time for
the whole store, export a copy made with ``hdl-backup``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from hdlserver.cli.dblist import CONFIG_FILE, handle_text, open_server_store
from hdlserver.errors import DecodeError, HandleError, StorageError
from hdlserver.jsonform.values_json import (
    binary_to_json,
    gson_dumps,
    iso_timestamp,
    value_from_json,
    value_to_json,
)
from hdlserver.store.base import StoredRecord
from hdlserver.wire.values import HandleValue

PROG = "hdl-export"
PROGRESS_INTERVAL = 0.5  # seconds between progress lines on a terminal
MAX_REPORTED_PROBLEMS = 50


class NotExactError(Exception):
    """A value (or handle name) the JSON form cannot carry exactly."""


class Progress:
    """A one-line progress display on standard error, only when standard error is a terminal."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = PROGRESS_INTERVAL) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self._last = 0.0
        self._shown = False

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.stream.write(f"\r{text}\033[K")
            self.stream.flush()
            self._shown = True

    def done(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False


def exact_value_json(value: HandleValue) -> dict:
    """The REST JSON form of ``value``, adjusted so that reading it back gives ``value`` exactly."""
    obj = value_to_json(value)
    if value.timestamp == 0:
        obj["timestamp"] = iso_timestamp(0)
    if _reads_back(obj) == value:
        return obj
    obj["data"] = binary_to_json(value.data)
    if _reads_back(obj) == value:
        return obj
    raise NotExactError(f"value {value.index} (type {value.type.decode('utf-8', 'backslashreplace')}) has "
                        "properties the JSON form cannot express")


def _reads_back(obj: dict) -> HandleValue | None:
    try:
        return value_from_json(obj, resolve_host_names=False)
    except (ValueError, DecodeError):
        return None


def record_line(record: StoredRecord) -> bytes:
    """One output line (with its newline) for a stored record; ``NotExactError`` or ``StorageError``."""
    try:
        name = record.handle.decode("utf-8")
    except UnicodeDecodeError:
        raise NotExactError("the handle name is not UTF-8") from None
    values = [exact_value_json(v) for v in record.values()]
    return (gson_dumps({"handle": name, "values": values}) + "\n").encode("utf-8")


def export_lines(records: Iterator[StoredRecord], out: BinaryIO, problems: list[str],
                 progress: Progress | None = None, total: int = 0) -> int:
    """Write every record that can be exported exactly; the others are added to ``problems``."""
    count = 0
    for record in records:
        try:
            line = record_line(record)
        except (NotExactError, StorageError) as exc:
            problems.append(f"handle {handle_text(record.handle)} not exported: {exc}")
            continue
        out.write(line)
        count += 1
        if progress is not None:
            progress.update(f"exported {count} of {total} handles")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("server_dir", metavar="DIR", type=Path, help="the server directory (may be serving)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write to FILE (complete or not at all) instead of standard output")
    return parser


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[BinaryIO]:
    """Standard output, or a temporary file beside ``path`` renamed over it once complete and synced."""
    if path is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _report(problems: list[str]) -> None:
    for problem in problems[:MAX_REPORTED_PROBLEMS]:
        print(f"{PROG}: {problem}", file=sys.stderr)
    if len(problems) > MAX_REPORTED_PROBLEMS:
        print(f"{PROG}: ... and {len(problems) - MAX_REPORTED_PROBLEMS} more", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server_dir: Path = args.server_dir
    if not server_dir.is_dir():
        print(f"{PROG}: error: {server_dir} is not a directory", file=sys.stderr)
        return 1
    if not (server_dir / CONFIG_FILE).is_file():
        print(f"{PROG}: error: {server_dir} is not a server directory (it has no {CONFIG_FILE})", file=sys.stderr)
        return 1
    problems: list[str] = []
    progress = Progress()
    try:
        with open_server_store(server_dir, readonly=True) as store, _output(args.output) as out:
            count = export_lines(store.iter_records(), out, problems, progress, store.count_handles())
    except BrokenPipeError:
        # The reader went away (e.g. "| head"): not an error of ours; keep Python quiet at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except HandleError as exc:
        progress.done()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        progress.done()
        print(f"{PROG}: error: cannot write {exc.filename or 'the output'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    progress.done()
    _report(problems)
    where = f" to {args.output}" if args.output else ""
    print(f"{PROG}: exported {count} handle(s){where}" + (f"; {len(problems)} not exported" if problems else ""),
          file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

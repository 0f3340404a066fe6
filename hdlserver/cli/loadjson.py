"""hdl-loadjson: fill a server directory's store from a JSON file of handle records.

The file holds either an object ``{"<handle>": [values...] or {"values": [values...]}, ...}`` or a list
``[{"handle": "<handle>", "values": [values...]}, ...]``; values are in the REST JSON form (values.md 10).
``--home PREFIX`` (repeatable) homes prefixes as well. Every change is logged as a transaction.

The whole input is checked before anything is written: JSON syntax, value form, positive and distinct
value indexes, handles that can be stored, handles given twice, and (without ``--overwrite``) handles that
already exist. Any problem is reported, naming the handle, and the store is left untouched.
A value without a timestamp gets the current time, as the server gives values it creates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdlserver.cli.dblist import handle_text, open_server_store, store_settings
from hdlserver.errors import ConfigError, DecodeError, HandleError
from hdlserver.jsonform.strict_json import DuplicateKeyError, loads_strict
from hdlserver.store.base import HandleExistsError
from hdlserver.wire.handles import NA_PREFIX, fold_case, to_prefix_handle
from hdlserver.wire.values import HandleValue

PROG = "hdl-loadjson"
MAX_KEY_SIZE = 511  # LMDB's key limit; the store re-checks with the real value
MAX_REPORTED_PROBLEMS = 50

ValueParser = Callable[[dict[str, Any]], HandleValue]


@dataclass
class LoadPlan:
    """What a checked input file asks for; ``problems`` empty means it may be written."""

    records: list[tuple[bytes, tuple[HandleValue, ...]]] = field(default_factory=list)
    homes: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_json(data: bytes, source: str) -> Any:
    """Parse JSON, refusing duplicate keys (a handle given twice would otherwise silently lose one)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not UTF-8 (byte offset {e.start})") from None
    try:
        return loads_strict(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except DuplicateKeyError as e:
        raise ValueError(f"{source}: {e}") from None


def _entries(document: Any) -> list[tuple[Any, Any]]:
    """(handle, value list) pairs of either file form; shape problems raise ValueError."""
    if isinstance(document, dict):
        pairs = []
        for handle, body in document.items():
            values = body.get("values") if isinstance(body, dict) else body
            pairs.append((handle, values))
        return pairs
    if isinstance(document, list):
        pairs = []
        for position, item in enumerate(document):
            if not isinstance(item, dict) or "handle" not in item:
                raise ValueError(f"item #{position} of the list is not an object with a \"handle\"")
            pairs.append((item["handle"], item.get("values")))
        return pairs
    raise ValueError("the top level must be an object {handle: values} or a list of {handle, values} objects")


def _values(label: str, raw_values: Any, parse_value: ValueParser, now: int, problems: list[str]
            ) -> tuple[HandleValue, ...] | None:
    if not isinstance(raw_values, list):
        problems.append(f"{label}: \"values\" must be a list of value objects")
        return None
    values: list[HandleValue] = []
    indexes: set[int] = set()
    ok = True
    for position, raw in enumerate(raw_values):
        if not isinstance(raw, dict):
            problems.append(f"{label}: value #{position} is not a JSON object")
            ok = False
            continue
        try:
            value = parse_value(raw)
        except (ValueError, DecodeError) as e:
            problems.append(f"{label}: value #{position}: {e}")
            ok = False
            continue
        if value.index <= 0:
            problems.append(f"{label}: value index {value.index} is not positive")
            ok = False
        elif value.index in indexes:
            problems.append(f"{label}: value index {value.index} is used twice")
            ok = False
        indexes.add(value.index)
        values.append(value if value.timestamp else value.with_timestamp(now))
    return tuple(values) if ok else None


def plan_load(document: Any, homes: list[str], *, case_sensitive: bool, parse_value: ValueParser,
              now: int) -> LoadPlan:
    """Check a parsed input file and the prefixes to home, without touching any store."""
    plan = LoadPlan()
    try:
        entries = _entries(document)
    except ValueError as e:
        plan.problems.append(str(e))
        entries = []
    seen: dict[bytes, str] = {}
    for handle_obj, raw_values in entries:
        if not isinstance(handle_obj, str) or not handle_obj:
            plan.problems.append(f"handle {handle_obj!r}: a handle must be a non-empty string")
            continue
        label = f"handle {handle_obj}"
        try:
            handle = handle_obj.encode("utf-8")
        except UnicodeEncodeError:
            plan.problems.append(f"handle {handle_obj!a}: not valid Unicode (a lone surrogate escape)")
            continue
        key = fold_case(handle, case_sensitive)
        if len(key) > MAX_KEY_SIZE:
            plan.problems.append(f"{label}: longer than {MAX_KEY_SIZE} bytes, cannot be stored")
        elif key in seen:
            plan.problems.append(f"{label}: given twice (also as {seen[key]})")
        seen.setdefault(key, handle_obj)
        values = _values(label, raw_values, parse_value, now, plan.problems)
        if values is not None:
            plan.records.append((handle, values))
    for prefix in homes:
        prefix_handle = to_prefix_handle(prefix.encode("utf-8", "surrogateescape"))
        if not prefix_handle.startswith(NA_PREFIX) or len(prefix_handle) == len(NA_PREFIX):
            plan.problems.append(f"--home {prefix}: not a prefix (give 1234 or 0.NA/1234)")
        else:
            plan.homes.append(prefix_handle)
    return plan


def _value_parser() -> ValueParser:
    from hdlserver.jsonform.values_json import value_from_json  # the REST JSON value form

    return value_from_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Import handle records from a JSON file into the store of a server directory "
        "(creating the store if needed). Nothing is written unless the whole file is valid.",
        epilog='FILE is {"<handle>": [values] or {"values": [values]}, ...} or '
        '[{"handle": "<handle>", "values": [values]}, ...], values in the REST JSON form; "-" reads stdin.',
        allow_abbrev=False,
    )
    parser.add_argument("server_dir", metavar="DIR", type=Path, help="the server directory")
    parser.add_argument("file", metavar="FILE", nargs="?", help="JSON file of handle records")
    parser.add_argument("--overwrite", action="store_true", help="replace handles that already exist")
    parser.add_argument("--home", metavar="PREFIX", action="append", default=[],
                        help="home this prefix (1234 or 0.NA/1234); repeatable")
    return parser


def _report(problems: list[str]) -> None:
    for problem in problems[:MAX_REPORTED_PROBLEMS]:
        print(f"{PROG}: {problem}", file=sys.stderr)
    if len(problems) > MAX_REPORTED_PROBLEMS:
        print(f"{PROG}: ... and {len(problems) - MAX_REPORTED_PROBLEMS} more problems", file=sys.stderr)
    print(f"{PROG}: nothing was written", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.file is None and not args.home:
        parser.error("give a FILE to load, --home PREFIX, or both")
    if not Path(args.server_dir).is_dir():
        print(f"{PROG}: error: {args.server_dir} is not a directory", file=sys.stderr)
        return 1
    try:
        settings = store_settings(args.server_dir)
        document: Any = []
        if args.file is not None:
            data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
            document = read_json(data, "stdin" if args.file == "-" else args.file)
        parse_value = _value_parser()
    except (ConfigError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: error: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"{PROG}: error: the JSON value reader is not available ({e})", file=sys.stderr)
        return 1
    plan = plan_load(document, args.home, case_sensitive=settings.case_sensitive,
                     parse_value=parse_value, now=int(time.time()))
    if plan.problems:
        _report(plan.problems)
        return 1
    try:
        with open_server_store(args.server_dir, readonly=False, create=True) as store:
            if not args.overwrite:
                existing = [handle_text(h) for h, _ in plan.records if store.exists(h)]
                if existing:
                    _report([f"handle {h}: already exists (use --overwrite to replace it)" for h in existing])
                    return 1
            written = store.create_handles(plan.records, overwrite=args.overwrite)
            for prefix_handle in plan.homes:
                store.home_prefix(prefix_handle)
    except HandleExistsError as e:  # created by someone else since the check above
        _report([str(e)])
        return 1
    except (ConfigError, HandleError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    print(f"stored {written} handle(s), homed {len(plan.homes)} prefix(es)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""hdl-dblist: list the handles (or, with -p, the homed prefixes) stored in a server directory.

Like Java's DBList it reads the store directly, so it works while the server is stopped; LMDB allows
readers beside a running server too. One stored (case-folded) name per line, in sorted order; with -v
each handle is followed by its values as pretty JSON, as Java's ``DBList -v`` prints them.

This module also holds ``store_settings`` and ``open_server_store``, which every offline db tool uses to
find the store of a server directory the way the server does.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hdlserver.errors import ConfigError, StorageError
from hdlserver.store.lmdb_store import DEFAULT_DB_DIRECTORY, MAX_PARTITIONS, LmdbStore, open_store

PROG = "hdl-dblist"
CONFIG_FILE = "config.dct"


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The ``server_config`` keys that say where the store is and how its keys are folded."""

    case_sensitive: bool = False
    db_directory: str = DEFAULT_DB_DIRECTORY
    partitions: int | None = None  # None: not configured, the store's recorded count applies


def store_settings(server_dir: Path) -> StoreSettings:
    """Read ``case_sensitive``, ``db_directory`` and ``storage_partitions`` from ``config.dct``; defaults
    when the file is absent. ConfigError when it is present but unusable."""
    path = Path(server_dir) / CONFIG_FILE
    if not path.exists():
        return StoreSettings()
    from hdlserver.config.dct import dct_bool, dct_int, load_dct_document  # only needed with a config file

    document = load_dct_document(path)
    section = document.table.get("server_config", {})
    if not isinstance(section, dict):
        raise ConfigError("server_config must be a table", str(path), document.line_of("server_config"))
    db_directory = section.get("db_directory", DEFAULT_DB_DIRECTORY)
    if not isinstance(db_directory, str) or not db_directory:
        raise ConfigError("server_config.db_directory must be a non-empty string", str(path),
                          document.line_of("server_config", "db_directory"))
    partitions = None
    if "storage_partitions" in section:
        partitions = dct_int(section["storage_partitions"], 0, key="server_config.storage_partitions",
                             path=str(path), line=document.line_of("server_config", "storage_partitions"),
                             trim=True, minimum=1, maximum=MAX_PARTITIONS)
    return StoreSettings(dct_bool(section.get("case_sensitive"), False), db_directory, partitions)


def open_server_store(server_dir: Path, *, readonly: bool, create: bool = False) -> LmdbStore:
    """Open the store of a server directory as its ``config.dct`` describes it."""
    server_dir = Path(server_dir)
    if not server_dir.is_dir():
        raise StorageError(f"{server_dir} is not a directory")
    settings = store_settings(server_dir)
    return open_store(server_dir, case_sensitive=settings.case_sensitive, partitions=settings.partitions,
                      db_directory=settings.db_directory, readonly=readonly, create=create)


def handle_text(handle: bytes) -> str:
    return handle.decode("utf-8", "backslashreplace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="List every handle stored in a server directory (or, with -p, every homed prefix), "
        "one per line in sorted order. Reads the store directly; the server may be running.",
        allow_abbrev=False,
    )
    parser.add_argument("server_dir", metavar="DIR", type=Path, help="the server directory")
    parser.add_argument("-p", "--prefixes", action="store_true",
                        help="list the homed prefixes (0.NA/...) instead of the handles")
    parser.add_argument("-v", "--values", action="store_true",
                        help="print each handle's values after it, as pretty JSON (REST value form)")
    return parser


def _print_listing(store: LmdbStore, *, prefixes: bool, values: bool) -> None:
    out = sys.stdout
    if prefixes:
        for name in store.homed_prefixes():
            out.write(handle_text(name) + "\n")
        return
    if not values:
        for name in store.iter_handles():
            out.write(handle_text(name) + "\n")
        return
    from hdlserver.jsonform.values_json import gson_dumps, values_to_json

    for record in store.iter_records():
        out.write(handle_text(record.handle) + "\n")
        out.write(gson_dumps(values_to_json(record.values()), pretty=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = open_server_store(args.server_dir, readonly=True)
    except (ConfigError, StorageError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    try:
        with store:
            _print_listing(store, prefixes=args.prefixes, values=args.values)
            sys.stdout.flush()
    except StorageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `hdl-dblist DIR | head`: the reader has seen enough
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

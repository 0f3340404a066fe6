"""hdl-dbremove: remove handles directly from a server directory's store, like Java's DBRemove.

Each removal is logged as a delete transaction, so mirrors follow it. Handles are case-folded as the
server folds them (``case_sensitive`` of config.dct). Exit status 1 if any handle was not found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hdlserver.cli.dblist import open_server_store
from hdlserver.errors import ConfigError, StorageError

PROG = "hdl-dbremove"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Remove handles from the store of a server directory (logged as transactions, so "
        "mirrors replicate the removal).",
        allow_abbrev=False,
    )
    parser.add_argument("server_dir", metavar="DIR", type=Path, help="the server directory")
    parser.add_argument("handles", metavar="HANDLE", nargs="+", help="handle to remove")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = open_server_store(args.server_dir, readonly=False)
    except (ConfigError, StorageError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    missing = 0
    with store:
        for text in args.handles:
            handle = text.encode("utf-8", "surrogateescape")
            print(f"Removing {text}")
            try:
                removed = store.delete_handle(handle)
            except StorageError as e:
                print(f"{PROG}: error: {e}", file=sys.stderr)
                return 1
            if not removed:
                print(f"{PROG}: handle not found: {text}", file=sys.stderr)
                missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

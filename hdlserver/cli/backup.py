"""``hdl-backup DIR OUT``: an online backup of a server directory, taken while the server runs.

OUT (new, or an empty directory) receives a compacted copy of every LMDB partition of the store, all as
of one single moment (see hdlserver.store.backup: the transaction log is in the partitions, so it is
copied at the same moment), and the top-level files of DIR: config.dct, siteinfo.json/.bin, the key
files and the rest, so that ``hdl-server OUT`` starts from the copy. Log files are not copied.
The copy holds the server's private keys: it is created readable by its owner only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
from pathlib import Path

from hdlserver.cli.dblist import CONFIG_FILE, open_server_store, store_settings
from hdlserver.errors import HandleError
from hdlserver.store.backup import BackupResult, backup_store

PROG = "hdl-backup"
# Files a running server creates for itself; a copy must not inherit them (hdlserver.net.server.STOP_FILE:
# not imported, to keep the server's network stack out of an offline tool).
_RUNTIME_FILES = frozenset({"delete_this_to_stop_server"})


class BackupError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("server_dir", metavar="DIR", type=Path, help="the server directory (may be serving)")
    parser.add_argument("out", metavar="OUT", type=Path, help="where to write the copy: a new or empty directory")
    parser.add_argument("--lock-wait", type=float, default=60.0, metavar="SECONDS",
                        help="how long to wait for a writer holding the store's lock (default 60)")
    return parser


def _check_paths(server_dir: Path, out: Path) -> str:
    """The store's ``db_directory``, after checking that DIR is a server directory and OUT is usable."""
    if not server_dir.is_dir():
        raise BackupError(f"{server_dir} is not a directory")
    if not (server_dir / CONFIG_FILE).is_file():
        raise BackupError(f"{server_dir} is not a server directory (it has no {CONFIG_FILE})")
    db_directory = store_settings(server_dir).db_directory
    if Path(db_directory).is_absolute():
        raise BackupError(f"db_directory {db_directory} is outside the server directory: the copy's config.dct "
                          "would still point at the live store; give it a relative db_directory first")
    if out.exists() and not out.is_dir():
        raise BackupError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise BackupError(f"{out} exists and is not empty: back up into a new or empty directory")
    if out.resolve() == server_dir.resolve() or server_dir.resolve() in out.resolve().parents:
        raise BackupError(f"{out} is inside the server directory {server_dir}")
    return db_directory


def _copy_top_level_files(server_dir: Path, out: Path) -> list[str]:
    copied = []
    for entry in sorted(server_dir.iterdir()):
        if entry.name in _RUNTIME_FILES or not entry.is_file():
            continue
        target = out / entry.name
        shutil.copy2(entry, target)  # keeps the mode: privkey.bin stays owner-only
        with open(target, "rb") as f:
            os.fsync(f.fileno())
        copied.append(entry.name)
    return copied


def _verify(out: Path, result: BackupResult) -> None:
    """Open the copy as a server would and check it holds what the snapshot held."""
    with open_server_store(out, readonly=True) as copy:
        handles, last = copy.count_handles(), copy.last_txn_id()
    if (handles, last) != (result.handles, result.last_txn_id):
        raise BackupError(f"the copy holds {handles} handles up to transaction {last}, the snapshot "
                          f"{result.handles} up to {result.last_txn_id}")


def _clean_up(out: Path, created: bool) -> None:
    with contextlib.suppress(OSError):
        if created:
            shutil.rmtree(out)
            return
        for entry in out.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def run_backup(server_dir: Path, out: Path, lock_wait: float) -> tuple[BackupResult, list[str]]:
    db_directory = _check_paths(server_dir, out)
    created = not out.exists()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with open_server_store(server_dir, readonly=True) as store:
            result = backup_store(store, out / db_directory, lock_wait_seconds=lock_wait)
        copied = _copy_top_level_files(server_dir, out)
        _verify(out, result)
    except BaseException:
        _clean_up(out, created)
        raise
    return result, copied


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result, copied = run_backup(args.server_dir, args.out, args.lock_wait)
    except (BackupError, HandleError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    moment = ("one moment for all partitions" if result.consistent_across_partitions
              else "each partition a snapshot of its own (the store's write lock could not be taken)")
    print(f"backed up {args.server_dir} to {args.out}: {result.handles} handle(s) in {result.partitions} "
          f"partition(s), transaction log up to id {result.last_txn_id}, {result.bytes_written} bytes; "
          f"{moment}; files: {', '.join(copied)}")
    print(f"start a server from the copy with: hdl-server {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

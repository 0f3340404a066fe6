"""Online, point-in-time copies of the partitioned LMDB store (``hdl-backup``).

Each partition is its own LMDB environment. A copy made with LMDB's own copy function inside one read
transaction is a consistent snapshot of that partition (its handles, its slice of the transaction log and,
for partition 0, the homed prefixes), taken while writers go on: readers never block writers in LMDB.

Across partitions, the copies are of one single moment as well: the read transactions of all partitions
are begun while holding the store's cross-process writer lock (``write.lock``, which every change of an
``LmdbStore`` takes, in the server and in the offline tools), so no change can fall between two of them.
The lock is held only while the transactions begin (microseconds), not during the copy. The copy thus
holds exactly the changes up to one transaction id, without gaps, as a restored server needs for
replication. If the lock file cannot be opened (a read-only server directory), each partition is still a
snapshot of its own, taken one after the other, and ``BackupResult.consistent_across_partitions`` says so.

Long copies keep old pages of the live store in use until they end, so the live files may grow meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb

from hdlserver.errors import StorageError
from hdlserver.store.lmdb_store import LmdbStore, _Partition
from hdlserver.store.records import decode_int8

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock, partitions are copied one after the other
    fcntl = None  # type: ignore[assignment]

WRITE_LOCK_FILE = "write.lock"  # the lock LmdbStore takes around every change
DATA_FILE = "data.mdb"
LOCK_POLL_SECONDS = 0.05
_RESIZE_RETRIES = 20


@dataclass(frozen=True, slots=True)
class BackupResult:
    partitions: int
    handles: int  # records in the copy
    last_txn_id: int  # newest transaction-log id in the copy (0: empty log)
    bytes_written: int
    consistent_across_partitions: bool  # False: each partition is a snapshot of a slightly different moment


@dataclass(frozen=True, slots=True)
class _Snapshot:
    partition: _Partition
    txn: lmdb.Transaction
    handles: int
    last_txn_id: int


def _partitions(store: LmdbStore) -> list[_Partition]:
    # The store's partitions; this module is the store layer's own backup code, hence the private access.
    return list(store._parts)


@contextlib.contextmanager
def _writers_paused(store: LmdbStore, wait_seconds: float) -> Iterator[bool]:
    """Hold the store's cross-process writer lock; yields False when there is no lock to take."""
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(store.path / WRITE_LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageError(f"the store {store.path} has been locked by a writer for more than "
                                       f"{wait_seconds:g} s (a long bulk load?); try again later") from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _begin_snapshot(part: _Partition) -> _Snapshot:
    """A read transaction on one partition, with its handle count and newest log id as of that moment."""
    for _ in range(_RESIZE_RETRIES):
        try:
            txn = part.env.begin(buffers=False)
        except lmdb.MapResizedError:
            part.env.set_mapsize(0)  # the server grew the map: adopt its size (no transaction is open here)
            continue
        except lmdb.Error as e:
            raise StorageError(f"handle store partition {part.index}: {e}") from e
        try:
            handles = txn.stat(part.handles)["entries"]
            cursor = txn.cursor(part.txns)
            last = decode_int8(cursor.key(), "transaction key") if cursor.last() else 0
        except lmdb.Error as e:
            txn.abort()
            raise StorageError(f"handle store partition {part.index}: {e}") from e
        return _Snapshot(part, txn, handles, last)
    raise StorageError(f"handle store partition {part.index}: its map kept being resized; try again")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform or file system lets a directory be synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def backup_store(store: LmdbStore, dest_root: Path, *, lock_wait_seconds: float = 60.0) -> BackupResult:
    """Copy every partition of ``store`` into ``dest_root/part-N/data.mdb`` (compacted, synced), all as of
    one moment. ``dest_root`` must not exist yet or be empty. ``StorageError`` on failure."""
    parts = _partitions(store)
    dest_root.mkdir(parents=True, exist_ok=True)
    snapshots: list[_Snapshot] = []
    try:
        with _writers_paused(store, lock_wait_seconds) as consistent:
            for part in parts:
                snapshots.append(_begin_snapshot(part))
        written = 0
        for snap in snapshots:
            target = dest_root / snap.partition.path.name
            target.mkdir()
            data_path = target / DATA_FILE
            fd = os.open(data_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                snap.partition.env.copyfd(fd, compact=True, txn=snap.txn)
                os.fsync(fd)
            except lmdb.Error as e:
                raise StorageError(f"cannot copy handle store partition {snap.partition.index}: {e}") from e
            finally:
                os.close(fd)
            written += data_path.stat().st_size
            _fsync_dir(target)
            snap.txn.abort()
        _fsync_dir(dest_root)
    except OSError as e:
        raise StorageError(f"cannot write the backup in {dest_root}: {e.strerror or e}") from e
    finally:
        for snap in snapshots:
            snap.txn.abort()  # idempotent for the ones already finished
    return BackupResult(partitions=len(parts), handles=sum(s.handles for s in snapshots),
                        last_txn_id=max((s.last_txn_id for s in snapshots), default=0), bytes_written=written,
                        consistent_across_partitions=consistent)

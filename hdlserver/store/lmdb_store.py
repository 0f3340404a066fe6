"""The hash-partitioned LMDB handle store (design.md 4).

Layout under ``<server_dir>/<db_directory>/``: one LMDB environment per partition, ``part-0`` ...
``part-<N-1>``, each with the named DBs ``handles`` (case-folded handle -> record, see records.py),
``txns`` (its slice of the transaction log) and ``meta``; partition 0 also holds ``nas`` (homed
prefixes). N is fixed at creation and recorded in every partition's meta. A handle lives in partition
``site_hash(key, HASH_BY_ALL) % N``, the hash HS_SITE uses to pick a server, so a partition can later
become a server of its own.

Transaction ids are global. Every logged change runs under one writer lock (a thread lock plus an
advisory ``flock`` on ``write.lock``, so worker processes and the offline tools serialise too), takes
the next id from the newest id in the log, and commits its log record in the same LMDB transaction as
the change. Hence ids are committed in increasing order, without gaps or duplicates, and there is never
a change without its record or a record without its change. (This replaces a separate counter in the
meta DB, which would cost a second synced commit per change and could not order commits between
processes.) A future log-pruning job must keep each partition's newest record, as Java keeps the newest.

Threads: LMDB write transactions are begun and committed inside one call, on the calling thread.
Read transactions are short (one lookup, or one batch of a scan), so listings and dumps stream in
constant memory without pinning old snapshots. Growing the map (``MapFullError``) or adopting a map
another process grew (``MapResizedError``) needs no transaction open in this process; a small
readers/resizer gate per partition provides that.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import lmdb

from hdlserver.errors import StorageError
from hdlserver.store import replication_dates, reverse_index
from hdlserver.store.base import (
    TXN_ADD_HANDLE,
    TXN_DELETE_HANDLE,
    TXN_HOME_NA,
    TXN_MODIFY_HANDLE,
    TXN_UNHOME_NA,
    HandleExistsError,
    HandleNotFoundError,
    NotPrefixHandleError,
    ReadOnlyStoreError,
    StoredRecord,
    Transaction,
    UnstorableHandleError,
)
from hdlserver.store.record_cache import CachedRecord, RecordCache
from hdlserver.store.records import (
    HEADER_SIZE,
    all_public_read,
    decode_int8,
    decode_record,
    decode_txn,
    encode_int8,
    encode_txn,
    record_header,
    txn_key,
)
from hdlserver.wire.handles import HASH_BY_ALL, NA_PREFIX, fold_case, site_hash, to_prefix_handle
from hdlserver.wire.values import HandleValue, encode_values

try:
    import fcntl
except ImportError:  # Windows: in-process locking only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PARTITIONS = 4
MAX_PARTITIONS = 256
DEFAULT_DB_DIRECTORY = "hdldb"
DEFAULT_MAP_SIZE = 256 << 20  # per partition; address space only: the file grows as data is written
MAX_MAP_SIZE = 1 << 44
STORE_FORMAT = 1

_DB_HANDLES = b"handles"
_DB_TXNS = b"txns"
_DB_META = b"meta"
_DB_NAS = b"nas"
_DB_DATES = b"repl-dates"  # replication dates of the partition's handles (replication_dates.py)
_DB_NA_DATES = b"repl-na-dates"  # partition 0: replication dates of homed prefixes
_DB_OTHER_TXNS = b"other-txns"  # partition 0: copies of pulled queues (replication_keep_other_transactions)
_META_FORMAT = b"format"
_META_PARTITIONS = b"partitions"
_META_INDEX = b"partition"
_REPL_MARK = b"repl:"  # partition 0 meta: id up to which a pulled queue is applied
_REPL_DATE = b"repl-date:"  # ... and that transaction's date
_REPL_PART_MARK = b"repl-part:"  # every partition's meta: newest id of the queue applied in it
_MAX_DBS = 12
_MAX_READERS = 254
_SCAN_BATCH = 256  # entries read per short read transaction when streaming
_WRITE_BATCH = 512  # records per write transaction in bulk loads
NEVER_READ = -1  # a snapshot id no read transaction has (LMDB's ids start at 0)


class _ReaderGate:
    """Many readers or one resizer: ``set_mapsize`` must not run while this process has a transaction open.

    Readers take the plain lock twice; they only wait on the condition while a resize is under way. A
    single lookup (the resolution path) instead holds the lock for its whole read with ``hold``/``release``:
    one lock round trip instead of two, and a resizer cannot begin in between.
    """

    __slots__ = ("_cond", "_exclusive", "_lock", "_readers")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._readers = 0
        self._exclusive = False

    def enter(self) -> None:
        with self._lock:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1

    def leave(self) -> None:
        with self._lock:
            self._readers -= 1
            if self._exclusive and not self._readers:
                self._cond.notify_all()

    def hold(self) -> bool:
        """Take the lock for one short read; False (nothing held: use ``enter``) while a resize is pending."""
        self._lock.acquire()
        if self._exclusive:
            self._lock.release()
            return False
        return True

    def release(self) -> None:
        self._lock.release()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True  # new readers wait from here on, so the resizer cannot starve
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._lock:
                self._exclusive = False
                self._cond.notify_all()


class _Partition:
    """One LMDB environment and its named DBs; every LMDB error leaves here as ``StorageError``."""

    def __init__(self, index: int, path: Path, *, readonly: bool, create: bool, map_size: int, sync: bool
                 ) -> None:
        self.index = index
        self.path = path
        self.readonly = readonly
        self.write_lock = threading.Lock()
        self.gate = _ReaderGate()
        try:
            self.env = lmdb.open(str(path), map_size=map_size, subdir=True, readonly=readonly, create=create,
                                 sync=sync, metasync=sync, readahead=False, max_dbs=_MAX_DBS,
                                 max_readers=_MAX_READERS)
        except lmdb.Error as e:
            raise StorageError(f"cannot open handle store partition {path}: {e}") from e
        try:
            self.handles = self.env.open_db(_DB_HANDLES, create=not readonly)
            self.txns = self.env.open_db(_DB_TXNS, create=not readonly)
            self.meta = self.env.open_db(_DB_META, create=not readonly)
            self.nas = self.env.open_db(_DB_NAS, create=not readonly) if index == 0 else None
        except lmdb.Error as e:
            self.env.close()
            raise StorageError(f"handle store partition {path} is incomplete: {e}") from e
        self.max_key_size = self.env.max_key_size()
        self.revidx = self._open_reverse_index(readonly)
        self.dates = self._open_optional(_DB_DATES, readonly)
        self.na_dates = self._open_optional(_DB_NA_DATES, readonly) if index == 0 else None
        self.other_txns = self._open_optional(_DB_OTHER_TXNS, readonly) if index == 0 else None

    def _open_optional(self, name: bytes, readonly: bool) -> lmdb._Database | None:
        """A DB later versions added; None when a store opened read-only predates it."""
        try:
            return self.env.open_db(name, create=not readonly)
        except lmdb.NotFoundError:
            return None
        except lmdb.Error as e:
            self.env.close()
            raise StorageError(f"handle store partition {self.path}: cannot open {name.decode()}: {e}") from e

    def _open_reverse_index(self, readonly: bool) -> lmdb._Database | None:
        """The reverse-lookup DB; None when a store opened read-only predates it (it is built at the first
        read-write open)."""
        try:
            return self.env.open_db(reverse_index.DB_NAME, create=not readonly, dupsort=True)
        except lmdb.NotFoundError:
            return None
        except lmdb.Error as e:
            self.env.close()
            raise StorageError(f"handle store partition {self.path}: cannot open the reverse index: {e}") from e

    def put_record(self, txn: lmdb.Transaction, key: bytes, record: bytes) -> None:
        """Store a handle record and move its reverse-index entries in the same write transaction: every
        record write goes through here or ``delete_record``, so no path can leave the index behind."""
        old = txn.get(key, db=self.handles)
        old_keys = set() if old is None else self._index_keys(key, old)
        new_keys = reverse_index.index_keys(memoryview(record)[HEADER_SIZE:], self.max_key_size)
        txn.put(key, record, db=self.handles)
        reverse_index.apply_change(txn, self.revidx, key, old_keys, new_keys)

    def delete_record(self, txn: lmdb.Transaction, key: bytes) -> bool:
        """Delete a handle record and its reverse-index entries; False when there was none."""
        old = txn.get(key, db=self.handles)
        if old is None:
            return False
        reverse_index.apply_change(txn, self.revidx, key, self._index_keys(key, old), set())
        return txn.delete(key, db=self.handles)

    def _index_keys(self, key: bytes, raw: bytes | memoryview) -> set[bytes]:
        return reverse_index.index_keys(decode_record(key, raw).encoded_values, self.max_key_size)

    def record_values(self, key: bytes, raw: bytes) -> tuple[HandleValue, ...]:
        return decode_record(key, raw).values()

    def read(self, fn: Callable[[lmdb.Transaction], T], *, buffers: bool = False) -> T:
        """Run ``fn`` in a short read transaction. With ``buffers`` it sees memoryviews into the map."""
        while True:
            self.gate.enter()
            try:
                with self.env.begin(buffers=buffers) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                pass  # another process grew the map: adopt it outside the gate, then retry
            except lmdb.Error as e:
                raise StorageError(f"handle store partition {self.index}: {e}") from e
            finally:
                self.gate.leave()
            self._adopt_grown_map()

    def lookup(self, db: lmdb._Database, key: bytes, decode: Callable[[bytes, memoryview], T]) -> T | None:
        """``decode(key, value)`` of one entry, or None: ``read`` specialised for the resolution path."""
        return self.lookup_since(db, key, decode, NEVER_READ, None)[1]

    def snapshot_id(self) -> int:
        """Id of the newest write transaction committed to this environment, by any process (LMDB numbers
        them in commit order): what a read transaction begun now sees."""
        return self.lookup_since(self.meta, None, _present, NEVER_READ, None)[0]

    def lookup_since(self, db: lmdb._Database, key: bytes | None, decode: Callable[[bytes, memoryview], T],
                     txn_id: int, previous: T | None) -> tuple[int, T | None]:
        """(id of the read snapshot, ``decode(key, value)`` or None). ``previous`` is what an earlier call
        returned for ``key`` from snapshot ``txn_id``: if the new snapshot has the same id, nothing was
        committed to this environment since, by any process, and ``previous`` is returned unread (as it is
        when ``key`` is None: only the id is wanted)."""
        gate = self.gate
        while True:
            held = gate.hold()
            if not held:
                gate.enter()
            try:
                txn = self.env.begin(db, None, False, True)  # (db, parent, write, buffers): keywords cost here
                try:
                    snapshot = txn.id()
                    if snapshot == txn_id or key is None:
                        return snapshot, previous
                    raw = txn.get(key)
                    return snapshot, (None if raw is None else decode(key, raw))
                finally:
                    txn.abort()
            except lmdb.MapResizedError:
                pass
            except lmdb.Error as e:
                raise StorageError(f"handle store partition {self.index}: {e}") from e
            finally:
                if held:
                    gate.release()
                else:
                    gate.leave()
            self._adopt_grown_map()

    def write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in a write transaction and commit it (synced); ``fn`` reruns after a map resize."""
        if self.readonly:
            raise ReadOnlyStoreError(f"the handle store at {self.path.parent} is open read-only")
        with self.write_lock:
            while True:
                try:
                    with self.env.begin(write=True, buffers=True) as txn:
                        return fn(txn)
                except lmdb.MapFullError:
                    self._set_map_size(self.env.info()["map_size"] * 2)
                except lmdb.MapResizedError:
                    self._set_map_size(0)
                except lmdb.Error as e:
                    raise StorageError(f"handle store partition {self.index}: {e}") from e

    def _adopt_grown_map(self) -> None:
        """Take the map size another process set; waits for this process's writer, which blocks resizing."""
        with self.write_lock:
            self._set_map_size(0)

    def _set_map_size(self, size: int) -> None:
        """Resize the map (0: adopt the size on disk). The caller holds ``write_lock``, so no write
        transaction is open; the gate waits for open read transactions to end."""
        if size > MAX_MAP_SIZE:
            raise StorageError(f"handle store partition {self.index}: map would exceed {MAX_MAP_SIZE} bytes")
        try:
            with self.gate.exclusive():
                self.env.set_mapsize(size)
        except lmdb.Error as e:
            raise StorageError(f"handle store partition {self.index}: cannot resize the map: {e}") from e
        if size:
            log.info("handle store partition %d: map grown to %d bytes", self.index, size)

    def scan(self, db: lmdb._Database, decode: Callable[[bytes, bytes], T], *, start: bytes = b"",
             prefix: bytes = b"", stop: bytes | None = None, keep: Callable[[bytes], bool] | None = None
             ) -> Iterator[T]:
        """Decoded entries with ``key >= start``, ``key`` starting with ``prefix`` and ``key <= stop``, in key
        order, read ``_SCAN_BATCH`` at a time in separate short read transactions (memory stays bounded and
        no snapshot is pinned while the consumer is slow). ``keep`` filters keys without ending the scan."""
        after: bytes | None = None

        def batch(txn: lmdb.Transaction) -> tuple[list[T], bytes | None, bool]:
            cur = txn.cursor(db)
            if after is not None:
                ok = cur.set_range(after)
                if ok and cur.key() == after:
                    ok = cur.next()
            else:
                ok = cur.set_range(start) if start else cur.first()
            out: list[T] = []
            last = None
            for _ in range(_SCAN_BATCH):
                if not ok:
                    return out, last, True
                key = cur.key()
                if not key.startswith(prefix) or (stop is not None and key > stop):
                    return out, last, True
                last = key
                if keep is None or keep(key):
                    out.append(decode(key, cur.value()))
                ok = cur.next()
            return out, last, not ok

        while True:
            out, last, finished = self.read(batch)
            yield from out
            if finished:
                return
            after = last

    def last_txn_id(self) -> int:
        def newest(txn: lmdb.Transaction) -> int:
            cur = txn.cursor(self.txns)
            return decode_int8(cur.key(), "transaction key") if cur.last() else 0

        return self.read(newest)

    def read_meta(self) -> dict[bytes, int]:
        def entries(txn: lmdb.Transaction) -> dict[bytes, int]:
            return {k: decode_int8(v, f"meta entry {k!r}") for k, v in txn.cursor(self.meta)}

        return self.read(entries)

    def write_meta(self, values: dict[bytes, int]) -> None:
        def put(txn: lmdb.Transaction) -> None:
            for k, v in values.items():
                txn.put(k, encode_int8(v), db=self.meta)

        self.write(put)

    def close(self) -> None:
        self.env.close()


@dataclass(frozen=True, slots=True)
class _Entry:
    handle: bytes  # as given, for error messages
    key: bytes
    encoded_values: bytes
    all_public_read: bool


class LmdbStore:
    """The Store protocol (hdlserver.store.base) over N LMDB partitions; open it with ``open_store``."""

    def __init__(self, root: Path, partitions: list[_Partition], *, case_sensitive: bool, readonly: bool,
                 clock: Callable[[], float]) -> None:
        self.path = root
        self.case_sensitive = case_sensitive
        self.readonly = readonly
        self._parts = partitions
        self._count = len(partitions)
        self._clock = clock
        self._max_key_size = min(p.max_key_size for p in partitions)
        self._write_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._closed = False
        self._date_priority: int | None = None  # set by track_replication_dates
        self._txn_log_writable = True
        self.record_cache = RecordCache()  # get_record's; replaceable (tests use small bounds)
        if not readonly and fcntl is not None:
            try:
                self._lock_fd = os.open(root / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                for p in partitions:
                    p.close()
                raise StorageError(f"cannot open the store's write lock in {root}: {e.strerror or e}") from e

    @property
    def partitions(self) -> int:
        return self._count

    # -- keys and partitions

    def storage_key(self, handle: bytes) -> bytes:
        key = fold_case(handle, self.case_sensitive)
        if not key:
            raise UnstorableHandleError(handle, "Empty handle")
        if len(key) > self._max_key_size:
            raise UnstorableHandleError(
                handle, f"Handle too long for storage ({len(key)} bytes, at most {self._max_key_size})")
        return key

    def _lookup_key(self, handle: bytes) -> bytes | None:
        """Storage key for reads; a handle that cannot be stored simply does not exist."""
        key = fold_case(handle, self.case_sensitive)
        return key if 0 < len(key) <= self._max_key_size else None

    def partition_index(self, key: bytes) -> int:
        """The partition of a storage key (the HS_SITE server hash over the whole handle)."""
        return site_hash(key, HASH_BY_ALL) % self._count if self._count > 1 else 0

    def _partition(self, key: bytes) -> _Partition:
        if self._closed:
            raise StorageError("the handle store is closed")
        return self._parts[self.partition_index(key)]

    def _prefix_key(self, prefix_handle: bytes) -> bytes:
        key = to_prefix_handle(prefix_handle)
        if not key.startswith(NA_PREFIX) or len(key) == len(NA_PREFIX):
            raise NotPrefixHandleError(prefix_handle)
        if len(key) > self._max_key_size:
            raise UnstorableHandleError(prefix_handle, "Prefix handle too long for storage")
        return key

    # -- reads

    def get_record(self, handle: bytes) -> StoredRecord | None:
        """Through ``record_cache``: a repeated lookup costs one empty read transaction while the handle's
        partition has no new commit (record_cache.py tells why that is never stale)."""
        if self._closed:
            raise StorageError("the handle store is closed")
        cached = self.record_cache.get(handle)
        if cached is None:
            key = self._lookup_key(handle)
            if key is None:
                return None
            index = self.partition_index(key)
            part = self._parts[index]
            txn_id, record = part.lookup_since(part.handles, key, decode_record, NEVER_READ, None)
        else:
            index, key, known, record = cached
            part = self._parts[index]
            txn_id, record = part.lookup_since(part.handles, key, decode_record, known, record)
            if txn_id == known:
                return record
        self.record_cache.put(handle, CachedRecord(index, key, txn_id, record))
        return record

    def get_values(self, handle: bytes) -> tuple[HandleValue, ...] | None:
        record = self.get_record(handle)
        return None if record is None else record.values()

    def exists(self, handle: bytes) -> bool:
        key = self._lookup_key(handle)
        if key is None:
            return False
        part = self._partition(key)
        return part.lookup(part.handles, key, _present) is not None

    def count_handles(self) -> int:
        if self._closed:
            raise StorageError("the handle store is closed")
        return sum(p.read(lambda txn, p=p: txn.stat(p.handles)["entries"]) for p in self._parts)

    def iter_handles(self) -> Iterator[bytes]:
        return self._merge_keys(b"", None)

    def list_handles(self, prefix: bytes) -> Iterator[bytes]:
        if prefix[:10].upper() == NA_PREFIX + NA_PREFIX:
            wanted = NA_PREFIX + prefix[10:].upper() + b"."  # derived prefixes 0.NA/P.*
        else:
            wanted = self._prefix_key(prefix)[len(NA_PREFIX) :] + b"/"
        if self.case_sensitive and wanted.startswith(NA_PREFIX):
            # Case-sensitive keys keep the suffix's case, and for 0.NA/P.x the suffix holds P:
            # scan every prefix handle and compare ignoring case (server.md 10.1).
            return self._merge_keys(NA_PREFIX, lambda key: key.upper().startswith(wanted))
        return self._merge_keys(wanted, None)

    def _merge_keys(self, prefix: bytes, keep: Callable[[bytes], bool] | None) -> Iterator[bytes]:
        if self._closed:
            raise StorageError("the handle store is closed")
        scans = [p.scan(p.handles, _key_only, start=prefix, prefix=prefix, keep=keep) for p in self._parts]
        return heapq.merge(*scans)

    def iter_records(self) -> Iterator[StoredRecord]:
        if self._closed:
            raise StorageError("the handle store is closed")
        scans = [p.scan(p.handles, decode_record) for p in self._parts]
        return heapq.merge(*scans, key=_record_handle)

    def is_homed(self, prefix_handle: bytes) -> bool:
        try:
            key = self._prefix_key(prefix_handle)
        except (NotPrefixHandleError, UnstorableHandleError):
            return False
        part = self._partition0()
        return part.lookup(part.nas, key, _present) is not None

    def homed_prefixes(self) -> list[bytes]:
        part = self._partition0()
        return list(part.scan(part.nas, _key_only))

    def snapshot_of(self, partition: int) -> int:
        """The id of a new read snapshot of ``partition``: unchanged while nothing was committed there."""
        return self._parts[partition].snapshot_id()

    def homed_version(self) -> int:
        """Changes whenever the homed prefixes may have (any commit to partition 0, by any process)."""
        return self._partition0().snapshot_id()

    def last_txn_id(self) -> int:
        if self._closed:
            raise StorageError("the handle store is closed")
        return max(p.last_txn_id() for p in self._parts)

    def transactions_since(self, txn_id: int) -> Iterator[Transaction]:
        # The bound is fixed now: every id up to it is committed, so no partition's later batch can
        # reveal an id below one already yielded (ids are committed in order under the writer lock).
        upper = self.last_txn_id()
        if txn_id >= upper:
            return iter(())
        first = txn_key(max(txn_id, 0) + 1)
        stop = txn_key(upper)
        scans = [p.scan(p.txns, decode_txn, start=first, stop=stop) for p in self._parts]
        return heapq.merge(*scans, key=_txn_id)

    def _partition0(self) -> _Partition:
        if self._closed:
            raise StorageError("the handle store is closed")
        return self._parts[0]

    # -- writes

    @contextlib.contextmanager
    def _writer(self) -> Iterator[None]:
        """Serialise every change of this store across threads and processes (see the module docstring)."""
        if self.readonly:
            raise ReadOnlyStoreError(f"the handle store at {self.path} is open read-only")
        if self._closed:
            raise StorageError("the handle store is closed")
        with self._write_lock:
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def refuse_txn_log_writes(self) -> None:
        """``read_only_txn_queue``: every change that would be logged fails (RC 2 at the server) and changes
        nothing; replicated and unlogged writes still work, and the log is still served."""
        self._txn_log_writable = False

    # -- replication dates (replication_dates.py)

    def track_replication_dates(self, own_priority: int) -> None:
        """Keep replication dates from now on (a replicating primary, or a server with handle-based or
        proxied sources): logged changes get adjusted dates and record ``own_priority``, pulled ones go
        through the conflict rule. Called again when the own priority changes (sources re-read)."""
        self._date_priority = own_priority

    @property
    def tracks_replication_dates(self) -> bool:
        return self._date_priority is not None

    def _dated(self, txn: lmdb.Transaction, part: _Partition, action: int, key: bytes, now_ms: int) -> int:
        """The date of a change logged here, recorded as its replication date when dates are tracked."""
        if self._date_priority is None:
            return now_ms
        db = self._parts[0].na_dates if action in (TXN_HOME_NA, TXN_UNHOME_NA) else part.dates
        raw = txn.get(key, db=db)
        date_ms = replication_dates.adjusted_date(None if raw is None else replication_dates.decode_date(raw), now_ms)
        txn.put(key, replication_dates.encode_date(date_ms, self._date_priority), db=db)
        return date_ms

    def replication_dates(self, prefixes: bool, after: bytes | None = None) -> Iterator[tuple[bytes, int, int]]:
        """(key, date ms, priority) of every handle (or homed-prefix) replication date, in key order across
        partitions (so a resumed dump can continue after a key), after ``after`` when given; streamed."""
        parts = [self._partition0()] if prefixes else self._parts
        scans = []
        for part in parts:
            db = part.na_dates if prefixes else part.dates
            if db is not None:
                scans.append(part.scan(db, _date_entry, start=after or b"",
                                       keep=None if after is None else after.__lt__))
        return heapq.merge(*scans)

    def set_replication_dates(self, entries: Iterable[tuple[bool, bytes, int, int]]) -> int:
        """Store (is prefix, handle, date ms, priority) entries as received in a dump; returns the count."""
        by_part: dict[int, list[tuple[bool, bytes, bytes]]] = {}
        for prefix, handle, date_ms, priority in entries:
            try:
                key = self._prefix_key(handle) if prefix else self.storage_key(handle)
            except (UnstorableHandleError, NotPrefixHandleError) as e:
                log.warning("replication date for %r cannot be stored here, skipped: %s", handle, e)
                continue
            index = 0 if prefix else self.partition_index(key)
            by_part.setdefault(index, []).append((prefix, key, replication_dates.encode_date(date_ms, priority)))

        def put(txn: lmdb.Transaction, part: _Partition, items: list[tuple[bool, bytes, bytes]]) -> None:
            for prefix, key, entry in items:
                txn.put(key, entry, db=part.na_dates if prefix else part.dates)

        with self._writer():
            for index in sorted(by_part):
                self._parts[index].write(lambda txn, part=self._parts[index], items=by_part[index]:
                                         put(txn, part, items))
        return sum(len(items) for items in by_part.values())

    def _put_txn(self, txn: lmdb.Transaction, part: _Partition, txn_id: int, action: int, key: bytes,
                 date_ms: int) -> None:
        if not self._txn_log_writable:
            # Java fails the append (RC 2 "Internal Error") before storage is changed; so does the write here
            raise StorageError("the transaction queue is read-only (read_only_txn_queue)")
        record = Transaction(txn_id, action, key, date_ms, site_hash(key, HASH_BY_ALL))
        if not txn.put(txn_key(txn_id), encode_txn(record), overwrite=False, db=part.txns):
            raise StorageError(f"transaction id {txn_id} is already in the log")

    def _change(self, part: _Partition, key: bytes, log: bool,
                mutate: Callable[[lmdb.Transaction, int], tuple[int | None, T]]) -> T:
        """Apply ``mutate(txn, now_seconds) -> (action or None when nothing changed, result)`` and, when
        ``log`` and something changed, its transaction record, in one LMDB write transaction."""
        with self._writer():
            txn_id = self.last_txn_id() + 1 if log else 0
            now_ms = self._now_ms()

            def body(txn: lmdb.Transaction) -> T:
                action, result = mutate(txn, now_ms // 1000)
                if log and action is not None:
                    self._put_txn(txn, part, txn_id, action, key, self._dated(txn, part, action, key, now_ms))
                return result

            return part.write(body)

    def _entry(self, handle: bytes, values: Sequence[HandleValue]) -> _Entry:
        return _Entry(handle, self.storage_key(handle), encode_values(values), all_public_read(values))

    def _put_entries(self, part: _Partition, entries: Sequence[_Entry], *, overwrite: bool, log: bool,
                     first_txn_id: int, now_ms: int) -> list[bool]:
        """Write records (and their log records, ids from ``first_txn_id``) in one write transaction;
        returns, per entry, whether it replaced an existing record. Call under ``_writer``."""

        def body(txn: lmdb.Transaction) -> list[bool]:
            replaced = []
            for i, e in enumerate(entries):
                existed = txn.get(e.key, db=part.handles) is not None
                if existed and not overwrite:
                    raise HandleExistsError(e.handle)
                part.put_record(txn, e.key, record_header(e.all_public_read, now_ms // 1000) + e.encoded_values)
                if log:
                    action = TXN_MODIFY_HANDLE if existed else TXN_ADD_HANDLE
                    self._put_txn(txn, part, first_txn_id + i, action, e.key,
                                  self._dated(txn, part, action, e.key, now_ms))
                replaced.append(existed)
            return replaced

        return part.write(body)

    def create_handle(self, handle: bytes, values: Sequence[HandleValue], *, overwrite: bool = False,
                      log: bool = True) -> bool:
        entry = self._entry(handle, values)
        part = self._partition(entry.key)
        with self._writer():
            first = self.last_txn_id() + 1 if log else 0
            (replaced,) = self._put_entries(part, [entry], overwrite=overwrite, log=log, first_txn_id=first,
                                            now_ms=self._now_ms())
            return replaced

    def create_handles(self, items: Iterable[tuple[bytes, Sequence[HandleValue]]], *, overwrite: bool = False,
                       log: bool = True) -> int:
        by_part: dict[int, list[_Entry]] = {}
        seen: set[bytes] = set()
        for handle, values in items:
            entry = self._entry(handle, values)
            if entry.key in seen and not overwrite:
                raise HandleExistsError(handle)
            seen.add(entry.key)
            by_part.setdefault(self.partition_index(entry.key), []).append(entry)
        written = 0
        with self._writer():
            if not overwrite:
                for index, entries in by_part.items():
                    for at in range(0, len(entries), _WRITE_BATCH):
                        existing = self._first_existing(self._parts[index], entries[at : at + _WRITE_BATCH])
                        if existing is not None:
                            raise HandleExistsError(existing.handle)
            next_id = self.last_txn_id() + 1
            now_ms = self._now_ms()
            # Partition by partition, so ids are committed in increasing order (transactions_since needs it).
            for index in sorted(by_part):
                entries = by_part[index]
                for at in range(0, len(entries), _WRITE_BATCH):
                    chunk = entries[at : at + _WRITE_BATCH]
                    self._put_entries(self._parts[index], chunk, overwrite=overwrite, log=log,
                                      first_txn_id=next_id, now_ms=now_ms)
                    next_id += len(chunk)
                    written += len(chunk)
        return written

    @staticmethod
    def _first_existing(part: _Partition, entries: Sequence[_Entry]) -> _Entry | None:
        def check(txn: lmdb.Transaction) -> _Entry | None:
            for e in entries:
                if txn.get(e.key, db=part.handles) is not None:
                    return e
            return None

        return part.read(check, buffers=True)

    def replace_values(self, handle: bytes, values: Sequence[HandleValue], *, log: bool = True) -> None:
        entry = self._entry(handle, values)
        part = self._partition(entry.key)

        def mutate(txn: lmdb.Transaction, now: int) -> tuple[int | None, None]:
            if txn.get(entry.key, db=part.handles) is None:
                raise HandleNotFoundError(handle)
            part.put_record(txn, entry.key, record_header(entry.all_public_read, now) + entry.encoded_values)
            return TXN_MODIFY_HANDLE, None

        self._change(part, entry.key, log, mutate)

    def delete_handle(self, handle: bytes, *, log: bool = True) -> bool:
        key = self._lookup_key(handle)
        if key is None:
            return False
        part = self._partition(key)

        def mutate(txn: lmdb.Transaction, _now: int) -> tuple[int | None, bool]:
            deleted = part.delete_record(txn, key)
            return (TXN_DELETE_HANDLE if deleted else None), deleted

        return self._change(part, key, log, mutate)

    def home_prefix(self, prefix_handle: bytes, *, log: bool = True) -> None:
        key = self._prefix_key(prefix_handle)
        part = self._partition0()

        def mutate(txn: lmdb.Transaction, now: int) -> tuple[int | None, None]:
            txn.put(key, encode_int8(now), db=part.nas)
            return TXN_HOME_NA, None

        self._change(part, key, log, mutate)

    def unhome_prefix(self, prefix_handle: bytes, *, log: bool = True) -> bool:
        key = self._prefix_key(prefix_handle)
        part = self._partition0()

        def mutate(txn: lmdb.Transaction, _now: int) -> tuple[int | None, bool]:
            removed = txn.delete(key, db=part.nas)
            return (TXN_UNHOME_NA if removed else None), removed

        return self._change(part, key, log, mutate)

    def prune_transactions(self, older_than_ms: int) -> int:
        """Delete log records dated before ``older_than_ms`` (``txnlog_num_days_to_keep``), oldest first and
        stopping at the first newer one, keeping each partition's newest record so that ``last_txn_id``
        never goes back; returns how many were deleted."""
        deleted = 0
        with self._writer():
            for part in self._parts:
                deleted += self._prune_partition(part, older_than_ms)
            deleted += self._prune_other_queues(self._parts[0], older_than_ms)
        return deleted

    @staticmethod
    def _prune_other_queues(part: _Partition, older_than_ms: int) -> int:
        """The same rule for the kept copies of pulled queues: per queue, oldest first, never its newest."""
        if part.other_txns is None:
            return 0
        doomed: list[bytes] = []
        deleted = 0

        def remove(txn: lmdb.Transaction) -> None:
            for key in doomed:
                txn.delete(key, db=part.other_txns)

        previous: tuple[bytes, bytes, int] | None = None  # (queue head, key, date) of the entry before
        done: set[bytes] = set()  # queues whose oldest kept entry is recent enough
        for key, raw in part.scan(part.other_txns, _key_and_raw):
            head = key[: 2 + int.from_bytes(key[:2], "big")]
            if previous is not None and previous[0] == head and head not in done:
                if previous[2] < older_than_ms:
                    doomed.append(previous[1])  # not its queue's newest: an entry of the same queue follows
                else:
                    done.add(head)
            previous = (head, key, decode_txn(key[len(head):], raw).date_ms)
            if len(doomed) >= _WRITE_BATCH:
                part.write(remove)
                deleted += len(doomed)
                doomed.clear()
        if doomed:
            part.write(remove)
            deleted += len(doomed)
        return deleted

    @staticmethod
    def _prune_partition(part: _Partition, older_than_ms: int) -> int:
        newest = part.last_txn_id()
        deleted = 0
        while True:
            doomed: list[bytes] = []
            for t in part.scan(part.txns, decode_txn):
                if t.date_ms >= older_than_ms or t.txn_id == newest or len(doomed) == _WRITE_BATCH:
                    break
                doomed.append(txn_key(t.txn_id))
            if not doomed:
                return deleted

            def remove(txn: lmdb.Transaction, keys: list[bytes] = doomed) -> None:
                for key in keys:
                    txn.delete(key, db=part.txns)

            part.write(remove)
            deleted += len(doomed)

    # -- reverse lookup (/hrls/handles)

    def build_reverse_index(self) -> int:
        """(Re)build the reverse index of each partition whose meta lacks the current index version (a store
        made before the index existed); returns how many records were indexed. Runs under the writer lock,
        so no change of any process falls between its batches; an interrupted build restarts from scratch."""
        indexed = 0
        with self._writer():
            for part in self._parts:
                if part.read_meta().get(reverse_index.META_VERSION) == reverse_index.INDEX_VERSION:
                    continue
                started = time.monotonic()
                part.write(lambda txn, part=part: txn.drop(part.revidx, delete=False))
                count = self._index_partition(part)
                part.write_meta({reverse_index.META_VERSION: reverse_index.INDEX_VERSION})
                log.info("handle store partition %d: reverse index built for %d records in %.1f s", part.index,
                         count, time.monotonic() - started)
                indexed += count
        return indexed

    @staticmethod
    def _index_partition(part: _Partition) -> int:
        after = b""
        count = 0
        while True:
            records = list(itertools.islice(part.scan(part.handles, _key_and_raw, start=after,
                                                      keep=lambda key, after=after: key != after), _WRITE_BATCH))
            if not records:
                return count

            def put(txn: lmdb.Transaction, records: list[tuple[bytes, bytes]] = records) -> None:
                for key, raw in records:
                    reverse_index.apply_change(txn, part.revidx, key, set(), part._index_keys(key, raw))

            part.write(put)
            count += len(records)
            after = records[-1][0]

    def search(self, conditions: Sequence[reverse_index.Condition], *, prefix: bytes | None = None,
               limit: int, offset: int = 0, max_scanned: int) -> list[bytes]:
        """Stored names of the handles that satisfy every condition (``reverse_index.Condition``), in index
        order (driving condition's data, then handle), ``offset`` skipped, at most ``limit``. ``prefix``
        restricts to handles under that prefix. ``SearchTooBroadError`` once more than ``max_scanned`` index
        entries would be walked."""
        if self._closed:
            raise StorageError("the handle store is closed")
        if any(p.revidx is None or p.read_meta().get(reverse_index.META_VERSION) != reverse_index.INDEX_VERSION
               for p in self._parts):
            raise StorageError(f"the handle store at {self.path} has no reverse index yet: open it read-write once")
        parts = [reverse_index.PartitionIndex(p.read, p.revidx, p.handles, p.max_key_size, p.record_values)
                 for p in self._parts]
        ordered = reverse_index.order_conditions(conditions, parts)
        handle_prefix = b"" if prefix is None else fold_case(prefix, self.case_sensitive) + b"/"
        budget = [max_scanned]
        scans = [reverse_index.scan_partition(p, ordered, handle_prefix, budget) for p in parts]
        found: list[bytes] = []
        seen: set[bytes] = set()
        for _key, handle in heapq.merge(*scans):
            if handle in seen:
                continue
            seen.add(handle)
            if len(seen) > offset:
                found.append(handle)
                if len(found) >= limit:
                    break
        return found

    # -- replication (a mirror applying pulled transactions; hdlserver/replication/mirror.py)

    def replication_mark(self, queue: bytes) -> tuple[int, int]:
        """(txn id, date ms) up to which every transaction of ``queue`` is applied here; (-1, 0) if none."""
        meta = self._partition0().read_meta()
        return meta.get(_REPL_MARK + queue, -1), meta.get(_REPL_DATE + queue, 0)

    def replication_marks(self) -> dict[bytes, tuple[int, int]]:
        """Every pulled queue's (txn id, date ms) mark, by queue name."""
        meta = self._partition0().read_meta()
        return {name[len(_REPL_MARK):]: (mark, meta.get(_REPL_DATE + name[len(_REPL_MARK):], 0))
                for name, mark in meta.items() if name.startswith(_REPL_MARK)}

    def other_queue_transactions(self, queue: bytes, after: int = -1) -> Iterator[Transaction]:
        """The kept copy of a pulled queue (see ``apply_replicated``), ids after ``after``, in id order."""
        part = self._partition0()
        if part.other_txns is None:
            return iter(())
        head = _other_queue_key(queue, 0)[:-8]
        return part.scan(part.other_txns, _other_txn_decoder(len(head)), start=_other_queue_key(queue, after + 1),
                         prefix=head)

    def apply_replicated(self, queue: bytes, txns: Sequence[ReplicatedTxn], priority: int = 0, *,
                         keep_copies: bool = False) -> int:
        """Apply pulled transactions (never logged here), given in id order; returns how many were applied.

        Transactions not ``accepted`` (``replication_accept_prefixes``) are not applied. With
        ``keep_copies`` every transaction is also kept in this store's copy of ``queue``, in the same LMDB
        transaction as the queue's mark, so this server can pass them on (proxied mirroring).

        When replication dates are tracked, a transaction goes through the conflict rule with the
        source's ``priority`` (replication_dates.py), and the dates of those applied are recorded in the
        same LMDB transaction as the change; one that loses is skipped (not counted).

        Each partition's share goes into one LMDB transaction together with that partition's mark (the
        newest id of ``queue`` it holds); then partition 0 records the queue's mark for the whole batch.
        A transaction at or below its partition's mark is skipped, so a batch re-sent after a crash
        between two partitions' commits completes without applying anything twice or losing anything.
        Create/update store the values whole."""
        if not txns:
            return 0
        by_part: dict[int, list[tuple[ReplicatedTxn, bytes]]] = {}
        for t in txns:
            if not t.accepted:
                continue
            try:
                if t.action in (TXN_HOME_NA, TXN_UNHOME_NA):
                    key, index = self._prefix_key(t.handle), 0
                else:
                    key = self.storage_key(t.handle)
                    index = self.partition_index(key)
            except (UnstorableHandleError, NotPrefixHandleError) as e:
                # skipped rather than retried forever: no later round could store it either
                log.error("replicated txn %d for %r cannot be stored here, skipped: %s", t.txn_id, t.handle, e)
                continue
            by_part.setdefault(index, []).append((t, key))
        applied = 0
        with self._writer():
            now = self._now_ms() // 1000
            dated = None if self._date_priority is None else priority
            for index in sorted(by_part):
                applied += self._parts[index].write(
                    lambda txn, part=self._parts[index], items=by_part[index]: _apply_share(
                        txn, part, queue, items, now, dated, self._parts[0].na_dates))
            last = txns[-1]

            def mark(txn: lmdb.Transaction, part: _Partition = self._parts[0]) -> None:
                txn.put(_REPL_MARK + queue, encode_int8(last.txn_id), db=part.meta)
                txn.put(_REPL_DATE + queue, encode_int8(last.date_ms), db=part.meta)
                if keep_copies and part.other_txns is not None:
                    for t in txns:
                        copy = Transaction(t.txn_id, t.action, t.handle, t.date_ms, site_hash(t.handle, HASH_BY_ALL))
                        txn.put(_other_queue_key(queue, t.txn_id), encode_txn(copy), db=part.other_txns)

            self._parts[0].write(mark)
        return applied

    # -- lifetime

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            self.record_cache.clear()
            for p in self._parts:
                p.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class ReplicatedTxn:
    """A pulled transaction with the values it carries (create/update)."""

    txn_id: int
    date_ms: int
    action: int
    handle: bytes
    values: tuple[HandleValue, ...] | None
    accepted: bool = True  # False: outside replication_accept_prefixes, only kept as a copy


def _other_queue_key(queue: bytes, txn_id: int) -> bytes:
    """``int2 name length | queue name | int8 txn id``: each queue's copies together, in id order."""
    return len(queue).to_bytes(2, "big") + queue + txn_key(max(txn_id, 0))


def _other_txn_decoder(head: int) -> Callable[[bytes, bytes], Transaction]:
    def decode(key: bytes, raw: bytes) -> Transaction:
        return decode_txn(key[head:], raw)

    return decode


def _apply_share(txn: lmdb.Transaction, part: _Partition, queue: bytes, items: list[tuple[ReplicatedTxn, bytes]],
                 now: int, priority: int | None, na_dates: lmdb._Database | None) -> int:
    """One partition's transactions of a batch, skipping those its mark shows applied and, when dates are
    tracked (``priority`` not None), those that lose the conflict rule; then the new mark."""
    mark_key = _REPL_PART_MARK + queue
    raw = txn.get(mark_key, db=part.meta)
    mark = decode_int8(raw, "replication mark") if raw is not None else -1
    applied = 0
    for t, key in items:
        if t.txn_id <= mark:
            continue
        if priority is not None and not _wins(txn, na_dates if t.action in (TXN_HOME_NA, TXN_UNHOME_NA)
                                              else part.dates, key, t, priority):
            log.info("replicated txn %d for %r skipped: a newer change of it is applied here", t.txn_id, t.handle)
            continue
        if t.action == TXN_HOME_NA:
            txn.put(key, encode_int8(now), db=part.nas)
        elif t.action == TXN_UNHOME_NA:
            txn.delete(key, db=part.nas)
        elif t.action == TXN_DELETE_HANDLE:
            part.delete_record(txn, key)
        elif t.action in (TXN_ADD_HANDLE, TXN_MODIFY_HANDLE):
            values = t.values or ()
            part.put_record(txn, key, record_header(all_public_read(values), now) + encode_values(values))
        else:
            continue
        applied += 1
    txn.put(mark_key, encode_int8(max(mark, items[-1][0].txn_id)), db=part.meta)
    return applied


def _wins(txn: lmdb.Transaction, db: lmdb._Database | None, key: bytes, t: ReplicatedTxn, priority: int) -> bool:
    """The conflict rule for one pulled transaction; records its date when it wins."""
    raw = txn.get(key, db=db)
    stored = None if raw is None else replication_dates.decode_date(raw)
    if not replication_dates.is_more_recent(stored, t.date_ms, priority):
        return False
    txn.put(key, replication_dates.encode_date(t.date_ms, priority), db=db)
    return True


def _date_entry(key: bytes, raw: bytes) -> tuple[bytes, int, int]:
    return (key, *replication_dates.decode_date(raw))


def _present(_key: bytes, _value: memoryview) -> bool:
    return True


def _key_only(key: bytes, _value: bytes) -> bytes:
    return key


def _key_and_raw(key: bytes, value: bytes) -> tuple[bytes, bytes]:
    return key, value


def _record_handle(record: StoredRecord) -> bytes:
    return record.handle


def _txn_id(t: Transaction) -> int:
    return t.txn_id


def _partition_dir(root: Path, index: int) -> Path:
    return root / f"part-{index}"


def _create_partitions(root: Path, count: int, *, map_size: int, sync: bool) -> list[_Partition]:
    """Create (or finish creating) a store of ``count`` partitions; partition 0's count is written last,
    as the mark of a complete store."""
    parts: list[_Partition] = []
    try:
        for i in reversed(range(count)):
            path = _partition_dir(root, i)
            path.mkdir(parents=True, exist_ok=True)
            part = _Partition(i, path, readonly=False, create=True, map_size=map_size, sync=sync)
            parts.append(part)
            part.write_meta({_META_FORMAT: STORE_FORMAT, _META_INDEX: i, _META_PARTITIONS: count,
                             reverse_index.META_VERSION: reverse_index.INDEX_VERSION})
    except (OSError, StorageError) as e:
        for p in parts:
            p.close()
        raise StorageError(f"cannot create the handle store in {root}: {e}") from e
    parts.reverse()
    return parts


def _open_partitions(root: Path, count: int, first: _Partition, *, readonly: bool, map_size: int,
                     sync: bool) -> list[_Partition]:
    parts = [first]
    try:
        for i in range(1, count):
            path = _partition_dir(root, i)
            if not (path / "data.mdb").is_file():
                raise StorageError(f"handle store {root}: partition {i} of {count} is missing ({path})")
            parts.append(_Partition(i, path, readonly=readonly, create=False, map_size=map_size, sync=sync))
        for part in parts:
            meta = part.read_meta()
            expected = {_META_FORMAT: STORE_FORMAT, _META_INDEX: part.index, _META_PARTITIONS: count}
            for name, value in expected.items():
                if meta.get(name) != value:
                    raise StorageError(f"handle store {root}: partition {part.index} records "
                                       f"{name.decode()} = {meta.get(name)}, expected {value}")
    except StorageError:
        for p in parts:
            p.close()
        raise
    return parts


def open_store(server_dir: Path, *, case_sensitive: bool, partitions: int | None = None,
               db_directory: str = DEFAULT_DB_DIRECTORY, readonly: bool = False, create: bool = True,
               map_size: int = DEFAULT_MAP_SIZE, sync: bool = True, clock: Callable[[], float] = time.time
               ) -> LmdbStore:
    """Open the handle store of a server directory, creating it (unless ``readonly`` or not ``create``).

    ``partitions`` is used when the store is created; an existing store keeps the count recorded at its
    creation, and asking for a different one is a ``StorageError``. ``map_size`` is the initial map size
    of each partition; it grows as needed. ``sync=False`` skips the fsync at each commit (like Java's
    ``bdbje_no_sync_on_write``; meant for tests and throw-away stores): a process crash loses nothing, an
    operating-system crash may lose the latest changes or, on file systems that reorder writes, the store.
    """
    if partitions is not None and not 1 <= partitions <= MAX_PARTITIONS:
        raise StorageError(f"storage partitions must be between 1 and {MAX_PARTITIONS}, not {partitions}")
    root = Path(server_dir) / db_directory
    first_dir = _partition_dir(root, 0)
    if not (first_dir / "data.mdb").is_file():
        if readonly or not create:
            raise StorageError(f"no handle store in {root}")
        parts = _create_partitions(root, partitions or DEFAULT_PARTITIONS, map_size=map_size, sync=sync)
        return LmdbStore(root, parts, case_sensitive=case_sensitive, readonly=False, clock=clock)
    first = _Partition(0, first_dir, readonly=readonly, create=False, map_size=map_size, sync=sync)
    try:
        recorded = first.read_meta().get(_META_PARTITIONS)
    except StorageError:
        first.close()
        raise
    if recorded is None:  # a creation that was interrupted: nothing but meta was ever written
        first.close()
        if readonly or not create:
            raise StorageError(f"the handle store in {root} was never completely created")
        parts = _create_partitions(root, partitions or DEFAULT_PARTITIONS, map_size=map_size, sync=sync)
        return LmdbStore(root, parts, case_sensitive=case_sensitive, readonly=False, clock=clock)
    if partitions is not None and partitions != recorded:
        first.close()
        raise StorageError(f"the handle store in {root} has {recorded} partitions (fixed when it was "
                           f"created), not the {partitions} configured")
    log.info("handle store %s: %d partitions (recorded at creation)", root, recorded)
    parts = _open_partitions(root, recorded, first, readonly=readonly, map_size=map_size, sync=sync)
    store = LmdbStore(root, parts, case_sensitive=case_sensitive, readonly=readonly, clock=clock)
    if not readonly:
        try:
            store.build_reverse_index()
        except StorageError:
            store.close()
            raise
    return store

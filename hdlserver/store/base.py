"""The Store protocol: what the server needs from handle storage (design.md section 4).

Handles are passed as received (bytes); the store applies case folding per ``case_sensitive`` itself
(server.md 6) and returns stored (folded) names from its listing methods.
Values are kept pre-encoded: ``StoredRecord.encoded_values`` is ``int4 count | values`` exactly as it
goes into a resolution response, so a public, unfiltered resolution copies it without decoding.

Every change (create, replace, delete, home, unhome) is recorded as a ``Transaction`` of the replication
log (replication.md 2) in the same storage transaction as the change itself, unless the caller passes
``log=False`` (a mirror applying transactions pulled from elsewhere: only primaries write their own queue).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from hdlserver.errors import DecodeError, ProtocolError, StorageError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.handles import HASH_BY_PREFIX, HASH_BY_SUFFIX, site_hash
from hdlserver.wire.values import HandleValue, decode_values


def _text(handle: bytes) -> str:
    return handle.decode("utf-8", "backslashreplace")


class HandleExistsError(ProtocolError):
    """Create of an existing handle without overwrite: RC 101, sent without a message as Java does."""

    def __init__(self, handle: bytes) -> None:
        super().__init__(ResponseCode.HANDLE_ALREADY_EXISTS)
        self.handle = handle

    def __str__(self) -> str:
        return f"handle already exists: {_text(self.handle)}"


class HandleNotFoundError(ProtocolError):
    """Change of a handle that is not stored: RC 100, sent without a message as Java does."""

    def __init__(self, handle: bytes) -> None:
        super().__init__(ResponseCode.HANDLE_NOT_FOUND)
        self.handle = handle

    def __str__(self) -> str:
        return f"handle not found: {_text(self.handle)}"


class NotPrefixHandleError(ProtocolError):
    """(Un)home argument that is not ``0.NA/<prefix>`` after normalisation (server.md 11 step 1)."""

    def __init__(self, handle: bytes) -> None:
        super().__init__(ResponseCode.INVALID_HANDLE, "Handle is not a prefix handle")
        self.handle = handle


class UnstorableHandleError(ProtocolError):
    """A handle that cannot be a storage key: empty, or longer than the store's key limit (RC 102)."""

    def __init__(self, handle: bytes, reason: str) -> None:
        super().__init__(ResponseCode.INVALID_HANDLE, reason)
        self.handle = handle


class ReadOnlyStoreError(StorageError):
    """A change was asked of a store opened read-only (the server answers RC 7, server.md 9)."""


class StoredRecord(NamedTuple):
    """A stored handle record, values still encoded.

    A NamedTuple rather than a frozen dataclass: it is built on every resolution (the hot path), and a
    tuple is built several times faster; it is just as immutable.
    """

    handle: bytes  # the stored (case-folded) key
    encoded_values: bytes  # int4 count | count x HandleValue, in stored order
    all_public_read: bool  # every value has the public-read bit: PO resolution needs no filtering
    modified: int  # seconds since 1970 of the last change

    def values(self) -> tuple[HandleValue, ...]:
        """Decode the stored values; bytes that do not decode are a damaged store: ``StorageError``."""
        try:
            return decode_values(self.encoded_values)
        except DecodeError as e:
            raise StorageError(f"corrupt stored record for {_text(self.handle)}: {e.message}") from e


@dataclass(frozen=True, slots=True)
class Transaction:
    """One replication transaction-log record (replication.md 2.1); it carries no values."""

    txn_id: int  # global to the store, increasing in commit order
    action: int  # TXN_ADD_HANDLE etc.
    handle: bytes  # as stored (case-folded); the prefix handle 0.NA/X for home/unhome
    date_ms: int  # milliseconds since 1970
    hash_on_all: int  # site_hash(handle, HASH_BY_ALL)

    @property
    def hash_on_na(self) -> int:
        return site_hash(self.handle, HASH_BY_PREFIX)

    @property
    def hash_on_id(self) -> int:
        return site_hash(self.handle, HASH_BY_SUFFIX)


# Action codes of replication.md 2.2.
TXN_ADD_HANDLE = 1
TXN_DELETE_HANDLE = 2
TXN_MODIFY_HANDLE = 3  # "update": value changes and CREATE with OVRW over an existing handle
TXN_HOME_NA = 4
TXN_UNHOME_NA = 5
TXN_DELETE_ALL = 6  # defined by Java, never produced


class Store(Protocol):
    """Handle storage. Every write is durable (committed and synced) before the method returns.

    Errors: ``StorageError`` (``ReadOnlyStoreError`` for writes to a read-only store) for storage
    failures, the ``ProtocolError`` subclasses above for the conditions the server reports as such.
    """

    case_sensitive: bool

    def storage_key(self, handle: bytes) -> bytes:
        """The stored form of ``handle`` (case-folded); ``UnstorableHandleError`` if it cannot be stored."""
        ...

    def get_record(self, handle: bytes) -> StoredRecord | None:
        """The stored record without decoding its values (the resolution hot path)."""
        ...

    def get_values(self, handle: bytes) -> tuple[HandleValue, ...] | None: ...

    def exists(self, handle: bytes) -> bool: ...

    def create_handle(self, handle: bytes, values: Sequence[HandleValue], *, overwrite: bool = False,
                      log: bool = True) -> bool:
        """Store a new handle; returns True if an existing record was overwritten.

        Raises ``HandleExistsError`` when it exists and ``overwrite`` is false. Logged as a create
        (action 1), or as an update (action 3) when an existing record is replaced.
        """
        ...

    def create_handles(self, items: Iterable[tuple[bytes, Sequence[HandleValue]]], *, overwrite: bool = False,
                       log: bool = True) -> int:
        """Bulk ``create_handle`` (loaders, dumps); returns how many records were written.

        Without ``overwrite`` every handle is checked before anything is written: if one exists,
        ``HandleExistsError`` is raised and nothing is stored.
        """
        ...

    def replace_values(self, handle: bytes, values: Sequence[HandleValue], *, log: bool = True) -> None:
        """Replace the whole value list of an existing handle (``HandleNotFoundError`` if missing)."""
        ...

    def delete_handle(self, handle: bytes, *, log: bool = True) -> bool:
        """Delete; returns False (and logs nothing) when the handle did not exist."""
        ...

    def iter_handles(self) -> Iterator[bytes]:
        """Every stored handle name, in sorted byte order, streamed."""
        ...

    def list_handles(self, prefix: bytes) -> Iterator[bytes]:
        """Stored handle names under a prefix, in sorted byte order, streamed.

        ``prefix`` is ``0.NA/X`` or ``X``: names starting with ``X/``. ``0.NA/0.NA/P`` lists the derived
        prefix handles ``0.NA/P.*``. Matching ignores ASCII case in the prefix part (server.md 10.1).
        """
        ...

    def count_handles(self) -> int: ...

    def iter_records(self) -> Iterator[StoredRecord]:
        """Every stored record, in sorted handle order, streamed."""
        ...

    def home_prefix(self, prefix_handle: bytes, *, log: bool = True) -> None:
        """Mark a prefix homed (``1234`` or ``0.NA/1234``, stored upper-cased); always logged."""
        ...

    def unhome_prefix(self, prefix_handle: bytes, *, log: bool = True) -> bool:
        """Returns False (and logs nothing) when the prefix was not homed."""
        ...

    def is_homed(self, prefix_handle: bytes) -> bool: ...

    def homed_prefixes(self) -> list[bytes]: ...

    def last_txn_id(self) -> int:
        """The newest committed transaction id (0 when none); every smaller logged id is committed too."""
        ...

    def transactions_since(self, txn_id: int) -> Iterator[Transaction]:
        """Transactions with id > ``txn_id`` up to ``last_txn_id()`` at the call, in id order."""
        ...

    def replication_dates(self, prefixes: bool, after: bytes | None = None) -> Iterator[tuple[bytes, int, int]]:
        """(handle or prefix handle, date ms, priority) of the replication dates kept (none unless the
        server tracks them), in key order, after ``after`` when given; streamed."""
        ...

    def other_queue_transactions(self, queue: bytes, after: int = -1) -> Iterator[Transaction]:
        """The kept copy of a queue pulled from another server, ids after ``after``, in id order."""
        ...

    def close(self) -> None: ...

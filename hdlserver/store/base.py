"""The Store protocol: what the server needs from handle storage (design.md section 4).

Handles are passed as received (bytes); the store applies case folding per ``case_sensitive`` itself.
Values are kept pre-encoded: ``StoredRecord.encoded_values`` is ``int4 count | values`` exactly as it
goes into a resolution response, so a public, unfiltered resolution copies it without decoding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from hdlserver.wire.values import HandleValue, decode_values


@dataclass(frozen=True, slots=True)
class StoredRecord:
    handle: bytes  # the stored (case-folded) key
    encoded_values: bytes  # int4 count | count x HandleValue, in stored order
    all_public_read: bool  # every value has the public-read bit: PO resolution needs no filtering
    modified: int  # seconds since 1970 of the last change

    def values(self) -> tuple[HandleValue, ...]:
        return decode_values(self.encoded_values)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One replication transaction-log record, written in the same LMDB transaction as its change."""

    txn_id: int
    action: int  # TXN_ADD_HANDLE etc.
    handle: bytes
    date_ms: int
    hash_on_all: int


TXN_ADD_HANDLE = 1
TXN_DELETE_HANDLE = 2
TXN_HOME_NA = 4
TXN_UNHOME_NA = 5
TXN_MODIFY_HANDLE = 6


class Store(Protocol):
    """Handle storage. Every write is durable (committed and synced) before the method returns."""

    case_sensitive: bool

    def get_record(self, handle: bytes) -> StoredRecord | None: ...

    def get_values(self, handle: bytes) -> tuple[HandleValue, ...] | None: ...

    def exists(self, handle: bytes) -> bool: ...

    def create_handle(self, handle: bytes, values: Sequence[HandleValue], *, overwrite: bool = False) -> bool:
        """Store a new handle; returns True if an existing record was overwritten.

        Raises ``HandleExistsError`` when it exists and ``overwrite`` is false.
        """
        ...

    def replace_values(self, handle: bytes, values: Sequence[HandleValue]) -> None:
        """Replace the whole value list of an existing handle (``HandleNotFoundError`` if missing)."""
        ...

    def delete_handle(self, handle: bytes) -> bool:
        """Delete; returns False when the handle did not exist."""
        ...

    def list_handles(self, prefix: bytes) -> Iterator[bytes]:
        """Stored handle names starting with ``prefix + b'/'`` (case-folded), in sorted order."""
        ...

    def count_handles(self) -> int: ...

    def iter_records(self) -> Iterator[StoredRecord]: ...

    def home_prefix(self, prefix_handle: bytes) -> None: ...

    def unhome_prefix(self, prefix_handle: bytes) -> bool: ...

    def is_homed(self, prefix_handle: bytes) -> bool: ...

    def homed_prefixes(self) -> list[bytes]: ...

    def last_txn_id(self) -> int: ...

    def transactions_since(self, txn_id: int) -> Iterator[Transaction]: ...

    def close(self) -> None: ...

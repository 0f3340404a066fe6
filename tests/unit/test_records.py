"""On-disk record layouts of the LMDB store (hdlserver.store.records)."""

from __future__ import annotations

import struct

import pytest

from hdlserver.errors import StorageError
from hdlserver.store.base import (
    TXN_ADD_HANDLE,
    TXN_HOME_NA,
    TXN_MODIFY_HANDLE,
    StoredRecord,
    Transaction,
)
from hdlserver.store.records import (
    FLAG_ALL_PUBLIC_READ,
    HEADER_SIZE,
    RECORD_FORMAT,
    all_public_read,
    decode_int8,
    decode_record,
    decode_txn,
    encode_int8,
    encode_record,
    encode_txn,
    record_header,
    txn_key,
)
from hdlserver.wire.handles import HASH_BY_ALL, HASH_BY_PREFIX, HASH_BY_SUFFIX, site_hash
from hdlserver.wire.values import (
    PERM_ADMIN_READ,
    PERM_ADMIN_WRITE,
    HandleValue,
    ValueReference,
    encode_values,
)

PUBLIC = HandleValue(1, b"URL", b"http://example.org/")
PRIVATE = HandleValue(2, b"EMAIL", b"a@example.org", permissions=PERM_ADMIN_READ | PERM_ADMIN_WRITE)
WITH_REF = HandleValue(3, b"DESC", b"x", timestamp=1_700_000_000,
                       references=(ValueReference(b"0.NA/T", 300),))


def test_record_layout_is_header_then_encode_values() -> None:
    values = [PUBLIC, WITH_REF]
    raw = encode_record(values, 1_700_000_123)
    header = bytes([RECORD_FORMAT, FLAG_ALL_PUBLIC_READ]) + struct.pack(">q", 1_700_000_123)
    assert raw[:HEADER_SIZE] == header
    assert raw[HEADER_SIZE:] == encode_values(values)
    assert HEADER_SIZE == 10


def test_record_header_matches_encode_record() -> None:
    values = [PUBLIC, PRIVATE]
    assert encode_record(values, 5) == record_header(all_public_read(values), 5) + encode_values(values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], True), ([PUBLIC], True), ([PUBLIC, WITH_REF], True), ([PRIVATE], False),
     ([PUBLIC, PRIVATE], False)],
)
def test_all_public_read_flag(values: list[HandleValue], expected: bool) -> None:
    assert all_public_read(values) is expected
    record = decode_record(b"K/1", encode_record(values, 0))
    assert record.all_public_read is expected


def test_decode_record_round_trip_without_decoding_values() -> None:
    raw = encode_record([PUBLIC, PRIVATE, WITH_REF], 42)
    record = decode_record(b"TEST/1", memoryview(raw))
    assert record == StoredRecord(b"TEST/1", encode_values([PUBLIC, PRIVATE, WITH_REF]), False, 42)
    assert isinstance(record.encoded_values, bytes)
    assert record.values() == (PUBLIC, PRIVATE, WITH_REF)


def test_decode_record_with_no_values() -> None:
    record = decode_record(b"T/0", encode_record([], 7))
    assert record.encoded_values == b"\x00\x00\x00\x00"
    assert record.values() == ()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "shorter than a header"),
        (b"\x01\x01" + b"\x00" * 8 + b"\x00\x00", "shorter than a header"),
        (b"\x02\x01" + b"\x00" * 8 + b"\x00\x00\x00\x00", "unknown record format 2"),
        (b"\x01\x81" + b"\x00" * 8 + b"\x00\x00\x00\x00", "unknown flags 0x81"),
        (b"\x01\x01" + b"\x00" * 8 + b"\xff\xff\xff\xff", "value count -1"),
        (b"\x01\x01" + b"\x00" * 8 + b"\x00\x00\x00\x05" + b"\x00" * 30, "value count 5"),
    ],
)
def test_corrupt_record_header_is_storage_error(raw: bytes, reason: str) -> None:
    with pytest.raises(StorageError, match=reason) as info:
        decode_record(b"TEST/BAD", raw)
    assert "TEST/BAD" in str(info.value)


def test_corrupt_values_are_storage_error_when_decoded() -> None:
    raw = encode_record([PUBLIC], 0)
    type_length_at = HEADER_SIZE + 4 + 4 + 4 + 1 + 4 + 1  # count, index, timestamp, ttl type, ttl, perms
    bad = raw[:type_length_at] + b"\x7f\xff\xff\xff" + raw[type_length_at + 4 :]
    record = decode_record(b"TEST/BAD", bad)  # the header is fine; the value's type length is not
    with pytest.raises(StorageError, match="corrupt stored record for TEST/BAD"):
        record.values()


def test_txn_record_has_java_queue_layout() -> None:
    t = Transaction(7, TXN_MODIFY_HANDLE, b"TEST/ABC", 1_700_000_000_123, site_hash(b"TEST/ABC", HASH_BY_ALL))
    raw = encode_txn(t)
    hashes = [site_hash(b"TEST/ABC", option) for option in (HASH_BY_ALL, HASH_BY_PREFIX, HASH_BY_SUFFIX)]
    expected = struct.pack(">qBqiiii", 7, 3, 1_700_000_000_123, *hashes, 8) + b"TEST/ABC"
    assert raw == expected
    assert decode_txn(txn_key(7), raw) == t


def test_transaction_hash_properties() -> None:
    t = Transaction(1, TXN_HOME_NA, b"0.NA/TEST", 0, site_hash(b"0.NA/TEST", HASH_BY_ALL))
    assert t.hash_on_na == site_hash(b"0.NA/TEST", HASH_BY_PREFIX)
    assert t.hash_on_id == site_hash(b"0.NA/TEST", HASH_BY_SUFFIX)


def test_txn_keys_sort_in_id_order() -> None:
    ids = [1, 2, 255, 256, 65_536, 2**40]
    assert sorted(txn_key(i) for i in ids) == [txn_key(i) for i in ids]
    assert txn_key(1) == b"\x00" * 7 + b"\x01"


@pytest.mark.parametrize(
    ("key", "raw", "reason"),
    [
        (txn_key(1), b"\x00" * 10, "too short"),
        (txn_key(1), encode_txn(Transaction(1, TXN_ADD_HANDLE, b"A/B", 0, 0)) + b"x", "handle length"),
        (txn_key(2), encode_txn(Transaction(1, TXN_ADD_HANDLE, b"A/B", 0, 0)), "another key"),
        (txn_key(1), encode_txn(Transaction(1, 9, b"A/B", 0, 0)), "unknown action 9"),
    ],
)
def test_corrupt_txn_record_is_storage_error(key: bytes, raw: bytes, reason: str) -> None:
    with pytest.raises(StorageError, match=reason):
        decode_txn(key, raw)


def test_int8_entries() -> None:
    assert decode_int8(encode_int8(-5), "x") == -5
    with pytest.raises(StorageError, match="corrupt meta: 3 bytes"):
        decode_int8(b"abc", "meta")

"""Replication stream codecs, the primary's redump decision and record selection, and log pruning."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from hdlserver.auth import keys
from hdlserver.replication import streams
from hdlserver.replication.source import hashes_to, needs_redump, txn_segments
from hdlserver.replication.streams import (
    SegmentReader,
    SegmentSigner,
    StreamError,
    StreamMode,
    TxnRecord,
    TxnStreamEnd,
    TxnStreamHead,
    read_dump_stream,
    read_stream_type,
    read_txn_stream,
)
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_DELETE_HANDLE
from hdlserver.store.lmdb_store import LmdbStore, open_store
from hdlserver.wire.handles import HASH_BY_ALL
from hdlserver.wire.values import HandleValue, encode_value

KEY = keys.generate_key_pair("RSA", 1024)
DAY_MS = 86_400_000
VALUE = HandleValue(1, b"URL", b"http://example.org/")


def byte_source(data: bytes):  # type: ignore[no-untyped-def]
    """read(n) over ``data``; a read past the end is a connection closed mid-stream."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ConnectionError("connection closed by the server")
        chunk = data[pos : pos + n]
        pos += n
        return chunk

    return read


def framed(mode: StreamMode, segments: Iterable[bytes], trailer: bytes = b"") -> bytes:
    signer = SegmentSigner(mode, KEY)
    return signer.preamble() + b"".join(signer.segment(s) for s in segments) + trailer


def txn_stream_segments() -> list[bytes]:
    return [streams.txn_stream_head(streams.TXN_FORMAT_SINGLE, streams.STATUS_SENDING_TRANSACTIONS),
            streams.encode_txn_record(7, b"TEST/A", TXN_ADD_HANDLE, 1000, [encode_value(VALUE)]),
            streams.encode_txn_record(8, b"TEST/B", TXN_DELETE_HANDLE, 1001, None),
            streams.txn_end(5000)]


def reader_for(data: bytes, public: bool = True) -> SegmentReader:
    read = byte_source(data)
    kind = read_stream_type(read)
    key = KEY.public_key() if public and kind == streams.STREAM_PK else None
    return SegmentReader(read, key)


def test_pk_signed_txn_stream_round_trips() -> None:
    events = list(read_txn_stream(reader_for(framed(StreamMode.PK, txn_stream_segments()))))
    assert events == [TxnStreamHead(1, 2), TxnRecord(7, b"TEST/A", TXN_ADD_HANDLE, 1000, (VALUE,)),
                      TxnRecord(8, b"TEST/B", TXN_DELETE_HANDLE, 1001, None), TxnStreamEnd(5000)]


def test_tls_stream_has_the_marker_and_no_signatures() -> None:
    data = framed(StreamMode.TLS, txn_stream_segments())
    assert data.startswith(b"TLS\x00")
    assert data[4:] == b"".join(txn_stream_segments())


def test_a_bad_signature_stops_the_stream_at_that_record() -> None:
    data = bytearray(framed(StreamMode.PK, txn_stream_segments()))
    at = data.index(b"TEST/B")
    data[at + 5] ^= 0x01  # TEST/B -> TEST/C: the record no longer matches its signature
    events = read_txn_stream(reader_for(bytes(data)))
    assert isinstance(next(events), TxnStreamHead)
    assert next(events).txn_id == 7  # verified before it is yielded
    with pytest.raises(StreamError, match="does not verify"):
        next(events)


def test_a_stream_cut_in_the_middle_raises_after_the_complete_records() -> None:
    data = framed(StreamMode.PK, txn_stream_segments())
    cut = data[: data.index(b"TEST/B") + 2]
    events = read_txn_stream(reader_for(cut))
    assert [type(next(events)), next(events).txn_id] == [TxnStreamHead, 7]
    with pytest.raises(ConnectionError):
        next(events)


def test_unknown_record_type_and_stream_type_are_refused() -> None:
    bad = [streams.txn_stream_head(1, 2), b"\x09"]
    events = read_txn_stream(reader_for(framed(StreamMode.TLS, bad), public=False))
    next(events)
    with pytest.raises(StreamError, match="unknown transaction record type 9"):
        next(events)
    with pytest.raises(StreamError, match="unknown stream type"):
        read_stream_type(byte_source(b"\x12\x34\x56\x78"))


def test_dump_stream_round_trips_and_needs_its_final_byte() -> None:
    segments = [streams.dump_head(), streams.dump_other_site_info('{\n  "sources" = ()\n}'),
                streams.dump_this_server_info(5000, 42), streams.dump_handle(b"TEST/A", [encode_value(VALUE)]),
                streams.dump_homed_prefix(b"0.NA/TEST")]
    data = framed(StreamMode.PK, segments, streams.DUMP_DONE)
    events = list(read_dump_stream(reader_for(data)))
    assert events[1:] == [streams.DumpThisServerInfo(5000, 42), streams.DumpHandle(b"TEST/A", (VALUE,)),
                          streams.DumpHomedPrefix(b"0.NA/TEST"), streams.DumpDone()]
    with pytest.raises(ConnectionError):
        list(read_dump_stream(reader_for(data[:-1])))


# ---------------------------------------------------------------------------------------------------
# The primary: redump decision, record selection, pruning


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterable[LmdbStore]:
    clock = Clock(1_800_000_000.0)
    with open_store(tmp_path, case_sensitive=False, partitions=2, sync=False, clock=clock) as s:
        s.test_clock = clock  # type: ignore[attr-defined]
        yield s


def test_redump_rules(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    store = open_store(tmp_path, case_sensitive=False, partitions=1, sync=False, clock=clock)
    store.test_clock = clock  # type: ignore[attr-defined]
    now_ms = int(store.test_clock.now * 1000)  # type: ignore[attr-defined]
    assert not needs_redump(store, -1, 0, now_ms)  # nothing logged yet
    store.create_handle(b"TEST/a", [VALUE])
    store.create_handle(b"TEST/b", [VALUE])
    assert not needs_redump(store, -1, 0, now_ms)  # fresh mirror, queue from id 1, recent
    assert not needs_redump(store, 1, now_ms, now_ms)  # the usual case
    assert needs_redump(store, 9, now_ms, now_ms)  # a txn id from the future: the queue was reset
    assert needs_redump(store, -1, 0, now_ms + 11 * DAY_MS)  # queue from id 1 but old, never pulled
    store.test_clock.now += 3 * 86_400  # type: ignore[attr-defined]
    store.create_handle(b"TEST/c", [VALUE])
    store.prune_transactions(now_ms + DAY_MS)
    later = now_ms + 3 * DAY_MS
    assert [t.txn_id for t in store.transactions_since(0)] == [3]
    assert needs_redump(store, 1, now_ms, later)  # txn 2 was pruned before this mirror saw it
    assert not needs_redump(store, 2, later - 1000, later)  # contiguous: first id is last + 1
    store.close()


def test_records_carry_current_state_and_skip_superseded_ones(store: LmdbStore) -> None:
    store.create_handle(b"TEST/gone", [VALUE])
    store.create_handle(b"TEST/kept", [VALUE])
    store.delete_handle(b"TEST/gone")
    events = list(read_txn_stream(SegmentReader(byte_source(b"".join([
        streams.txn_stream_head(1, 2), *txn_segments(store, 0, HASH_BY_ALL, 1, 0), streams.txn_end(1)])), None)))
    records = [(e.txn_id, e.handle, e.action) for e in events if isinstance(e, TxnRecord)]
    assert records == [(2, b"TEST/KEPT", TXN_ADD_HANDLE), (3, b"TEST/GONE", TXN_DELETE_HANDLE)]


def test_hash_filter_splits_handles_between_two_servers() -> None:
    handles = [f"TEST/{i}".encode() for i in range(40)]
    first = {h for h in handles if hashes_to(h, HASH_BY_ALL, 2, 0)}
    second = {h for h in handles if hashes_to(h, HASH_BY_ALL, 2, 1)}
    assert first and second and first.isdisjoint(second) and first | second == set(handles)
    assert all(hashes_to(h, 7, 2, 1) for h in handles)  # unknown hash type: everything


def test_pruning_keeps_the_newest_record_of_each_partition(store: LmdbStore) -> None:
    for i in range(20):
        store.create_handle(f"TEST/{i}".encode(), [VALUE])
    newest = store.last_txn_id()
    store.test_clock.now += 86_400  # type: ignore[attr-defined]
    deleted = store.prune_transactions(int(store.test_clock.now * 1000))  # type: ignore[attr-defined]
    left = [t.txn_id for t in store.transactions_since(0)]
    assert deleted == 20 - len(left) and 1 <= len(left) <= 2 and newest in left
    assert store.last_txn_id() == newest

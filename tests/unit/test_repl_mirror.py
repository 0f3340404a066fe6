"""The mirror's rounds against a scripted source: applying, state, restarts, and every bad-input case.

The source is a fake ``fetch`` returning prepared stream bytes (or raising), so each failure is exact:
a refused request, a NEED_TO_REDUMP, a stream that is cut or badly signed mid-way, a transaction id that
goes backwards, a prefix the mirror does not accept, and a mirror killed between two transactions.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stream_support import ScriptedSource

from hdlserver.auth import keys
from hdlserver.client.admin import SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.client.transport import read_exact
from hdlserver.config.settings import ServerConfig
from hdlserver.config.siteinfo import save_site_info_json
from hdlserver.replication import streams
from hdlserver.replication.mirror import REDUMP_NOTICE_FILE, Mirror, ReplicationState
from hdlserver.replication.puller import StreamConnection
from hdlserver.replication.streams import SegmentReader, SegmentSigner, StreamMode
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_DELETE_HANDLE, TXN_HOME_NA, TXN_MODIFY_HANDLE
from hdlserver.store.lmdb_store import LmdbStore, ReplicatedTxn, _apply_share, open_store
from hdlserver.wire.bodies import RetrieveTxnLogRequest
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import Interface, ServerInfo, SiteInfo, address_from_text
from hdlserver.wire.values import HandleValue, encode_value

KEY = keys.generate_key_pair("RSA", 1024)
SOURCE = SiteInfo(servers=(ServerInfo(1, address_from_text("127.0.0.1"), keys.public_key_to_bytes(KEY.public_key()),
                                      (Interface(3, 1, 2641),)),))
OWN_SITE = dataclasses.replace(SOURCE, primary=False, servers=(dataclasses.replace(
    SOURCE.servers[0], interfaces=(Interface(3, 1, 2642),)),))
NOW = 1_800_000_000.0


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


def record(txn_id: int, handle: bytes, action: int, values: tuple[HandleValue, ...] = ()) -> bytes:
    encoded = [encode_value(v) for v in values] if action in (TXN_ADD_HANDLE, TXN_MODIFY_HANDLE) else None
    return streams.encode_txn_record(txn_id, handle, action, txn_id * 1000, encoded)


def stream_bytes(*records: bytes, status: int = streams.STATUS_SENDING_TRANSACTIONS, end: int = 99_000) -> bytes:
    signer = SegmentSigner(StreamMode.PK, KEY)
    segments = [streams.txn_stream_head(1, status), *records, streams.txn_end(end)]
    return b"".join(signer.segment(s) for s in segments)


class FakeSource(ScriptedSource):
    """``fetch`` for the Mirror: each call takes the next scripted answer (bytes of a PK stream, or an error)."""

    def __init__(self) -> None:
        super().__init__(KEY, RetrieveTxnLogRequest)


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    save_site_info_json(tmp_path / "txnsrcsv.json", SOURCE)
    return tmp_path


@pytest.fixture
def store(server_dir: Path) -> Iterator[LmdbStore]:
    with open_store(server_dir, case_sensitive=False, partitions=2, sync=False) as s:
        yield s


def make_mirror(server_dir: Path, store: LmdbStore, source: FakeSource, **config: object) -> Mirror:
    settings = dataclasses.replace(ServerConfig(this_server_id=1), **config)  # type: ignore[arg-type]
    return Mirror(server_dir=server_dir, config=settings, store=store, own_site=OWN_SITE, own_position=0,
                  identity=SecretKeyIdentity(b"0.NA/TEST", 301, b"x"), fetch=source, clock=lambda: NOW)


def saved_state(server_dir: Path) -> tuple[int, int]:
    queue = ReplicationState.load(server_dir / "txnstat.dct").queue("sources", 0)
    return queue.last_txn_id, queue.last_timestamp


def test_a_round_applies_creates_changes_deletes_and_homes(server_dir: Path, store: LmdbStore) -> None:
    source = FakeSource()
    source.answers.append(stream_bytes(record(1, b"TEST/A", TXN_ADD_HANDLE, (url("a"),)),
                                       record(2, b"TEST/B", TXN_ADD_HANDLE, (url("b"),)),
                                       record(3, b"TEST/A", TXN_MODIFY_HANDLE, (url("a2"),)),
                                       record(4, b"TEST/B", TXN_DELETE_HANDLE),
                                       record(5, b"0.NA/TEST", TXN_HOME_NA)))
    mirror = make_mirror(server_dir, store, source)
    assert mirror.run_round() == 5
    assert store.get_values(b"TEST/A") == (url("a2"),)
    assert not store.exists(b"TEST/B") and store.is_homed(b"0.NA/TEST")
    assert store.last_txn_id() == 0  # a mirror does not log what it applies
    assert saved_state(server_dir) == (5, 99_000)
    assert source.requests[0].last_txn_id == -1  # a fresh mirror asks from -1, as Java's does
    (status,) = mirror.status()
    assert (status.queue, status.last_txn_id, status.lag_txns, status.last_error) == ("0:sources", 5, 5, None)
    assert status.lag_seconds(NOW) == pytest.approx(NOW - 99.0)


def test_refused_request_is_logged_and_changes_nothing(server_dir: Path, store: LmdbStore,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource()
    source.answers.append(HandleResponseError(ResponseCode.INVALID_ADMIN, ""))
    mirror = make_mirror(server_dir, store, source)
    assert mirror.run_round() == 0
    assert "refused by the source" in (mirror.status()[0].last_error or "")
    assert "failed at txn -1" in caplog.text
    assert store.count_handles() == 0 and not (server_dir / "txnstat.dct").exists()


def test_need_to_redump_writes_the_notice_and_keeps_state(server_dir: Path, store: LmdbStore) -> None:
    source = FakeSource()
    source.answers += [stream_bytes(status=streams.STATUS_NEED_TO_REDUMP), stream_bytes()]
    mirror = make_mirror(server_dir, store, source)
    mirror.run_round()
    assert (server_dir / REDUMP_NOTICE_FILE).exists() and mirror.status()[0].needs_redump
    assert not (server_dir / "txnstat.dct").exists()
    mirror.run_round()
    assert not (server_dir / REDUMP_NOTICE_FILE).exists()


def test_cut_stream_keeps_what_arrived_and_the_next_round_continues(server_dir: Path, store: LmdbStore) -> None:
    full = stream_bytes(record(1, b"TEST/A", TXN_ADD_HANDLE, (url("a"),)),
                        record(2, b"TEST/B", TXN_ADD_HANDLE, (url("b"),)))
    cut = full[: full.index(b"TEST/B")]
    source = FakeSource()
    source.answers += [cut, stream_bytes(record(2, b"TEST/B", TXN_ADD_HANDLE, (url("b"),)))]
    mirror = make_mirror(server_dir, store, source)
    assert mirror.run_round() == 1
    assert store.exists(b"TEST/A") and not store.exists(b"TEST/B")
    assert "ConnectionError" in (mirror.status()[0].last_error or "")
    assert mirror.run_round() == 1
    assert source.requests[1].last_txn_id == 1
    assert store.exists(b"TEST/B") and saved_state(server_dir)[0] == 2


def test_bad_signature_mid_stream_applies_nothing_after_it(server_dir: Path, store: LmdbStore) -> None:
    data = bytearray(stream_bytes(record(1, b"TEST/A", TXN_ADD_HANDLE, (url("a"),)),
                                  record(2, b"TEST/B", TXN_ADD_HANDLE, (url("b"),))))
    data[data.index(b"TEST/B") + 5] ^= 0x01
    source = FakeSource()
    source.answers.append(bytes(data))
    mirror = make_mirror(server_dir, store, source)
    mirror.run_round()
    assert store.exists(b"TEST/A") and not store.exists(b"TEST/B") and not store.exists(b"TEST/C")
    assert "does not verify" in (mirror.status()[0].last_error or "")


def test_killed_mirror_restarts_after_its_last_applied_transaction(server_dir: Path, store: LmdbStore) -> None:
    """The kill lands after txn 1's commit and before the round's txnstat.dct: the store's mark says 1."""
    store.apply_replicated(b"0:sources", [ReplicatedTxn(1, 1000, TXN_ADD_HANDLE, b"TEST/A", (url("a"),))])
    source = FakeSource()
    source.answers.append(stream_bytes(record(2, b"TEST/B", TXN_ADD_HANDLE, (url("b"),))))
    mirror = make_mirror(server_dir, store, source)
    assert mirror.run_round() == 1
    assert (source.requests[0].last_txn_id, source.requests[0].last_query_date) == (1, 1000)


def test_killed_between_two_partition_commits_loses_nothing_and_applies_nothing_twice(
        server_dir: Path, store: LmdbStore) -> None:
    """The kill lands inside a batch: txn 2's partition committed, txn 1's partition and the queue mark not."""
    a = b"TEST/A"
    b = next(h for h in (f"TEST/B{i}".encode() for i in range(50))
             if store.partition_index(h) != store.partition_index(a))
    part = store._parts[store.partition_index(b)]
    done = ReplicatedTxn(2, 2000, TXN_ADD_HANDLE, b, (url("b-first"),))
    part.write(lambda txn: _apply_share(txn, part, b"0:sources", [(done, b)], 0, None, None))
    source = FakeSource()
    source.answers.append(stream_bytes(record(1, a, TXN_ADD_HANDLE, (url("a"),)),
                                       record(2, b, TXN_ADD_HANDLE, (url("b-resent"),))))
    mirror = make_mirror(server_dir, store, source)
    assert mirror.run_round() == 1
    assert source.requests[0].last_txn_id == -1  # the queue mark was never written
    assert store.get_values(a) == (url("a"),)
    assert store.get_values(b) == (url("b-first"),)  # txn 2 was not applied a second time
    assert store.replication_mark(b"0:sources")[0] == 2 and saved_state(server_dir)[0] == 2


def test_transaction_ids_that_go_backwards_are_not_applied_twice(server_dir: Path, store: LmdbStore,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource()
    source.answers += [stream_bytes(record(5, b"TEST/A", TXN_ADD_HANDLE, (url("a"),))),
                       stream_bytes(record(3, b"TEST/A", TXN_ADD_HANDLE, (url("old"),)))]
    mirror = make_mirror(server_dir, store, source)
    mirror.run_round()
    assert mirror.run_round() == 0
    assert store.get_values(b"TEST/A") == (url("a"),)
    assert "txn 3 is not after 5, already applied: skipped" in caplog.text


def test_prefixes_the_mirror_does_not_accept_are_skipped_but_counted(server_dir: Path, store: LmdbStore) -> None:
    source = FakeSource()
    source.answers.append(stream_bytes(record(1, b"OTHER/X", TXN_ADD_HANDLE, (url("x"),)),
                                       record(2, b"TEST/A", TXN_ADD_HANDLE, (url("a"),))))
    mirror = make_mirror(server_dir, store, source, replication_accept_prefixes=("0.NA/TEST",))
    assert mirror.run_round() == 1
    assert not store.exists(b"OTHER/X") and store.exists(b"TEST/A")
    assert saved_state(server_dir)[0] == 2


def test_missing_sources_file_is_a_clear_log_line_and_the_next_round_retries(
        tmp_path: Path, store: LmdbStore, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    source = FakeSource()
    mirror = make_mirror(tmp_path / "empty", store, source)
    assert mirror.run_round() == 0
    assert "no replication source: neither txnsrcsv.bin nor txnsrcsv.json" in caplog.text
    assert source.requests == []
    save_site_info_json(tmp_path / "empty" / "txnsrcsv.json", SOURCE)
    source.answers.append(stream_bytes(record(1, b"TEST/A", TXN_ADD_HANDLE, (url("a"),))))
    assert mirror.run_round() == 1


def test_a_source_server_at_our_own_address_and_port_is_skipped(server_dir: Path, store: LmdbStore) -> None:
    """A multi-primary or proxied source list may name this server itself: it never pulls from itself."""
    source = FakeSource()
    mirror = make_mirror(server_dir, store, source)
    mirror.own_site = SOURCE  # this server is the one listed in txnsrcsv.json
    assert mirror.run_round() == 0
    assert source.requests == []


def test_a_transaction_this_store_cannot_hold_is_skipped_not_retried(server_dir: Path, store: LmdbStore,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource()
    source.answers.append(stream_bytes(record(1, b"TEST/" + b"x" * 600, TXN_ADD_HANDLE, (url("long"),)),
                                       record(2, b"TEST/A", TXN_ADD_HANDLE, (url("a"),))))
    mirror = make_mirror(server_dir, store, source)
    assert mirror.run_round() == 1
    assert store.exists(b"TEST/A") and saved_state(server_dir)[0] == 2
    assert "replicated txn 1 for" in caplog.text and "cannot be stored here, skipped" in caplog.text


def test_abort_ends_a_round_blocked_on_a_silent_source(server_dir: Path, store: LmdbStore) -> None:
    """Shutdown while the source sends nothing: abort() from another thread wakes the blocked read."""
    ours, theirs = socket.socketpair()

    def fetch(server: ServerInfo, opcode: int, body: object, identity: object, timeout: float) -> StreamConnection:
        return StreamConnection(ours, SegmentReader(lambda n: read_exact(ours, n), None))

    mirror = make_mirror(server_dir, store, FakeSource())
    mirror.fetch = fetch
    timer = threading.Timer(0.2, mirror.abort)
    timer.start()
    started = time.monotonic()
    try:
        assert mirror.run_round() == 0
    finally:
        timer.cancel()
        theirs.close()
    assert time.monotonic() - started < 5
    assert mirror.status()[0].last_error is None  # a stop is not a replication failure

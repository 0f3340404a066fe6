"""Proxied mirroring: the all-sources form of RETRIEVE_TXN_LOG on both sides (replication.md 4.1, 6.2).

The pulling side keeps each queue's state, copy and priority apart, skips its own site's queue, and asks
with every queue it knows; the serving side passes on the queues it pulled and keeps, without the
requester's own site's, and answers NEED_TO_REDUMP when any queue cannot continue.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from stream_support import ScriptedSource, unsigned_reader

from hdlserver.auth import keys
from hdlserver.client.admin import SecretKeyIdentity
from hdlserver.config.settings import ServerConfig
from hdlserver.errors import ProtocolError
from hdlserver.replication import streams
from hdlserver.replication.mirror import Mirror, ReplicationState
from hdlserver.replication.source import _all_sources
from hdlserver.replication.streams import SegmentSigner, StreamMode, read_txn_stream
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_MODIFY_HANDLE
from hdlserver.store.lmdb_store import LmdbStore, ReplicatedTxn, open_store
from hdlserver.wire.bodies import RetrieveTxnLogRequest
from hdlserver.wire.site import Interface, ServerInfo, SiteInfo, address_from_text
from hdlserver.wire.values import HandleValue, encode_value

KEY = keys.generate_key_pair("RSA", 1024)
NOW = 1_800_000_000.0
NOW_MS = int(NOW * 1000)
SITES_HANDLE = "0.NA/TEST"
SOURCE = SiteInfo(servers=(ServerInfo(1, address_from_text("127.0.0.1"), keys.public_key_to_bytes(KEY.public_key()),
                                      (Interface(3, 1, 2641),)),))
OWN_SITE = dataclasses.replace(SOURCE, primary=False, servers=(dataclasses.replace(
    SOURCE.servers[0], interfaces=(Interface(3, 1, 2642),)),))


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


def record(txn_id: int, handle: bytes, text: str, date_ms: int) -> bytes:
    return streams.encode_txn_record(txn_id, handle, TXN_ADD_HANDLE, date_ms, [encode_value(url(text))])


def all_sources_stream(*queues: tuple[str, list[bytes], int]) -> bytes:
    signer = SegmentSigner(StreamMode.PK, KEY)
    segments = [streams.txn_stream_head(streams.TXN_FORMAT_ALL_SOURCES, streams.STATUS_SENDING_TRANSACTIONS)]
    for name, records, last_timestamp in queues:
        segments += [streams.queue_name_record(name.encode()), *records,
                     streams.queue_last_timestamp_record(last_timestamp)]
    segments.append(streams.txn_end(None))
    return b"".join(signer.segment(s) for s in segments)


class FakeSource(ScriptedSource):
    def __init__(self, *answers: bytes) -> None:
        super().__init__(KEY, RetrieveTxnLogRequest, *answers)


class FixedSources:
    """The source list a replication sites handle would give: the source site at value index 2, this
    server's own site at index 1."""

    def refresh(self) -> SimpleNamespace:
        return SimpleNamespace(sites=(SimpleNamespace(name=f"2:{SITES_HANDLE}", priority=2, site=SOURCE),),
                               own_name=f"1:{SITES_HANDLE}", own_priority=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LmdbStore]:
    with open_store(tmp_path, case_sensitive=False, partitions=2, sync=False, clock=lambda: NOW) as s:
        yield s


def make_mirror(tmp_path: Path, store: LmdbStore, source: FakeSource) -> Mirror:
    config = dataclasses.replace(ServerConfig(this_server_id=1), replication_pull_other_transactions=True)
    store.track_replication_dates(0)
    return Mirror(server_dir=tmp_path, config=config, store=store, own_site=OWN_SITE, own_position=0,
                  identity=SecretKeyIdentity(b"0.NA/TEST", 301, b"x"), fetch=source, clock=lambda: NOW,
                  sources=FixedSources())  # type: ignore[arg-type]


def test_an_all_sources_pull_applies_and_keeps_each_queue_apart(tmp_path: Path, store: LmdbStore) -> None:
    source = FakeSource(all_sources_stream(
        (f"0:2:{SITES_HANDLE}", [record(1, b"TEST/A", "a from 2", 5000), record(2, b"TEST/B", "b", 5000)], 7000),
        (f"0:3:{SITES_HANDLE}", [record(1, b"TEST/A", "a from 3", 5000)], 8000),
        (f"0:1:{SITES_HANDLE}", [record(9, b"TEST/MINE", "own site", 9000)], 9000)))
    mirror = make_mirror(tmp_path, store, source)
    assert mirror.run_round() == 3
    # equal dates: the queue of the source at the higher value index wins (conflict rule)
    assert store.get_values(b"TEST/A") == (url("a from 3"),)
    assert not store.exists(b"TEST/MINE")  # this server's own site's queue is never applied here
    state = ReplicationState.load(tmp_path / "txnstat.dct")
    assert (state.queue(f"2:{SITES_HANDLE}", 0).last_txn_id, state.queue(f"2:{SITES_HANDLE}", 0).last_timestamp) \
        == (2, 7000)
    assert (state.queue(f"3:{SITES_HANDLE}", 0).last_txn_id, state.queue(f"3:{SITES_HANDLE}", 0).last_timestamp) \
        == (1, 8000)
    assert f"1:{SITES_HANDLE}" not in state.sites
    copies = [t.txn_id for t in store.other_queue_transactions(f"0:2:{SITES_HANDLE}".encode())]
    assert copies == [1, 2]
    assert {s.queue for s in mirror.status()} == {f"0:2:{SITES_HANDLE}", f"0:3:{SITES_HANDLE}"}


def test_the_next_all_sources_request_carries_every_known_queue(tmp_path: Path, store: LmdbStore) -> None:
    source = FakeSource(
        all_sources_stream((f"0:2:{SITES_HANDLE}", [record(1, b"TEST/A", "a", 5000)], 7000),
                           (f"0:3:{SITES_HANDLE}", [record(4, b"TEST/C", "c", 5000)], 8000)),
        all_sources_stream())
    mirror = make_mirror(tmp_path, store, source)
    mirror.run_round()
    mirror.run_round()
    first, second = (json.loads(r.replication_state or b"") for r in source.requests)
    assert first == {"replicationServerStates": {f"0:2:{SITES_HANDLE}": {"lastTxnId": -1, "lastTimestamp": 0}},
                     "ownName": f"1:{SITES_HANDLE}"}
    assert second["replicationServerStates"] == {
        f"0:2:{SITES_HANDLE}": {"lastTxnId": 1, "lastTimestamp": 7000},
        f"0:3:{SITES_HANDLE}": {"lastTxnId": 4, "lastTimestamp": 8000}}


def test_a_queue_pulled_to_a_mark_but_not_saved_continues_from_the_mark(tmp_path: Path, store: LmdbStore) -> None:
    """Killed after a queue's batch committed and before txnstat.dct: its mark (and copy) are the truth."""
    queue = f"0:3:{SITES_HANDLE}"
    store.apply_replicated(queue.encode(), [ReplicatedTxn(5, 5000, TXN_ADD_HANDLE, b"TEST/C", (url("c"),))],
                           3, keep_copies=True)
    source = FakeSource(all_sources_stream())
    make_mirror(tmp_path, store, source).run_round()
    states = json.loads(source.requests[0].replication_state or b"")["replicationServerStates"]
    assert states[queue] == {"lastTxnId": 5, "lastTimestamp": 5000}


# --- serving


def serving_state(store: LmdbStore, tmp_path: Path, *, primary: bool) -> SimpleNamespace:
    replication = ReplicationState(tmp_path / "txnstat.dct")
    for site, index, last_id, last_ts in ((f"2:{SITES_HANDLE}", 0, 2, 7000), (f"3:{SITES_HANDLE}", 0, 1, 8000),
                                          (f"4:{SITES_HANDLE}", 0, 3, 0)):
        q = replication.queue(site, index)
        q.last_txn_id, q.last_timestamp = last_id, last_ts
    mirror = SimpleNamespace(state=replication, own_name=f"1:{SITES_HANDLE}")
    config = ServerConfig(this_server_id=1)
    return SimpleNamespace(store=store, primary=primary, mirror=mirror, this_server_position=0,
                           settings=SimpleNamespace(server=config))


def served(state: SimpleNamespace, states: dict[str, dict[str, int]], own: str | None) -> list[object]:
    document = json.dumps({"replicationServerStates": states, "ownName": own}).encode()
    request = RetrieveTxnLogRequest(receiver_hash_type=0, num_servers=1, server_num=0, replication_state=document)
    return list(read_txn_stream(unsigned_reader(_all_sources(state, request, NOW_MS))))  # type: ignore[arg-type]


def _pulled_copies(store: LmdbStore) -> None:
    for name, txns, priority in (
            (f"0:2:{SITES_HANDLE}", [ReplicatedTxn(1, 5000, TXN_ADD_HANDLE, b"TEST/A", (url("a"),)),
                                     ReplicatedTxn(2, 5000, TXN_ADD_HANDLE, b"TEST/B", (url("b"),))], 2),
            (f"0:3:{SITES_HANDLE}", [ReplicatedTxn(1, 6000, TXN_MODIFY_HANDLE, b"TEST/A", (url("a3"),))], 3)):
        store.apply_replicated(name.encode(), txns, priority, keep_copies=True)


def test_a_mirror_passes_on_the_queues_it_keeps_with_current_values(tmp_path: Path, store: LmdbStore) -> None:
    _pulled_copies(store)
    events = served(serving_state(store, tmp_path, primary=False), {}, "9:0.NA/ELSEWHERE")
    described = [(type(e).__name__, getattr(e, "name", getattr(e, "txn_id", getattr(e, "date_ms", None))))
                 for e in events]
    assert described == [
        ("TxnStreamHead", None),
        ("QueueName", f"0:2:{SITES_HANDLE}".encode()), ("TxnRecord", 1), ("TxnRecord", 2),
        ("QueueLastTimestamp", 7000),
        ("QueueName", f"0:3:{SITES_HANDLE}".encode()), ("TxnRecord", 1), ("QueueLastTimestamp", 8000),
        ("TxnStreamEnd", None)]  # the queue never pulled to an end (timestamp 0) is left out
    a_records = [e for e in events if isinstance(e, streams.TxnRecord) and e.handle == b"TEST/A"]
    assert all(e.values == (url("a3"),) for e in a_records)  # the handle's values now, not then


def test_the_requesters_own_site_and_what_it_has_are_left_out(tmp_path: Path, store: LmdbStore) -> None:
    _pulled_copies(store)
    events = served(serving_state(store, tmp_path, primary=False),
                    {f"0:2:{SITES_HANDLE}": {"lastTxnId": 1, "lastTimestamp": 7000}}, f"3:{SITES_HANDLE}")
    names = [e.name for e in events if isinstance(e, streams.QueueName)]
    assert names == [f"0:2:{SITES_HANDLE}".encode()]
    assert [e.txn_id for e in events if isinstance(e, streams.TxnRecord)] == [2]


def test_a_primary_sends_its_own_queue_first(tmp_path: Path, store: LmdbStore) -> None:
    _pulled_copies(store)
    store.create_handle(b"TEST/OWN", [url("own")])
    events = served(serving_state(store, tmp_path, primary=True), {}, None)
    assert next(e.name for e in events if isinstance(e, streams.QueueName)) == f"0:1:{SITES_HANDLE}".encode()
    assert isinstance(events[2], streams.TxnRecord) and events[2].handle == b"TEST/OWN"
    assert isinstance(events[3], streams.QueueLastTimestamp) and events[3].date_ms == NOW_MS


def test_a_requester_too_far_behind_on_any_queue_must_redump(tmp_path: Path, store: LmdbStore) -> None:
    store.apply_replicated(f"0:2:{SITES_HANDLE}".encode(),
                           [ReplicatedTxn(7, NOW_MS - 50 * 86_400_000, TXN_ADD_HANDLE, b"TEST/A", (url("a"),))],
                           2, keep_copies=True)
    state = serving_state(store, tmp_path, primary=False)
    state.mirror.state.queue(f"2:{SITES_HANDLE}", 0).last_txn_id = 7
    events = served(state, {f"0:2:{SITES_HANDLE}": {"lastTxnId": 3, "lastTimestamp": 1000}}, None)
    assert events[0] == streams.TxnStreamHead(streams.TXN_FORMAT_ALL_SOURCES, streams.STATUS_NEED_TO_REDUMP)
    assert len(events) == 2  # no records, straight to the end


def test_a_bad_replication_state_document_is_a_protocol_error(tmp_path: Path, store: LmdbStore) -> None:
    request = RetrieveTxnLogRequest(replication_state=b"{not json")
    with pytest.raises(ProtocolError, match="Invalid replication state"):
        list(_all_sources(serving_state(store, tmp_path, primary=False), request, NOW_MS))  # type: ignore[arg-type]


def test_a_cut_all_sources_stream_keeps_what_arrived_and_the_next_round_continues(
        tmp_path: Path, store: LmdbStore) -> None:
    full = all_sources_stream(
        (f"0:2:{SITES_HANDLE}", [record(1, b"TEST/A", "a", 5000), record(2, b"TEST/B", "b", 5000)], 7000),
        (f"0:3:{SITES_HANDLE}", [record(1, b"TEST/C", "c", 5000)], 8000))
    cut = full[: full.index(b"TEST/C")]
    source = FakeSource(cut, all_sources_stream((f"0:3:{SITES_HANDLE}", [record(1, b"TEST/C", "c", 5000)], 8000)))
    mirror = make_mirror(tmp_path, store, source)
    assert mirror.run_round() == 2
    assert store.exists(b"TEST/B") and not store.exists(b"TEST/C")
    assert "ConnectionError" in (next(s for s in mirror.status() if s.queue == f"0:2:{SITES_HANDLE}").last_error
                                 or "")
    assert not (tmp_path / "txnstat.dct").exists()  # saved only after a complete answer
    assert mirror.run_round() == 1
    states = json.loads(source.requests[1].replication_state or b"")["replicationServerStates"]
    assert states[f"0:2:{SITES_HANDLE}"]["lastTxnId"] == 2  # from the store's mark: nothing pulled twice
    assert store.exists(b"TEST/C")


def test_a_queue_name_that_is_not_index_and_site_is_skipped_with_a_log_line(
        tmp_path: Path, store: LmdbStore, caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource(all_sources_stream(("garbage", [record(1, b"TEST/X", "x", 5000)], 7000),
                                           (f"0:2:{SITES_HANDLE}", [record(1, b"TEST/A", "a", 5000)], 7000)))
    assert make_mirror(tmp_path, store, source).run_round() == 1
    assert not store.exists(b"TEST/X") and store.exists(b"TEST/A")
    assert "queue name 'garbage' is not <index>:<site>" in caplog.text


def test_a_requester_ahead_of_a_kept_queue_must_redump(tmp_path: Path, store: LmdbStore) -> None:
    """A txn id from the future: the requester has ids of queue 2 this server never pulled."""
    _pulled_copies(store)
    events = served(serving_state(store, tmp_path, primary=False),
                    {f"0:2:{SITES_HANDLE}": {"lastTxnId": 99, "lastTimestamp": 7000}}, None)
    assert events[0].status == streams.STATUS_NEED_TO_REDUMP  # type: ignore[attr-defined]

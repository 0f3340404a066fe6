"""Receiving dumps: staging and swap, resume after a cut, failures that leave the store alone, prefixes
the mirror does not accept, and the replication state a dump leaves in txnstat.dct."""

from __future__ import annotations

from pathlib import Path

import pytest
from stream_support import ScriptedSource

from hdlserver.auth import keys
from hdlserver.client.admin import SecretKeyIdentity
from hdlserver.errors import HandleError
from hdlserver.replication import streams
from hdlserver.replication.dump import dump_from, record_dump_state
from hdlserver.replication.mirror import ReplicationState
from hdlserver.replication.streams import SegmentSigner, StreamMode
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.bodies import DumpHandlesRequest
from hdlserver.wire.site import Interface, ServerInfo, address_from_text
from hdlserver.wire.values import HandleValue, encode_value

KEY = keys.generate_key_pair("RSA", 1024)
SERVER = ServerInfo(1, address_from_text("127.0.0.1"), keys.public_key_to_bytes(KEY.public_key()),
                    (Interface(3, 1, 2641),))
IDENTITY = SecretKeyIdentity(b"0.NA/TEST", 301, b"x")
REQUEST = DumpHandlesRequest(2, 1, 0)


def value(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


def dump_bytes(handles: list[bytes], prefixes: list[bytes], *, done: bool = True, last_txn_id: int = 9) -> bytes:
    signer = SegmentSigner(StreamMode.PK, KEY)
    segments = [streams.dump_head(), streams.dump_other_site_info(
        '{\n  "other" = (\n{\n      "last_txn_id" = "4"\n      "last_timestamp" = "77"\n    }\n  )\n\n}\n'),
        streams.dump_this_server_info(5000, last_txn_id)]
    segments += [streams.dump_handle(h, [encode_value(value(h.decode()))]) for h in handles]
    segments += [streams.dump_homed_prefix(p) for p in prefixes]
    return b"".join(signer.segment(s) for s in segments) + (streams.DUMP_DONE if done else b"")


class FakeSource(ScriptedSource):
    def __init__(self, *answers: bytes) -> None:
        super().__init__(KEY, DumpHandlesRequest, *answers)


def run(server_dir: Path, source: FakeSource, accept: tuple[str, ...] | None = None):  # type: ignore[no-untyped-def]
    return dump_from(server_dir, "hdldb", 2, False, [SERVER], REQUEST, IDENTITY, source, 5.0, accept, retry_wait=0)


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    with open_store(tmp_path, case_sensitive=False, partitions=2, sync=False) as store:
        store.create_handle(b"TEST/OLD", [value("old")])
    return tmp_path


def test_a_complete_dump_replaces_the_store_and_sets_the_state(server_dir: Path) -> None:
    result = run(server_dir, FakeSource(dump_bytes([b"TEST/A", b"TEST/B"], [b"0.NA/TEST"])))
    assert (result.progress.handles, result.progress.prefixes) == (2, 1)
    with open_store(server_dir, case_sensitive=False, readonly=True) as store:
        assert list(store.iter_handles()) == [b"TEST/A", b"TEST/B"]
        assert store.homed_prefixes() == [b"0.NA/TEST"]
        assert store.partitions == 2
    state = record_dump_state(server_dir, result)
    loaded = ReplicationState.load(state.path)
    assert (loaded.queue("sources", 0).last_txn_id, loaded.queue("sources", 0).last_timestamp) == (9, 5000)
    assert loaded.queue("other", 0).last_txn_id == 4
    assert not (server_dir / "hdldb.dump").exists() and not (server_dir / "hdldb.old").exists()


def test_a_cut_dump_resumes_after_the_last_record(server_dir: Path) -> None:
    full = dump_bytes([b"TEST/A", b"TEST/B"], [b"0.NA/TEST"])
    cut = full[: full.index(b"TEST/B")]
    rest = SegmentSigner(StreamMode.PK, KEY)
    resumed = b"".join(rest.segment(s) for s in (streams.dump_head(), streams.dump_handle(
        b"TEST/B", [encode_value(value("TEST/B"))]), streams.dump_homed_prefix(b"0.NA/TEST"))) + streams.DUMP_DONE
    source = FakeSource(cut, resumed)
    result = run(server_dir, source)
    assert source.requests[1].starting_point == b"TEST/A" and source.requests[1].starting_point_type == 2
    assert result.progress.handles == 2
    with open_store(server_dir, case_sensitive=False, readonly=True) as store:
        assert list(store.iter_handles()) == [b"TEST/A", b"TEST/B"]


def test_a_dump_that_never_completes_leaves_the_store_alone(server_dir: Path) -> None:
    source = FakeSource(dump_bytes([b"TEST/A"], [], done=False))
    with pytest.raises(HandleError, match="no source server completed a dump"):
        run(server_dir, source)
    assert len(source.requests) == 4  # the first try, then three without progress
    with open_store(server_dir, case_sensitive=False, readonly=True) as store:
        assert list(store.iter_handles()) == [b"TEST/OLD"]
    assert not (server_dir / "hdldb.dump").exists()


def test_prefixes_not_accepted_are_left_out_of_the_dump(server_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    result = run(server_dir, FakeSource(dump_bytes([b"OTHER/X", b"TEST/A"], [b"0.NA/OTHER", b"0.NA/TEST"])),
                 accept=("TEST",))
    assert (result.progress.handles, result.progress.skipped, result.progress.prefixes) == (1, 1, 1)
    assert "1 handles of prefixes this server does not accept (replication_accept_prefixes) were left out" \
        in caplog.text
    with open_store(server_dir, case_sensitive=False, readonly=True) as store:
        assert list(store.iter_handles()) == [b"TEST/A"] and store.homed_prefixes() == [b"0.NA/TEST"]

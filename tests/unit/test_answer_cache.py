"""The resolution hot path with its caches: byte-identical to the full path, never stale, bounded.

``fast_answer`` reads records through ``LmdbStore.get_record``, whose RecordCache entries are validated
against the LMDB snapshot id of their partition, and asks ``HomedPrefixes.serves``, which remembers a
verdict per prefix. Writes come from this process (the store, home/unhome) and from other processes
(hdl-loadjson, hdl-dbremove on the same directory); each must be seen by the very next resolution.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import run_cli, setup_server_dir

from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.core.context import InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.core.resolve import fast_answer
from hdlserver.errors import StorageError
from hdlserver.serverdir import open_server_state
from hdlserver.store.lmdb_store import LmdbStore
from hdlserver.store.record_cache import RecordCache
from hdlserver.wire.bodies import ResolutionRequest, ResolutionResponse, SiteInfoRequest
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope
from hdlserver.wire.values import HandleValue

FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO
NOW = 1_800_000_000.0


def url(text: str, index: int = 1) -> HandleValue:
    return HandleValue(index, b"URL", text.encode())


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("answer-cache") / "srv"
    setup_server_dir(directory)
    return directory


@pytest.fixture
def state(server_dir: Path) -> Iterator[ServerState]:
    state = open_server_state(server_dir, clock=lambda: NOW)
    try:
        yield state
    finally:
        state.store.close()


def resolution(handle: bytes, flags: int = FLAGS, version: tuple[int, int] = (2, 11)) -> bytes:
    return build_request(OpCode.RESOLUTION, ResolutionRequest(handle=handle), flags, version=version)


def fast(state: ServerState, request: bytes) -> tuple[int, tuple[HandleValue, ...]]:
    """(response code, values) of the hot path's answer; it must answer."""
    answer = fast_answer(state, request)
    assert answer is not None
    message = decode_answer(answer.response)
    assert message.header.response_code == answer.response_code
    values = message.body.values if isinstance(message.body, ResolutionResponse) else ()
    return answer.response_code, values


def full_path(state: ServerState, request: bytes) -> bytes:
    outcome = Dispatcher(state).handle(decode_envelope(request), request[ENVELOPE_SIZE:],
                                       RequestInfo("UDP", "127.0.0.1", InterfaceRole(), NOW))
    assert len(outcome.messages) == 1
    return outcome.messages[0]


def store_of(state: ServerState) -> LmdbStore:
    assert isinstance(state.store, LmdbStore)
    return state.store


@pytest.mark.parametrize("request_bytes", [
    resolution(b"TEST/hello"),
    resolution(b"test/HELLO"),
    resolution(b"TEST/missing"),
    resolution(b"TEST/hello", FLAGS | OpFlag.RD),
    resolution(b"TEST/missing", OpFlag.REC | OpFlag.RD | OpFlag.DNRF),
    resolution(b"TEST/hello", version=(2, 5)),
    build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(handle=b"/")),
    build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(handle=b"/"), FLAGS | OpFlag.RD, version=(2, 7)),
], ids=["hit", "hit-other-case", "miss", "hit-digest", "miss-digest", "hit-v2.5", "site-info", "site-info-digest"])
def test_fast_answer_is_the_full_paths_answer_cold_and_cached(state: ServerState, request_bytes: bytes) -> None:
    expected = full_path(state, request_bytes)
    for _ in range(3):  # the first call fills the caches, the others are answered from them
        answer = fast_answer(state, request_bytes)
        assert answer is not None
        assert answer.response == expected


def test_same_process_writes_are_seen_by_the_next_resolution(state: ServerState) -> None:
    store = store_of(state)
    handle = b"TEST/same-process"
    request = resolution(handle)
    assert fast(state, request) == (ResponseCode.HANDLE_NOT_FOUND, ())  # the absence is cached too
    store.create_handle(handle, [url("http://example.org/1")])
    assert fast(state, request) == (ResponseCode.SUCCESS, (url("http://example.org/1"),))
    store.replace_values(handle, [url("http://example.org/2"), url("http://example.org/3", 2)])
    assert fast(state, request) == (ResponseCode.SUCCESS, (url("http://example.org/2"), url("http://example.org/3", 2)))
    assert state.store.get_values(handle) == (url("http://example.org/2"), url("http://example.org/3", 2))
    store.delete_handle(handle)
    assert fast(state, request) == (ResponseCode.HANDLE_NOT_FOUND, ())
    assert state.store.get_record(handle) is None


def test_other_process_writes_are_seen_by_the_next_resolution(state: ServerState, server_dir: Path,
                                                              tmp_path: Path) -> None:
    """hdl-loadjson and hdl-dbremove write the store of the (open) server directory from their own process."""
    handle = b"TEST/other-process"
    request = resolution(handle)
    records = tmp_path / "records.json"
    assert fast(state, request) == (ResponseCode.HANDLE_NOT_FOUND, ())
    for n in (1, 2):
        records.write_text(json.dumps([{"handle": handle.decode(), "values": [
            {"index": 1, "type": "URL", "data": f"http://example.org/v{n}"}]}]), encoding="utf-8")
        run_cli("hdlserver.cli.loadjson", server_dir, records, "--overwrite")
        code, values = fast(state, request)
        assert (code, [v.data for v in values]) == (ResponseCode.SUCCESS, [f"http://example.org/v{n}".encode()])
    run_cli("hdlserver.cli.dbremove", server_dir, handle.decode())
    assert fast(state, request) == (ResponseCode.HANDLE_NOT_FOUND, ())


def test_a_value_made_private_leaves_the_hot_path(state: ServerState) -> None:
    """A cached public record that turns non-public must not be served from the cache: the full path decides."""
    handle = b"TEST/goes-private"
    request = resolution(handle)
    state.store.create_handle(handle, [url("http://example.org/public")])
    assert fast(state, request)[0] == ResponseCode.SUCCESS
    state.store.replace_values(handle, [HandleValue(1, b"URL", b"http://example.org/secret", permissions=0x0C)])
    assert fast_answer(state, request) is None
    state.store.delete_handle(handle)


def test_unhoming_a_prefix_is_seen_by_the_next_resolution(state: ServerState) -> None:
    handle = b"CACHED/1"
    request = resolution(handle)
    assert fast_answer(state, request) is None  # not homed: the full path answers RC 301
    state.homed.home(b"CACHED")
    try:
        state.store.create_handle(handle, [url("http://example.org/cached")])
        assert fast(state, request) == (ResponseCode.SUCCESS, (url("http://example.org/cached"),))
    finally:
        state.homed.unhome(b"CACHED")
    assert fast_answer(state, request) is None
    state.store.delete_handle(handle)


def test_a_prefix_homed_by_another_process_is_seen_by_the_next_resolution(state: ServerState,
                                                                         server_dir: Path) -> None:
    handle = b"ELSEWHERE/1"
    request = resolution(handle)
    state.store.create_handle(handle, [url("http://example.org/elsewhere")])
    try:
        assert fast_answer(state, request) is None  # not homed: the full path answers RC 301
        run_cli("hdlserver.cli.loadjson", server_dir, "--home", "ELSEWHERE")
        assert b"0.NA/ELSEWHERE" in state.homed
        assert fast(state, request) == (ResponseCode.SUCCESS, (url("http://example.org/elsewhere"),))
    finally:
        state.homed.unhome(b"ELSEWHERE")
        state.store.delete_handle(handle)
    assert fast_answer(state, request) is None


def test_the_record_cache_stays_within_its_bounds(state: ServerState) -> None:
    store = store_of(state)
    store.record_cache = RecordCache(max_entries=50, max_bytes=20_000)
    big = HandleValue(1, b"DATA", b"x" * 3000)
    store.create_handles([(b"TEST/bound-%d" % n, [url(f"http://example.org/{n}")]) for n in range(300)])
    store.create_handles([(b"TEST/big-%d" % n, [big]) for n in range(20)])
    try:
        for _ in range(2):
            for n in range(300):
                assert fast(state, resolution(b"TEST/bound-%d" % n)) == (
                    ResponseCode.SUCCESS, (url(f"http://example.org/{n}"),))
                assert fast(state, resolution(b"TEST/no-such-%d" % n))[0] == ResponseCode.HANDLE_NOT_FOUND
                assert len(store.record_cache) <= 50
            for n in range(20):
                assert store.get_values(b"TEST/big-%d" % n) == (big,)
                assert store.record_cache.size_bytes <= 20_000
        assert len(store.record_cache) > 0
    finally:
        for n in range(300):
            store.delete_handle(b"TEST/bound-%d" % n)
        for n in range(20):
            store.delete_handle(b"TEST/big-%d" % n)


def test_a_closed_store_fails_even_for_cached_handles(server_dir: Path) -> None:
    state = open_server_state(server_dir, clock=lambda: NOW)
    assert state.store.get_record(b"TEST/hello") is not None
    state.store.close()
    with pytest.raises(StorageError, match="closed"):
        state.store.get_record(b"TEST/hello")

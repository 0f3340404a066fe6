"""Answer templates (hdlserver/core/answer_templates.py): a repeated request is answered from saved bytes with
its own request id and the current expiration written in -- byte for byte the full path's answer -- and a
template is never used once a commit may have changed what it says.

(tests/unit/test_answer_cache.py checks the same hot path against writes from this and other processes,
answering every request several times, so from templates too.)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from repl_support import add_server_config
from servers import setup_server_dir

from hdlserver.client.resolver import build_request
from hdlserver.core.answer_templates import MAX_TEMPLATE_BYTES, AnswerTemplate, AnswerTemplates, template_key
from hdlserver.core.context import InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.core.resolve import fast_answer
from hdlserver.serverdir import open_server_state
from hdlserver.store.record_cache import RecordCache
from hdlserver.wire.bodies import ResolutionRequest, SiteInfoRequest
from hdlserver.wire.codes import OpCode, OpFlag
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope
from hdlserver.wire.values import HandleValue

FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("templates") / "srv"
    setup_server_dir(directory)
    return directory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(server_dir: Path, clock: Clock) -> Iterator[ServerState]:
    s = open_server_state(server_dir, clock=clock)
    yield s
    s.store.close()


def request(handle: bytes, request_id: int, expiration: int = 0, flags: int = FLAGS) -> bytes:
    """A resolution with the given request id and header expiration (Java clients send now + 12 h)."""
    data = bytearray(build_request(OpCode.RESOLUTION, ResolutionRequest(handle), flags))
    data[8:12] = struct.pack(">i", request_id)
    data[36:40] = struct.pack(">i", expiration)
    return bytes(data)


def full_path(state: ServerState, data: bytes) -> bytes:
    outcome = Dispatcher(state).handle(decode_envelope(data), data[ENVELOPE_SIZE:],
                                       RequestInfo("UDP", "127.0.0.1", InterfaceRole(), 0.0))
    (message,) = outcome.messages
    return message


def test_request_id_and_expiration_are_written_into_the_template(state: ServerState, clock: Clock) -> None:
    first = fast_answer(state, request(b"TEST/hello", 7, expiration=1000))
    assert first is not None and len(state.answer_templates) == 1
    clock.now += 3600
    for request_id, expiration in ((8, 1001), (-5, 99), (2**31 - 1, 1000)):
        data = request(b"TEST/hello", request_id, expiration)
        answer = fast_answer(state, data)
        assert answer is not None and answer.response == full_path(state, data)
        assert decode_envelope(answer.response).request_id == request_id
    assert len(state.answer_templates) == 1  # the request's own expiration is not part of the key


def test_each_spelling_flag_set_and_version_has_its_own_template(state: ServerState) -> None:
    requests = [request(b"TEST/hello", 1), request(b"test/HELLO", 1),
                request(b"TEST/hello", 1, flags=FLAGS | OpFlag.RD),
                build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"), FLAGS, version=(2, 5))]
    for data in requests * 2:
        answer = fast_answer(state, data)
        assert answer is not None and answer.response == full_path(state, data)
    assert len(state.answer_templates) == len(requests)


def test_a_commit_to_the_records_partition_retires_the_template(state: ServerState) -> None:
    handle = b"TEST/templated"
    data = request(handle, 1)
    state.store.create_handle(handle, [HandleValue(1, b"URL", b"http://example.org/1")])
    try:
        assert fast_answer(state, data).response == full_path(state, data)  # type: ignore[union-attr]
        state.store.replace_values(handle, [HandleValue(1, b"URL", b"http://example.org/2")])
        answer = fast_answer(state, data)
        assert answer is not None and b"http://example.org/2" in answer.response
        assert answer.response == full_path(state, data)
    finally:
        state.store.delete_handle(handle)
    answer = fast_answer(state, data)
    assert answer is not None and answer.response == full_path(state, data)  # the absence, again from scratch


def test_an_answer_the_record_cache_cannot_vouch_for_gets_no_template(state: ServerState) -> None:
    state.store.record_cache = RecordCache(max_entries=0)  # type: ignore[attr-defined]
    for request_id in (1, 2):
        data = request(b"TEST/hello", request_id)
        answer = fast_answer(state, data)
        assert answer is not None and answer.response == full_path(state, data)
    assert len(state.answer_templates) == 0


def test_site_info_templates_need_no_store(state: ServerState) -> None:
    data = build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(handle=b"/"))
    assert fast_answer(state, data).response == full_path(state, data)  # type: ignore[union-attr]
    again = fast_answer(state, data)
    assert again is not None and again.response == full_path(state, data)


def _template(size: int) -> AnswerTemplate:
    return AnswerTemplate(b"e" * 8, b"h" * 24, b"b" * size, 0, 1, 1, 1, 1, b"X/y", (2, 11))


def test_the_table_stays_within_its_bounds_and_refuses_large_answers() -> None:
    table = AnswerTemplates(max_entries=10, max_bytes=10_000)
    for n in range(100):
        table.put(b"key-%d" % n, _template(100))
        assert len(table) <= 10 and table.size_bytes <= 10_000
    assert table.get(b"key-99") is not None and table.get(b"key-0") is None  # the oldest went first
    table.put(b"big", _template(MAX_TEMPLATE_BYTES + 1))
    assert table.get(b"big") is None
    table.clear()
    assert len(table) == 0 and table.size_bytes == 0


def test_the_key_leaves_out_only_the_request_id_and_the_expiration() -> None:
    a, b = request(b"TEST/a", 1, 5), request(b"TEST/a", 2, 6)
    assert template_key(a) == template_key(b) and len(template_key(a)) == len(a) - 8
    assert template_key(request(b"TEST/b", 1, 5)) != template_key(a)


@pytest.mark.parametrize("entries", [0, 3])
def test_resolution_cache_entries_bounds_both_caches(tmp_path: Path, clock: Clock, entries: int) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    add_server_config(directory, f'"resolution_cache_entries" = "{entries}"')
    state = open_server_state(directory, clock=clock)
    try:
        assert state.answer_templates.max_entries == entries
        assert state.store.record_cache.max_entries == entries  # type: ignore[attr-defined]
        for n in range(10):
            data = request(b"TEST/hello" if n % 2 else b"TEST/missing-%d" % n, n)
            answer = fast_answer(state, data)
            assert answer is not None and answer.response == full_path(state, data)
        assert len(state.answer_templates) <= entries and len(state.store.record_cache) <= entries  # type: ignore
    finally:
        state.store.close()

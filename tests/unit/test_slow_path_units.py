"""The slow path: work in one worker thread, a bounded queue, and a stop that finishes what was queued; and
what the transports answer when it is full (RC 3 "server too busy" on UDP and TCP, 503 over HTTP)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from servers import setup_server_dir

from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.core.context import InterfaceRole, ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.http.messages import HttpRequest, HttpResponse
from hdlserver.http.protocol import HttpConnections, HttpLimits, HttpProtocol
from hdlserver.net.access import AccessLog
from hdlserver.net.slow_path import SlowPath, SlowPathClosed
from hdlserver.net.tcp import TcpConnections, TcpHandleProtocol
from hdlserver.net.udp import UdpHandleProtocol
from hdlserver.serverdir import open_server_state
from hdlserver.wire.bodies import ResolutionRequest
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode

PLAIN = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
CERTIFIED = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"),
                          OpFlag.REC | OpFlag.CA | OpFlag.PO | OpFlag.CT)  # signed: not the fast path


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerState]:
    directory = tmp_path_factory.mktemp("slow") / "srv"
    setup_server_dir(directory)
    s = open_server_state(directory)
    yield s
    s.store.close()


def test_work_runs_in_the_worker_thread_in_order_and_the_pending_count_is_kept() -> None:
    async def scenario() -> None:
        slow = SlowPath(max_pending=2)
        order: list[str] = []
        gate = threading.Event()

        def job(name: str) -> str:
            gate.wait(5)
            order.append(name)
            return threading.current_thread().name

        first, second = slow.run(job, "first"), slow.run(job, "second")
        assert slow.full and slow.pending == 2
        gate.set()
        names = await asyncio.gather(first, second)
        assert order == ["first", "second"]
        assert all(n.startswith("hdl-slow-path") for n in names)
        assert slow.pending == 0 and not slow.full
        await slow.close(5)

    asyncio.run(scenario())


def test_close_finishes_queued_work_then_refuses_new_work() -> None:
    async def scenario() -> tuple[list[int], bool]:
        slow = SlowPath()
        done: list[int] = []
        futures = [slow.run(lambda i=i: (time.sleep(0.05), done.append(i))) for i in range(3)]
        await slow.close(5)
        assert all(f.done() for f in futures)
        try:
            slow.run(done.append, 99)
        except SlowPathClosed:
            return done, True
        return done, False

    assert asyncio.run(scenario()) == ([0, 1, 2], True)


class FakeDatagramTransport(asyncio.DatagramTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: object = None) -> None:  # type: ignore[override]
        self.sent.append(bytes(data))

    def is_closing(self) -> bool:
        return False


class FakeStreamTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def writelines(self, lines: object) -> None:  # type: ignore[override]
        for line in lines:  # type: ignore[attr-defined]
            self.written += line

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def tcp_protocol(state: ServerState, slow: SlowPath) -> TcpHandleProtocol:
    return TcpHandleProtocol(state, Dispatcher(state), InterfaceRole(), AccessLog(False, "TCP"), TcpConnections(4),
                             60.0, slow)


def _codes(data: bytes) -> list[int]:
    codes, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at + 16 : at + 20], "big")
        codes.append(decode_answer(data[at : at + 20 + length]).header.response_code)
        at += 20 + length
    return codes


def test_a_full_slow_path_answers_server_too_busy_on_udp_and_tcp(state: ServerState) -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        slow = SlowPath(max_pending=0)
        udp = UdpHandleProtocol(state, Dispatcher(state), InterfaceRole(), AccessLog(False, "UDP"), 16, slow)
        datagrams = FakeDatagramTransport()
        udp.connection_made(datagrams)
        udp.datagram_received(CERTIFIED, ("127.0.0.1", 40000))
        udp.datagram_received(PLAIN, ("127.0.0.1", 40000))  # the fast path does not queue: still answered
        tcp = tcp_protocol(state, slow)
        stream = FakeStreamTransport()
        tcp.connection_made(stream)
        tcp.data_received(CERTIFIED + PLAIN)
        await slow.close(5)
        return datagrams.sent, bytes(stream.written)

    sent, written = asyncio.run(scenario())
    assert [decode_answer(d).header.response_code for d in sent] == [ResponseCode.SERVER_TOO_BUSY,
                                                                     ResponseCode.SUCCESS]
    assert decode_answer(sent[0]).body.message == b"Server too busy"  # type: ignore[attr-defined]
    assert _codes(written) == [ResponseCode.SERVER_TOO_BUSY, ResponseCode.SUCCESS]


def test_a_tcp_connection_reads_nothing_while_its_request_is_in_the_worker(state: ServerState) -> None:
    async def scenario() -> tuple[bool, list[int], bool]:
        slow = SlowPath()
        tcp = tcp_protocol(state, slow)
        stream = FakeStreamTransport()
        tcp.connection_made(stream)
        tcp.data_received(CERTIFIED + PLAIN)
        paused = not stream.reading
        await slow.close(5)
        return paused, _codes(bytes(stream.written)), stream.reading

    paused, codes, reading_again = asyncio.run(scenario())
    assert paused and reading_again
    assert codes == [ResponseCode.SUCCESS, ResponseCode.SUCCESS]  # the plain one waited for the certified one


def test_a_full_slow_path_answers_503_over_http() -> None:
    def app(request: HttpRequest) -> HttpResponse:
        raise AssertionError("a full slow path runs nothing")

    async def scenario() -> bytes:
        slow = SlowPath(max_pending=0)
        protocol = HttpProtocol(app, HttpLimits(), HttpConnections(), slow)
        stream = FakeStreamTransport()
        protocol.connection_made(stream)
        protocol.data_received(b"GET /api/handles/TEST/hello HTTP/1.1\r\nHost: x\r\n\r\n")
        await slow.close(5)
        return bytes(stream.written)

    written = asyncio.run(scenario())
    assert written.startswith(b"HTTP/1.1 503 ") and written.endswith(b"Server too busy")


def test_an_http_response_made_in_the_worker_is_sent_and_the_next_request_then_read() -> None:
    threads: list[str] = []

    def app(request: HttpRequest) -> HttpResponse:
        threads.append(threading.current_thread().name)
        return HttpResponse(200, [("Content-Type", "text/plain")], request.path.encode())

    async def scenario() -> bytes:
        slow = SlowPath()
        protocol = HttpProtocol(app, HttpLimits(), HttpConnections(), slow)
        stream = FakeStreamTransport()
        protocol.connection_made(stream)
        protocol.data_received(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(200):
            if stream.written.count(b"HTTP/1.1 200") == 2:
                break
            await asyncio.sleep(0.01)
        await slow.close(5)
        return bytes(stream.written)

    written = asyncio.run(scenario())
    assert written.index(b"/one") < written.index(b"/two")  # pipelined requests answered in order
    assert len(threads) == 2 and all(t.startswith("hdl-slow-path") for t in threads)


def test_stopping_waits_for_an_http_response_under_way_and_sends_it() -> None:
    """What net/server.py does at SIGTERM: slow.close() before the connections close."""
    release = threading.Event()

    def app(request: HttpRequest) -> HttpResponse:
        release.wait(5)
        return HttpResponse(200, [("Content-Type", "text/plain")], b"made while stopping")

    async def scenario() -> tuple[bytes, bytes]:
        slow = SlowPath()
        protocol = HttpProtocol(app, HttpLimits(), HttpConnections(), slow)
        stream = FakeStreamTransport()
        protocol.connection_made(stream)
        protocol.data_received(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        before = bytes(stream.written)
        asyncio.get_running_loop().call_later(0.2, release.set)
        await slow.close(5)
        return before, bytes(stream.written)

    before, after = asyncio.run(scenario())
    assert before == b""  # nothing was answered before the work finished
    assert after.startswith(b"HTTP/1.1 200 ") and after.endswith(b"made while stopping")

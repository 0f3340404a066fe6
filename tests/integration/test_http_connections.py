"""HTTP connection handling on real loopback sockets: keep-alive, pipelining, body and header limits, slow and
idle clients, and the connection limit."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import (
    InProcessHttp,
    ResponseReader,
    closed_by_server,
    http_server_dir,
    in_process_http,
    read_http_response,
)

from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.http.protocol import MAX_BODY_BYTES
from hdlserver.wire.bodies import ResolutionRequest, ResolutionResponse
from hdlserver.wire.codes import OpCode

IDLE_MS = 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHttp]:
    directory = tmp_path_factory.mktemp("connections") / "srv"
    http_server_dir(directory, interface={"max_idle_time": str(IDLE_MS)})
    with in_process_http(directory) as srv:
        yield srv


def connect(srv: InProcessHttp) -> socket.socket:
    return socket.create_connection(srv.address, timeout=5)


def get_request(path: str, *extra: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: test", *extra]) + "\r\n\r\n").encode()


def test_keep_alive_serves_several_requests_on_one_connection(server: InProcessHttp) -> None:
    with connect(server) as sock:
        for path in ("/api/site", "/api/handles/TEST/hello", "/api/site"):
            sock.sendall(get_request(path))
            status, _headers, _body = read_http_response(sock)
            assert status == 200


def test_pipelined_requests_are_answered_in_order(server: InProcessHttp) -> None:
    native = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    tunnel = (b"POST / HTTP/1.1\r\nHost: test\r\nAccept: application/x-hdl-message\r\n"
              b"Content-Type: application/x-hdl-message\r\nContent-Length: " + str(len(native)).encode() +
              b"\r\n\r\n" + native)
    with connect(server) as sock:
        sock.sendall(get_request("/api/handles/TEST/missing") + tunnel + get_request("/api/site")
                     + get_request("/api/handles/TEST/hello", "Connection: close"))
        reader = ResponseReader(sock)
        first, second, third, fourth = (reader.next() for _ in range(4))
        assert reader.buffer == b""
        assert closed_by_server(sock, within=2)
    assert [r[0] for r in (first, second, third, fourth)] == [404, 200, 200, 200]
    assert b'"TEST/missing"' in first[2]
    assert isinstance(decode_answer(second[2]).body, ResolutionResponse)
    assert b'"handle":"TEST/hello"' in fourth[2]


def test_http_1_0_closes_after_the_response(server: InProcessHttp) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api/site HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ") and b'"responseCode":1' in data


def test_declared_oversized_body_is_413_before_it_is_sent(server: InProcessHttp) -> None:
    with connect(server) as sock:
        sock.sendall(b"PUT /api/handles/TEST/big HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(MAX_BODY_BYTES + 1).encode() + b"\r\n\r\n")
        status, headers, _body = read_http_response(sock)
        assert status == 413 and headers.get("connection") == "close"
        assert closed_by_server(sock, within=2)


def test_chunked_body_growing_past_the_limit_is_413(server: InProcessHttp) -> None:
    chunk = b"x" * 65536
    with connect(server) as sock:
        sock.sendall(b"PUT /api/handles/TEST/big HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        answered = b""
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        sock.settimeout(5)
        try:
            while data := sock.recv(65536):
                answered += data
        except ConnectionResetError:
            pass
    assert answered.startswith(b"HTTP/1.1 413 ")


def test_oversized_request_head_is_refused(server: InProcessHttp) -> None:
    with connect(server) as sock:
        sock.sendall(get_request("/api/site", "X-Big: " + "a" * 20000))
        status, _headers, _body = read_http_response(sock)
        assert status == 431
        assert closed_by_server(sock, within=2)


def test_slowloris_head_is_cut_off(server: InProcessHttp) -> None:
    """A client that keeps sending its head one byte at a time is closed once the head deadline passes."""
    head = get_request("/api/site", *(f"X-Slow-{i}: {'v' * 20}" for i in range(40)))
    started = time.monotonic()
    closed = False
    with connect(server) as sock:
        for byte in head:
            try:
                sock.sendall(bytes((byte,)))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.02)
            if time.monotonic() - started > 5:
                break
        closed = closed or closed_by_server(sock, within=2)
    assert closed
    assert time.monotonic() - started < IDLE_MS / 1000 + 3


def test_stalled_body_is_cut_off(server: InProcessHttp) -> None:
    with connect(server) as sock:
        sock.sendall(b"PUT /api/handles/TEST/x HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n[{")
        started = time.monotonic()
        assert closed_by_server(sock, within=5)
        assert time.monotonic() - started < IDLE_MS / 1000 + 2


def test_idle_keep_alive_connection_is_closed(server: InProcessHttp) -> None:
    with connect(server) as sock:
        sock.sendall(get_request("/api/site"))
        assert read_http_response(sock)[0] == 200
        started = time.monotonic()
        assert closed_by_server(sock, within=5)
        assert IDLE_MS / 1000 - 0.2 < time.monotonic() - started < IDLE_MS / 1000 + 2


def test_expect_100_continue(server: InProcessHttp) -> None:
    body = b'{"type": "URL"}'
    with connect(server) as sock:
        sock.sendall(b"POST /api/handles/TEST/hello HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)
        status, _headers, payload = read_http_response(sock)
    assert status == 200 and b'"type":"URL"' in payload


def test_connection_limit(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    http_server_dir(directory, server_config={"max_tcp_connections": "3"})
    with in_process_http(directory) as srv:
        held = [connect(srv) for _ in range(3)]
        try:
            time.sleep(0.2)  # let the server accept them
            with connect(srv) as extra:
                assert closed_by_server(extra, within=2)
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the slots free up once the server sees the closes
            with connect(srv) as sock:
                sock.sendall(get_request("/api/site", "Connection: close"))
                try:
                    if read_http_response(sock)[0] == 200:
                        break
                except ConnectionError:
                    time.sleep(0.1)
        else:
            pytest.fail("the server did not accept connections again")

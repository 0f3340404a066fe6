"""Stopping under load: every write acknowledged before SIGTERM is kept, the answers in flight reach their
clients, the process exits 0 and the store opens cleanly afterwards."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from servers import setup_server_dir, start_server

from hdlserver.cli.dblist import open_server_store
from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import Resolver, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message
from hdlserver.errors import HandleError
from hdlserver.wire.bodies import ResolutionRequest, ResolutionResponse
from hdlserver.wire.codes import OpCode
from hdlserver.wire.values import HandleValue

NAME = "TEST/stop-{}-{:05d}"
MAX_WRITES = 5_000  # per writer; the server is stopped long before
WRITERS = 3


def logged(access_log: Path, handle: bytes) -> int:
    return access_log.read_bytes().count(handle) if access_log.exists() else 0


def url(i: int) -> list[HandleValue]:
    return [HandleValue(1, b"URL", b"https://example.org/%d" % i)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_during_writes_keeps_every_acknowledged_write(tmp_path: Path, sig: int) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    acknowledged: list[list[bytes]] = [[] for _ in range(WRITERS)]
    failures: list[str] = []

    def writer(n: int) -> None:
        try:
            with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"secret"), timeout=10) as admin:
                for i in range(MAX_WRITES):
                    handle = NAME.format(n, i).encode()
                    admin.create_handle(handle, url(i))
                    acknowledged[n].append(handle)
        except (HandleError, OSError) as exc:  # the server went away mid-request: expected once it stops
            failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while min(len(a) for a in acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert min(len(a) for a in acknowledged) >= 20, failures
        assert server.stop(sig) == 0
    finally:
        server.stop(signal.SIGKILL)
        for thread in threads:
            thread.join(30)
    assert len(failures) == WRITERS, "every writer ends when the server stops"
    assert "stopped" in server.error_log()

    acked = {h for a in acknowledged for h in a}
    with open_server_store(directory, readonly=True) as store:
        stored = {h for h in store.iter_handles() if h.startswith(b"TEST/STOP-")}
        # Acknowledged means committed; an answer the server had produced was delivered before it closed
        # the connection, so nothing is stored that its writer did not hear about, except the one request
        # per writer that may have been read and committed just as the connection closed.
        assert {h.upper() for h in acked} <= stored
        assert len(stored - {h.upper() for h in acked}) <= WRITERS
        ids = [t.txn_id for t in store.transactions_since(0)]
        assert ids == sorted(ids) and store.last_txn_id() == ids[-1]
        for handle in list(acked)[:: max(1, len(acked) // 50)]:
            assert store.get_values(handle)[0].data.startswith(b"https://example.org/")

    restarted = start_server(directory, port)
    try:
        resolver = Resolver([restarted.address], udp=False)
        last = acknowledged[0][-1]
        assert resolver.resolve(last).values[0].data == b"https://example.org/%d" % (len(acknowledged[0]) - 1)
    finally:
        assert restarted.stop() == 0


def test_answers_queued_for_a_slow_reader_are_delivered_before_the_process_exits(tmp_path: Path) -> None:
    """Pipelined requests whose answers (~24 MB) are still in the server's send buffer when SIGTERM arrives."""
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    big = [HandleValue(i, b"DESC", bytes([65 + i]) * 120_000) for i in range(1, 3)]
    with open_server_store(directory, readonly=False) as store:
        store.create_handle(b"TEST/big", big)
    server = start_server(directory, port)
    pipelined = 100
    request = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/big"))
    try:
        with socket.create_connection(server.address, timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(request * pipelined)
            # The server answers all of them into its send buffer (each answer is logged); nothing is read yet.
            access_log = directory / "logs" / "access.log"
            deadline = time.monotonic() + 30
            while logged(access_log, b"TEST/big") < pipelined and time.monotonic() < deadline:
                time.sleep(0.05)
            assert logged(access_log, b"TEST/big") == pipelined
            server.process.send_signal(signal.SIGTERM)
            answers = [read_tcp_message(sock) for _ in range(pipelined)]
            assert sock.recv(1) == b""  # then the server closes the connection
        assert server.process.wait(30) == 0  # (a second SIGTERM from stop() could hit the exiting process)
    finally:
        server.stop(signal.SIGKILL)
    for answer in (answers[0], answers[-1]):
        body = decode_answer(answer).body
        assert isinstance(body, ResolutionResponse) and [v.data for v in body.values] == [v.data for v in big]

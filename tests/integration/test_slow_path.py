"""Requests beyond plain resolutions run off the event loop (hdlserver/net/slow_path.py), with a real server.

The slow request here is an administrator whose identity is homed on a server that accepts connections and
never answers, so verifying it takes the whole ``REMOTE_TIMEOUT``: meanwhile resolutions over UDP and TCP are
answered at once, answers on one TCP connection keep their order, and a server stopped meanwhile still sends
that administrator its answer before it exits.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, free_port, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.core.remote_identity import REMOTE_TIMEOUT
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.bodies import ResolutionRequest
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import decode_envelope
from hdlserver.wire.site import encode_site
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

TARGET = b"TEST/slow-target"
HOLE_ADMIN = SecretKeyIdentity(b"HOLE/admin", 300, b"hole-pass")


class BlackHole:
    """A TCP listener (and UDP socket) on one loopback port that accepts and never says a word."""

    def __init__(self) -> None:
        self.port = free_port()
        self.tcp = socket.create_server(("127.0.0.1", self.port))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for s in (self.tcp, self.udp, *self.accepted):
            s.close()
        self._thread.join(5)


@pytest.fixture()
def hole() -> Iterator[BlackHole]:
    h = BlackHole()
    yield h
    h.close()


@pytest.fixture()
def server(tmp_path: Path, hole: BlackHole) -> Iterator[ServerProcess]:
    """A server whose TEST/slow-target is administered by HOLE/admin, homed on the black hole's site."""
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    own = read_site_info_file(directory / "siteinfo.json")
    site = dataclasses.replace(own, servers=tuple(
        dataclasses.replace(s, interfaces=tuple(dataclasses.replace(i, port=hole.port) for i in s.interfaces))
        for s in own.servers))
    with open_store(directory, case_sensitive=False, sync=False) as store:
        store.create_handles([
            (b"0.NA/HOLE", [HandleValue(1, b"HS_SITE", encode_site(site))]),
            (TARGET, [HandleValue(100, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, HOLE_ADMIN.handle, 300))),
                      HandleValue(1, b"URL", b"https://example.org/slow")])], log=False)
    process = start_server(directory, port)
    yield process
    process.stop()


def start_hole_admin(server: ServerProcess) -> tuple[threading.Thread, list[object]]:
    """The slow request, in a thread: its outcome (an exception or None) lands in the returned list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            with AdminClient(server.address, HOLE_ADMIN, timeout=30) as admin:
                admin.add_values(TARGET, [HandleValue(7, b"EMAIL", b"hole@example.org")])
            outcome.append(None)
        except Exception as e:  # the test inspects whatever it was
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_until_connected(hole: BlackHole) -> None:
    """The server has started verifying HOLE/admin at the black hole: the slow request is under way."""
    deadline = time.monotonic() + 10
    while not hole.accepted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert hole.accepted, "the server never contacted the identity's server"


def test_resolutions_are_answered_while_an_admin_request_waits(server: ServerProcess, hole: BlackHole) -> None:
    thread, outcome = start_hole_admin(server)
    wait_until_connected(hole)
    for transport in ({"udp": True, "tcp": False}, {"udp": False, "tcp": True}):
        for _ in range(20):
            began = time.monotonic()
            resolution = Resolver([server.address], tcp_timeout=2.0, **transport).resolve("TEST/hello")
            assert resolution.values and time.monotonic() - began < 1.0
    assert thread.is_alive() and not outcome  # all of that happened while the admin request waited
    thread.join(REMOTE_TIMEOUT + 10)
    (error,) = outcome
    assert isinstance(error, HandleResponseError) and error.response_code == ResponseCode.AUTHEN_ERROR


def test_answers_on_one_connection_keep_their_order(server: ServerProcess) -> None:
    """A certified resolution (signed: slow path) pipelined with plain ones (fast path) on one connection."""
    plain = ResolutionRequest(b"TEST/hello", (), ())
    requests = [build_request(OpCode.RESOLUTION, plain), build_request(OpCode.RESOLUTION, plain,
                                                                       OpFlag.REC | OpFlag.CA | OpFlag.PO | OpFlag.CT)]
    requests += [build_request(OpCode.RESOLUTION, plain) for _ in range(3)]
    sent_ids = [decode_envelope(r).request_id for r in requests]
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"".join(requests))
        answers = [read_tcp_message(sock) for _ in requests]
    assert [decode_envelope(a).request_id for a in answers] == sent_ids
    assert all(decode_answer(a).header.response_code == ResponseCode.SUCCESS for a in answers)
    assert decode_answer(answers[1]).credential is not None  # the certified one is signed


def test_a_stopping_server_still_answers_the_request_under_way(server: ServerProcess, hole: BlackHole) -> None:
    thread, outcome = start_hole_admin(server)
    wait_until_connected(hole)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(REMOTE_TIMEOUT + 15) == 0
    thread.join(10)
    (error,) = outcome
    assert isinstance(error, HandleResponseError) and error.response_code == ResponseCode.AUTHEN_ERROR

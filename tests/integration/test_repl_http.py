"""Replication over the HTTP interface, hdlserver on both sides: real processes, sockets, LMDB and keys.

The mirror's source record (txnsrcsv.json) lists only the primary's HTTP (or HTTPS) interface, so the
mirror cannot use HDL-TCP; like Java it then POSTs to that port, over TLS when the key is RSA (and reads an
unsigned stream, the certificate being pinned to the HS_SITE key), and over plain HTTP with a DSA key (a
PK-signed stream). Bad input goes through a proxy in the test that cuts or corrupts the stream.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from repl_support import make_mirror, resolved_urls, txnstat_last_id, wait_for
from servers import ServerProcess, free_port, run_cli, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.admin import AdminClient, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.config.siteinfo import load_site_info
from hdlserver.replication import http_pull
from hdlserver.replication.puller import REPLICATION_FLAGS, _challenge_reply
from hdlserver.replication.streams import (
    STREAM_PK,
    STREAM_UNSIGNED,
    SegmentReader,
    TxnRecord,
    TxnStreamEnd,
    read_stream_type,
    read_txn_stream,
)
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.bodies import ChallengeBody, RetrieveTxnLogRequest
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")
IO_TIMEOUT = 10.0


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


def source_record(primary_dir: Path, out: Path, protocol: str, port: int | None = None) -> Path:
    """The primary's site record with only its HTTP interface, relabelled ``protocol`` (and moved to
    ``port``): the HTTP listener also speaks TLS, so it serves an "HTTPS" entry as well."""
    site = json.loads((primary_dir / "siteinfo.json").read_text(encoding="utf-8"))
    for server in site["servers"]:
        http = [dict(i, protocol=protocol, port=port or i["port"]) for i in server["interfaces"]
                if i["protocol"] == "HTTP"]
        assert http, "the primary advertises no HTTP interface"
        server["interfaces"] = http
    out.write_text(json.dumps(site, indent=2), encoding="utf-8")
    return out


def start_primary(directory: Path, *setup: str) -> ServerProcess:
    port = setup_server_dir(directory, extra=("--http-port", str(free_port()), *setup))
    return start_server(directory, port)


def http_port(directory: Path) -> int:
    site = json.loads((directory / "siteinfo.json").read_text(encoding="utf-8"))
    return next(i["port"] for i in site["servers"][0]["interfaces"] if i["protocol"] == "HTTP")


def access_lines(server: ServerProcess) -> list[str]:
    path = server.directory / "logs" / "access.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def replication_accesses(server: ServerProcess) -> list[str]:
    """Access-log lines of 1001 answered with RC 1 (the lines name the transport, then the opcode)."""
    return [line for line in access_lines(server) if " 1001 1 " in line]


def pull_changes_and_check(primary: ServerProcess, mirror: ServerProcess) -> None:
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/web1", [url("http://example.org/1")])
        admin.create_handle("TEST/web2", [url("http://example.org/2")])
    assert wait_for(lambda: resolved_urls(mirror.address, "TEST/web2"), what="the creates on the mirror")
    with AdminClient(primary.address, ADMIN) as admin:
        admin.modify_values("TEST/web1", [url("http://example.org/1b")])
        admin.delete_handle("TEST/web2")
    wait_for(lambda: resolved_urls(mirror.address, "TEST/web1") == [b"http://example.org/1b"],
             what="the update on the mirror")
    wait_for(lambda: resolved_urls(mirror.address, "TEST/web2") is None, what="the delete on the mirror")


def pull_over(tmp_path: Path, protocol: str, *setup_args: str) -> tuple[list[str], str]:
    """A mirror of a primary whose site lists only an ``protocol`` interface pulls its changes; returns the
    primary's replication access lines and the mirror's error log."""
    primary = start_primary(tmp_path / "primary", *setup_args)
    record = source_record(primary.directory, tmp_path / "source.json", protocol)
    directory = tmp_path / "mirror"
    port = make_mirror(directory, record, primary.directory / "admpriv.bin")
    mirror = start_server(directory, port)
    try:
        pull_changes_and_check(primary, mirror)
        return replication_accesses(primary), mirror.error_log()
    finally:
        mirror.stop()
        primary.stop()


@pytest.mark.parametrize("protocol", ["HTTP", "HTTPS"])
def test_mirror_pulls_over_the_http_interface(tmp_path: Path, protocol: str) -> None:
    """RSA key: an HTTP entry is reached over TLS to the same port (Java from 2.8), an HTTPS entry too;
    both get the unsigned stream of a pinned TLS connection."""
    lines, mirror_log = pull_over(tmp_path, protocol)
    assert lines and all("HTTP:HDL" in line for line in lines), lines
    assert "Replication streams are served" not in mirror_log


def test_dsa_primary_sends_pk_signed_streams_over_plain_http(tmp_path: Path) -> None:
    """With a DSA server key Java stays on plain HTTP and signs every segment: so do both our sides."""
    lines, _ = pull_over(tmp_path, "HTTP", "--key-algorithm", "DSA")
    assert lines and all("HTTP:HDL" in line for line in lines), lines


def _post(port: int, request: bytes, secure: bool) -> bytes:
    """One POST of ``request``; the whole answer, head included, up to the server's close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
    if secure:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock)
    with sock:
        sock.sendall(http_pull.request_head("127.0.0.1", port, secure, len(request)) + request)
        return _read_to_close(sock)


@pytest.mark.parametrize("algorithm, secure, kind", [("DSA", False, STREAM_PK), ("RSA", True, STREAM_UNSIGNED)])
def test_stream_answer_framing_and_container(tmp_path: Path, algorithm: str, secure: bool, kind: int) -> None:
    """What Java's client reads: a close-delimited body (no Content-Length, no chunking) holding the
    response message and then the stream; PK over HTTP, unsigned over HTTPS with an RSA key."""
    primary = start_primary(tmp_path / "primary", "--key-algorithm", algorithm)
    try:
        with AdminClient(primary.address, ADMIN) as admin:
            admin.create_handle("TEST/framed", [url("http://example.org/framed")])
        port = http_port(primary.directory)
        identity = PublicKeyIdentity(b"0.NA/TEST", 301, keys.load_private_key(primary.directory / "admpriv.bin"))
        request = build_request(OpCode.RETRIEVE_TXN_LOG, RetrieveTxnLogRequest(last_txn_id=0), REPLICATION_FLAGS)
        first = _post(port, request, secure).partition(b"\r\n\r\n")[2]
        challenge = decode_answer(first)
        assert isinstance(challenge.body, ChallengeBody) and challenge.request_digest is not None
        reply = _challenge_reply(first, challenge.body, challenge.request_digest[1], identity)
        head, _, body = _post(port, reply, secure).partition(b"\r\n\r\n")
    finally:
        primary.stop()
    fields = head.lower().split(b"\r\n")
    assert fields[0] == b"http/1.1 200 ok" and b"connection: close" in fields
    assert not [f for f in fields if f.startswith((b"content-length", b"transfer-encoding"))]
    end = ENVELOPE_SIZE + int.from_bytes(body[16:20], "big")
    assert decode_answer(body[:end]).header.response_code == ResponseCode.SUCCESS
    rest = body[end:]
    at = [0]

    def read(n: int) -> bytes:
        chunk = rest[at[0] : at[0] + n]
        at[0] += len(chunk)
        return chunk

    assert read_stream_type(read) == kind
    site_key = keys.public_key_from_bytes(load_site_info(primary.directory).servers[0].public_key)
    events = list(read_txn_stream(SegmentReader(read, site_key if kind == STREAM_PK else None)))
    assert any(isinstance(e, TxnRecord) and e.handle == b"TEST/FRAMED" for e in events)
    assert isinstance(events[-1], TxnStreamEnd)


def test_dump_over_http(tmp_path: Path) -> None:
    primary = start_primary(tmp_path / "primary")
    try:
        with AdminClient(primary.address, ADMIN) as admin:
            admin.create_handle("TEST/dumped", [url("http://example.org/dumped")])
        record = source_record(primary.directory, tmp_path / "source.json", "HTTP")
        directory = tmp_path / "mirror"
        make_mirror(directory, record, primary.directory / "admpriv.bin")
        run_cli("hdlserver.cli.dumpfromprimary", directory, "--retry-wait", "0.1", timeout=60)
        assert any(" 1002 1 " in line and "HTTP" in line for line in access_lines(primary))
    finally:
        primary.stop()
    with open_store(directory, case_sensitive=False) as store:
        record_ = store.get_record(b"TEST/DUMPED")
        assert record_ is not None and b"http://example.org/dumped" in record_.encoded_values
        assert store.get_record(b"TEST/HELLO") is not None


# ---------------------------------------------------------------------------------------------------
# Bad input: a proxy between mirror and primary (plain HTTP, DSA key: a PK-signed stream)


def _last_record_signature_end(body: bytes) -> int:
    """Offset just past the last record's signature: the END segment (byte 0, int8 date) and its
    signature block (int4 n, n bytes) fill the rest of a single-source transaction stream."""
    for n in range(1, 1024):
        at = len(body) - n - 13
        if at > 0 and body[at] == 0 and int.from_bytes(body[at + 9 : at + 13], "big") == n:
            return at
    raise AssertionError("no END segment at the end of the stream")


class StreamProxy:
    """Forwards each HTTP exchange (one per connection) to the primary; while ``mode`` is "cut" or
    "corrupt" a transaction stream whose last record is ``target`` loses its last byte of that record's
    signature and all after it, or has that byte flipped."""

    def __init__(self, upstream: tuple[str, int], target: bytes) -> None:
        self.upstream = upstream
        self.target = target
        self.mode = "pass"
        self.tampered = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            with client, contextlib.suppress(OSError):
                client.settimeout(IO_TIMEOUT)
                self._exchange(client)

    def _exchange(self, client: socket.socket) -> None:
        request = _read_request(client)
        with socket.create_connection(self.upstream, timeout=IO_TIMEOUT) as up:
            up.sendall(request)
            answer = _read_to_close(up)
        head_end = answer.index(b"\r\n\r\n") + 4
        message_end = head_end + 20 + int.from_bytes(answer[head_end + 16 : head_end + 20], "big")
        if self.mode != "pass" and len(answer) > message_end + 16 and self.target in answer[message_end:]:
            at = message_end + _last_record_signature_end(answer[message_end:]) - 1
            flipped = b"" if self.mode == "cut" else bytes([answer[at] ^ 0x01]) + answer[at + 1 :]
            answer = answer[:at] + flipped
            self.tampered += 1
        client.sendall(answer)


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(4096)
    if not data:
        raise ConnectionError("the mirror closed the connection mid-request")
    return data


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    while len(body) < int(lengths[0]):
        body += _recv(sock)
    return head + b"\r\n\r\n" + body


def _read_to_close(sock: socket.socket) -> bytes:
    parts = []
    deadline = time.monotonic() + IO_TIMEOUT
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        parts.append(chunk)
    return b"".join(parts)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, StreamProxy]]:
    primary = start_primary(tmp_path / "primary", "--key-algorithm", "DSA")
    proxy = StreamProxy(("127.0.0.1", http_port(primary.directory)), b"TEST/BROKEN")
    record = source_record(primary.directory, tmp_path / "source.json", "HTTP", port=proxy.port)
    directory = tmp_path / "mirror"
    port = make_mirror(directory, record, primary.directory / "admpriv.bin")
    mirror = start_server(directory, port)
    try:
        yield primary, mirror, proxy
    finally:
        mirror.stop()
        primary.stop()
        proxy.close()


@pytest.mark.parametrize("mode, symptom", [("cut", "http body ended"), ("corrupt", "signature does not verify")])
def test_damaged_stream_is_not_applied_and_the_next_round_recovers(
        proxied: tuple[ServerProcess, ServerProcess, StreamProxy], mode: str, symptom: str) -> None:
    primary, mirror, proxy = proxied
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/before", [url("http://example.org/before")])
    assert wait_for(lambda: resolved_urls(mirror.address, "TEST/before"), what="the first pull")
    with open_store(primary.directory, case_sensitive=False, readonly=True) as store:
        applied = store.last_txn_id()
    # txnstat.dct is saved after the round's end, a moment after the handle resolves
    wait_for(lambda: txnstat_last_id(mirror.directory) == applied, what="txnstat after the first pull")
    proxy.mode = mode
    with AdminClient(primary.address, ADMIN) as admin:
        admin.create_handle("TEST/broken", [url("http://example.org/broken")])
    wait_for(lambda: proxy.tampered >= 2, what="two damaged rounds")
    assert resolved_urls(mirror.address, "TEST/broken") is None  # its segment never verified
    assert txnstat_last_id(mirror.directory) == applied
    log = mirror.error_log().lower()
    assert symptom in log, log[-2000:]
    proxy.mode = "pass"
    assert wait_for(lambda: resolved_urls(mirror.address, "TEST/broken"), what="the recovering round") == [
        b"http://example.org/broken"]
    wait_for(lambda: txnstat_last_id(mirror.directory) == applied + 1, what="txnstat after recovery")

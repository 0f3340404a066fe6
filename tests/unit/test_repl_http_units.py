"""Replication over HTTP, the pure parts and the client's reading: which stream container a transport gets,
which route a mirror takes to a server, and the HTTP answer framings the pull side reads (socket pairs;
one in-thread HTTP server for the unsigned-stream rule)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from hdlserver.auth import keys
from hdlserver.client.admin import SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.core.context import TRANSPORT_HTTP, TRANSPORT_HTTPS, TRANSPORT_TCP, TRANSPORT_UDP
from hdlserver.errors import ProtocolError
from hdlserver.replication import http_pull
from hdlserver.replication.puller import Route, choose_route, open_stream
from hdlserver.replication.stream_choice import stream_signer
from hdlserver.replication.streams import (
    STREAM_PK,
    STREAM_UNSIGNED,
    TLS_MARKER,
    SegmentReader,
    SegmentSigner,
    StreamError,
    StreamMode,
    TxnStreamEnd,
    read_stream_type,
    read_txn_stream,
    txn_end,
    txn_stream_head,
)
from hdlserver.wire.bodies import RetrieveTxnLogRequest, RetrieveTxnLogResponse
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import Envelope, encode_envelope
from hdlserver.wire.message import Header, Message, encode_message
from hdlserver.wire.site import IF_ADMIN, IF_QUERY, PROTO_HTTP, PROTO_HTTPS, PROTO_TCP, PROTO_UDP, Interface, ServerInfo

RSA = keys.generate_key_pair("RSA", 1024)
DSA = keys.generate_key_pair("DSA", 1024)
BOTH = IF_ADMIN | IF_QUERY


def server(*interfaces: Interface, key: keys.PrivateKey = RSA) -> ServerInfo:
    return ServerInfo(1, ServerInfo.address_from_text("127.0.0.1"), keys.public_key_to_bytes(key.public_key()),
                      interfaces)


# --- stream container per transport (replication.md 5) ---------------------------------------------

@pytest.mark.parametrize("transport, version, key, preamble", [
    (TRANSPORT_TCP, (2, 11), RSA, TLS_MARKER),
    (TRANSPORT_TCP, (2, 7), RSA, STREAM_PK),
    (TRANSPORT_HTTP, (2, 11), RSA, STREAM_PK),
    (TRANSPORT_HTTP, (2, 11), DSA, STREAM_PK),
    (TRANSPORT_HTTPS, (2, 11), RSA, STREAM_UNSIGNED),
    (TRANSPORT_HTTPS, (2, 7), RSA, STREAM_UNSIGNED),
    (TRANSPORT_HTTPS, (2, 11), DSA, STREAM_PK),
])
def test_stream_container_per_transport(transport: str, version: tuple[int, int], key: keys.PrivateKey,
                                        preamble: bytes | int) -> None:
    signer = stream_signer(transport, version, key)
    head = signer.preamble()
    if isinstance(preamble, bytes):
        assert head == preamble
    else:
        assert read_stream_type(iter_reader(head)) == preamble


def test_udp_gets_no_stream() -> None:
    with pytest.raises(ProtocolError) as caught:
        stream_signer(TRANSPORT_UDP, (2, 11), RSA)
    assert caught.value.response_code == ResponseCode.OPERATION_NOT_SUPPORTED


def iter_reader(data: bytes) -> Callable[[int], bytes]:
    view = memoryview(data)
    at = [0]

    def read(n: int) -> bytes:
        chunk = bytes(view[at[0] : at[0] + n])
        at[0] += len(chunk)
        return chunk

    return read


def test_unsigned_stream_is_bare_segments_read_without_a_key() -> None:
    signer = SegmentSigner(StreamMode.UNSIGNED, None)
    data = signer.preamble() + b"".join(signer.segment(s) for s in (
        txn_stream_head(1, 2), txn_end(1234)))
    assert data[:4] == b"\xff\xff\xff\xff" and len(data) == 4 + 8 + 9  # no signature blocks
    read = iter_reader(data)
    assert read_stream_type(read) == STREAM_UNSIGNED
    events = list(read_txn_stream(SegmentReader(read, None)))
    assert isinstance(events[-1], TxnStreamEnd) and events[-1].date_ms == 1234


# --- the route a mirror takes (Java's order: TCP, HTTP -- over TLS from 2.8 with a non-DSA key -- HTTPS)

def test_tcp_wins_over_http() -> None:
    s = server(Interface(BOTH, PROTO_UDP, 1), Interface(BOTH, PROTO_HTTP, 2), Interface(BOTH, PROTO_TCP, 3))
    assert choose_route(s) == Route(PROTO_TCP, 3)


def test_http_interface_is_reached_over_tls_with_an_rsa_key() -> None:
    assert choose_route(server(Interface(BOTH, PROTO_HTTP, 8000))) == Route(PROTO_HTTPS, 8000)


def test_http_interface_stays_plain_with_a_dsa_key_or_before_2_8() -> None:
    assert choose_route(server(Interface(BOTH, PROTO_HTTP, 8000), key=DSA)) == Route(PROTO_HTTP, 8000)
    assert choose_route(server(Interface(BOTH, PROTO_HTTP, 8000)), (2, 7)) == Route(PROTO_HTTP, 8000)


def test_https_interface_and_admin_preference() -> None:
    assert choose_route(server(Interface(BOTH, PROTO_HTTPS, 8443))) == Route(PROTO_HTTPS, 8443)
    s = server(Interface(IF_QUERY, PROTO_HTTP, 80), Interface(IF_ADMIN, PROTO_HTTP, 8000))
    assert choose_route(s) == Route(PROTO_HTTPS, 8000)


def test_udp_only_server_has_no_route() -> None:
    with pytest.raises(HandleResponseError, match="no TCP, HTTP or HTTPS interface"):
        choose_route(server(Interface(BOTH, PROTO_UDP, 2641)))


# --- HTTP answers as the pull side reads them -------------------------------------------------------

@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def answer(pair: tuple[socket.socket, socket.socket], raw: bytes, close: bool = True) -> http_pull.HttpBody:
    ours, theirs = pair
    theirs.sendall(raw)
    if close:
        theirs.shutdown(socket.SHUT_WR)
    return http_pull.read_answer_head(http_pull._Buffered(ours))


def test_content_length_body(pair: tuple[socket.socket, socket.socket]) -> None:
    body = answer(pair, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA")
    assert body.read_exact(5) == b"hello"
    with pytest.raises(ConnectionError):
        body.read_exact(1)  # the body is over, whatever follows on the connection


def test_chunked_body_with_extensions_and_trailer(pair: tuple[socket.socket, socket.socket]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n4\r\ndefg\r\n0\r\nT: 1\r\n\r\n"
    body = answer(pair, raw)
    assert body.read_exact(7) == b"abcdefg"
    with pytest.raises(ConnectionError):
        body.read_exact(1)


def test_close_delimited_body_and_a_cut(pair: tuple[socket.socket, socket.socket]) -> None:
    body = answer(pair, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 70000)
    assert body.read_exact(70000) == b"x" * 70000
    with pytest.raises(ConnectionError, match="body ended"):
        body.read_exact(1)


def test_chunked_body_cut_inside_a_chunk(pair: tuple[socket.socket, socket.socket]) -> None:
    body = answer(pair, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc")
    with pytest.raises(ConnectionError):
        body.read_exact(16)


@pytest.mark.parametrize("raw, error", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", StreamError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n", StreamError),
    (b"SSH-2.0-OpenSSH\r\n\r\n", StreamError),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", StreamError),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 9000, StreamError),
    (b"HTTP/1.1 200 OK\r\nContent-Le", ConnectionError),
])
def test_malformed_answers(pair: tuple[socket.socket, socket.socket], raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        body = answer(pair, raw)
        body.read_exact(1)


def test_non_200_is_a_failed_exchange(pair: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(HandleResponseError, match="HTTP 404"):
        answer(pair, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def test_request_head_is_javas() -> None:
    head = http_pull.request_head("127.0.0.1", 8000, False, 42).decode()
    assert head.startswith("POST / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert "Accept: application/x-hdl-message" in head and "Content-Length: 42" in head
    assert "Host: [::1]\r\n" in http_pull.request_head("::1", 443, True, 1).decode()


# --- the unsigned-stream rule: never over plain HTTP ------------------------------------------------

def success_then_unsigned_stream() -> bytes:
    header = Header(opcode=OpCode.RETRIEVE_TXN_LOG, response_code=ResponseCode.SUCCESS, expiration=2**31 - 1)
    message = encode_message(Message(header=header, body=RetrieveTxnLogResponse()), (2, 11))
    envelope = encode_envelope(Envelope(2, 11, 2, 11, request_id=1, message_length=len(message)))
    stream = b"\xff\xff\xff\xff" + txn_stream_head(1, 2) + txn_end(1)
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + envelope + message + stream


def test_unsigned_stream_over_plain_http_is_refused() -> None:
    """A DSA server reached over plain HTTP: an unsigned stream could come from anyone on the path."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(success_then_unsigned_stream())

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        source = server(Interface(BOTH, PROTO_HTTP, listener.getsockname()[1]), key=DSA)
        with pytest.raises(StreamError, match="unsigned stream over an untrusted connection"):
            open_stream(source, OpCode.RETRIEVE_TXN_LOG, RetrieveTxnLogRequest(last_txn_id=0),
                        SecretKeyIdentity(b"0.NA/TEST", 300, b"x"), 5.0)
    finally:
        thread.join(5)
        listener.close()

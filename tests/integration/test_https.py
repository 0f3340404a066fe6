"""HTTPS on the HTTP port: the certificate carries the HS_SITE key (so Java clients that pin it accept it), TLS
and plain HTTP share the port, and garbage or silence on the port costs the server nothing but the socket."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from http_support import InProcessHttp, add_http_interface, closed_by_server, http_server_dir, in_process_http, request
from servers import free_port, setup_server_dir

from hdlserver.auth import keys
from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.http.certificate import CERTIFICATE_FILE, CERTIFICATE_KEY_FILE, self_signed_certificate
from hdlserver.wire.bodies import ResolutionRequest, ResolutionResponse
from hdlserver.wire.codes import OpCode

IDLE_MS = 1000  # max_idle_time of the test interfaces: the request head must arrive within a second


def pinned_context(pem: bytes) -> ssl.SSLContext:
    """Trust exactly this certificate (no host name: Java clients check the key, not the name)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=pem.decode("ascii"))
    return context


def any_certificate() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served_certificate(address: tuple[str, int]) -> x509.Certificate:
    with socket.create_connection(address, timeout=5) as raw, \
            any_certificate().wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHttp]:
    directory = tmp_path_factory.mktemp("https") / "srv"
    http_server_dir(directory, interface={"max_idle_time": str(IDLE_MS)})
    with in_process_http(directory) as srv:
        yield srv


def server_dir(srv: InProcessHttp) -> Path:
    return Path(srv.state.settings.path).parent


def test_certificate_holds_the_hs_site_key(server: InProcessHttp) -> None:
    pem = (server_dir(server) / CERTIFICATE_FILE).read_bytes()
    assert not (server_dir(server) / CERTIFICATE_KEY_FILE).exists()
    served = served_certificate(server.address)
    assert keys.public_key_to_bytes(served.public_key()) == server.state.this_server.public_key  # type: ignore[arg-type]
    assert served == x509.load_pem_x509_certificate(pem)


def test_pinned_client_accepts_the_server(server: InProcessHttp) -> None:
    pem = (server_dir(server) / CERTIFICATE_FILE).read_bytes()
    reply = request(server.address, "GET", "/api/handles/TEST/hello", context=pinned_context(pem))
    assert reply.status == 200 and reply.json()["handle"] == "TEST/hello"


def test_a_client_pinning_another_key_refuses_the_server(server: InProcessHttp) -> None:
    other = self_signed_certificate(keys.generate_key_pair("RSA", 1024)).public_bytes(Encoding.PEM)
    with pytest.raises(ssl.SSLCertVerificationError):
        request(server.address, "GET", "/api/site", context=pinned_context(other))


def test_plain_and_tls_share_the_port(server: InProcessHttp) -> None:
    plain = request(server.address, "GET", "/api/site")
    secure = request(server.address, "GET", "/api/site", context=any_certificate())
    assert plain.status == secure.status == 200
    assert plain.body == secure.body


def test_tunnel_over_tls(server: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    reply = request(server.address, "POST", "/TEST%2Fhello", body=raw, context=any_certificate(),
                    headers={"Accept": "application/x-hdl-message", "Content-Type": "application/x-hdl-message"})
    assert isinstance(decode_answer(reply.body).body, ResolutionResponse)


def still_serving(srv: InProcessHttp) -> bool:
    return request(srv.address, "GET", "/api/site").status == 200


@pytest.mark.parametrize("garbage", [
    b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64,  # a TLS record header with nonsense inside
    b"\x80\x80" + os.urandom(200),  # looks like an SSLv2 hello
    bytes(range(0x80, 0x100)),
    b"\xff" * 4096,
])
def test_garbage_that_looks_like_tls_is_dropped(server: InProcessHttp, garbage: bytes) -> None:
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(garbage)
        assert closed_by_server(sock, within=5)
    assert still_serving(server)


@pytest.mark.parametrize("garbage", [b"\x01\x02\x03 hello\r\n\r\n", b"GET / HTTP/1.1\r\nBad header\r\n\r\n",
                                     b"NOT-HTTP\r\n\r\n", b"\x00" * 100 + b"\r\n\r\n"])
def test_plain_garbage_gets_400_and_a_close(server: InProcessHttp, garbage: bytes) -> None:
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(garbage)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert still_serving(server)


def test_a_silent_client_is_closed(server: InProcessHttp) -> None:
    started = time.monotonic()
    with socket.create_connection(server.address, timeout=5) as sock:
        assert closed_by_server(sock, within=5)
    assert time.monotonic() - started < IDLE_MS / 1000 + 2


def test_a_client_silent_after_the_tls_handshake_is_closed(server: InProcessHttp) -> None:
    started = time.monotonic()
    with socket.create_connection(server.address, timeout=5) as raw, \
            any_certificate().wrap_socket(raw) as tls:
        assert closed_by_server(tls, within=5)
    assert time.monotonic() - started < IDLE_MS / 1000 + 2


def test_a_client_stuck_in_the_handshake_is_closed(server: InProcessHttp) -> None:
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # the start of a ClientHello, then nothing
    started = time.monotonic()
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(hello)
        assert closed_by_server(sock, within=5)
    assert time.monotonic() - started < IDLE_MS / 1000 + 2


# --- other key types and interface modes -----------------------------------------------------------------


def test_dsa_server_key_gets_an_rsa_certificate(tmp_path: Path) -> None:
    directory = tmp_path / "dsa"
    setup_server_dir(directory, extra=("--key-algorithm", "DSA"))
    add_http_interface(directory, free_port())
    with in_process_http(directory) as srv:
        key_file = (directory / CERTIFICATE_KEY_FILE).read_bytes()
        assert key_file[:4] == b"\x00\x00\x00\x01"
        served = served_certificate(srv.address)
        assert keys.public_key_to_bytes(served.public_key()) == keys.public_key_to_bytes(  # type: ignore[arg-type]
            keys.read_private_key_file(key_file, None).public_key())
        assert request(srv.address, "GET", "/api/site", context=any_certificate()).status == 200


def test_http_only_interface_does_not_speak_tls(tmp_path: Path) -> None:
    directory = tmp_path / "plain"
    http_server_dir(directory, interface={"http_only": "yes"})
    with in_process_http(directory) as srv:
        assert request(srv.address, "GET", "/api/site").status == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            request(srv.address, "GET", "/api/site", context=any_certificate())
        assert not (directory / CERTIFICATE_FILE).exists()


def test_https_interface_speaks_only_tls(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    http_server_dir(directory, label="hdl_https")
    with in_process_http(directory) as srv:
        assert request(srv.address, "GET", "/api/site", context=any_certificate()).status == 200
        with socket.create_connection(srv.address, timeout=5) as sock:
            sock.sendall(b"GET /api/site HTTP/1.1\r\nHost: x\r\n\r\n")
            assert closed_by_server(sock, within=5)

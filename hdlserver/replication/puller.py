"""Asking a source server for its transaction log or a dump: the blocking client side (run in a thread).

One connection per request, as the Java mirror does: the request (CT set) is challenged, the mirror
answers with its ``replication_authentication`` identity on a new connection, and the success answer is
followed by the stream. The route is Java's (``HandleResolver.sendRequestToServerByProtocol``): the
server's TCP interface; without one its HTTP interface -- over TLS to that same port when the server key
is not DSA (Java does so for every stream request from 2.8 on) -- and else its HTTPS interface.

Trust: a "TLS\\0" stream (HDL-TCP) is read through TLS with the source as TLS server; a PK stream is
verified against the HS_SITE key; an unsigned (-1) stream is accepted only over HTTPS whose certificate
carried the HS_SITE key. Servers with DSA keys present another TLS key, which Java accepts unpinned, and
so do we -- their streams are PK-signed.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa

from hdlserver.auth import keys
from hdlserver.client.admin import Identity, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, build_request, decode_answer
from hdlserver.client.transport import read_exact, read_tcp_message
from hdlserver.config.settings import ReplicationAuth
from hdlserver.errors import ConfigError
from hdlserver.replication.http_pull import HttpBody, post_message
from hdlserver.replication.streams import (
    STREAM_TLS,
    STREAM_UNSIGNED,
    ByteSource,
    SegmentReader,
    StreamError,
    read_stream_type,
)
from hdlserver.wire.bodies import ChallengeAnswerRequest, ChallengeBody, ErrorBody
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import SERVER_VERSION, decode_envelope, version_at_least
from hdlserver.wire.site import PROTO_HTTP, PROTO_HTTPS, PROTO_TCP, Interface, ServerInfo

REPLICATION_FLAGS = OpFlag.CT | OpFlag.REC | OpFlag.CA | OpFlag.PO  # 0x59000000, as the Java mirror sends
REPLICATION_KEY_FILE = "replpriv.bin"
REPLICATION_SECRET_FILE = "replsec.bin"


def replication_identity(server_dir: Path, auth: ReplicationAuth | None) -> Identity:
    """The identity of ``replication_authentication``, with its key from replpriv.bin / replsec.bin."""
    if auth is None:
        raise ConfigError("Servers using replication need to specify replication authentication information "
                          "(replication_authentication)", str(server_dir / "config.dct"))
    handle = auth.handle.encode("utf-8")
    if auth.kind == "privatekey":
        key = keys.load_private_key(server_dir / REPLICATION_KEY_FILE)
        return PublicKeyIdentity(handle, auth.index, key)
    try:
        secret = (server_dir / REPLICATION_SECRET_FILE).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {REPLICATION_SECRET_FILE}: {e.strerror or e}", str(server_dir)) from e
    return SecretKeyIdentity(handle, auth.index, secret)


TLS_OVER_HTTP_VERSION = (2, 8)  # from this request version on, Java sends stream requests to HTTP ports over TLS


@dataclass(frozen=True, slots=True)
class Route:
    """How a replication request reaches a server: ``protocol`` is what travels (PROTO_HTTPS also for an
    HTTP interface reached over TLS), ``port`` the interface's port."""

    protocol: int
    port: int


def _pick(interfaces: list[Interface]) -> Interface | None:
    """The first admin interface, else the first one (servers list their admin interfaces as admin)."""
    return next((i for i in interfaces if i.admin), interfaces[0] if interfaces else None)


def is_dsa_key(public_key: bytes) -> bool:
    return isinstance(keys.public_key_from_bytes(public_key), dsa.DSAPublicKey)


def choose_route(server: ServerInfo, version: tuple[int, int] = SERVER_VERSION) -> Route:
    """Java's order for stream requests (UDP cannot carry them): TCP, then HTTP, then HTTPS."""
    by_protocol = {p: [i for i in server.interfaces if i.protocol == p] for p in (PROTO_TCP, PROTO_HTTP, PROTO_HTTPS)}
    tcp = _pick(by_protocol[PROTO_TCP])
    if tcp is not None:
        return Route(PROTO_TCP, tcp.port)
    http = _pick(by_protocol[PROTO_HTTP])
    if http is not None:
        over_tls = version_at_least(version, TLS_OVER_HTTP_VERSION) and not is_dsa_key(server.public_key)
        return Route(PROTO_HTTPS if over_tls else PROTO_HTTP, http.port)
    https = _pick(by_protocol[PROTO_HTTPS])
    if https is not None:
        return Route(PROTO_HTTPS, https.port)
    raise HandleResponseError(ResponseCode.ERROR, f"server {server.server_id} has no TCP, HTTP or HTTPS interface")


def tcp_address(server: ServerInfo) -> tuple[str, int]:
    """Where to send HDL-TCP replication requests: the admin TCP interface (any TCP one if none is admin)."""
    tcp = _pick([i for i in server.interfaces if i.protocol == PROTO_TCP])
    if tcp is None:
        raise HandleResponseError(ResponseCode.ERROR, f"server {server.server_id} has no TCP interface")
    return server.address_text(), tcp.port


@dataclass
class StreamConnection:
    """An open connection positioned at the start of a stream's content; close it when done."""

    sock: socket.socket
    reader: SegmentReader

    def close(self) -> None:
        """Also wakes a read blocked on the socket in another thread (close alone would not)."""
        _close(self.sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass
class _Answer:
    """One answer read from a fresh connection: the envelope + message, and the connection's reader,
    positioned after it (at the stream, when there is one)."""

    raw: bytes
    sock: socket.socket
    read: ByteSource


Exchange = Callable[[bytes], _Answer]  # send one request on a new connection


def _challenge_reply(raw: bytes, challenge: ChallengeBody, digest: bytes, identity: Identity) -> bytes:
    env = decode_envelope(raw)
    version, suggested = (env.major, env.minor), (env.suggested_major, env.suggested_minor)
    signed = identity.answer(challenge.nonce, digest, version, suggested)
    body = ChallengeAnswerRequest(identity.auth_type, identity.handle, identity.index, signed)
    reply = bytearray(build_request(OpCode.CHALLENGE_RESPONSE, body, REPLICATION_FLAGS, version=version))
    reply[4:8] = raw[4:8]  # the envelope SessionId carries the challenge id
    return bytes(reply)


def _authenticated(exchange: Exchange, request: bytes, identity: Identity) -> _Answer:
    """Send ``request`` and answer its challenge; the answer with RC 1, its connection at the stream. The
    answer goes on a new connection: the Java server closes TCP connections after each response outside a
    session, and over HTTP every message is a POST of its own (the challenge id, not the connection, ties
    the answer to the request)."""
    answer = exchange(request)
    try:
        message = decode_answer(answer.raw)
        if message.header.response_code == ResponseCode.AUTHENTICATION_NEEDED:
            if not isinstance(message.body, ChallengeBody) or message.request_digest is None:
                raise HandleResponseError(ResponseCode.PROTOCOL_ERROR, "malformed challenge")
            reply = _challenge_reply(answer.raw, message.body, message.request_digest[1], identity)
            _close(answer.sock)
            answer = exchange(reply)
            message = decode_answer(answer.raw)
        if message.header.response_code != ResponseCode.SUCCESS:
            text = message.body.message.decode("utf-8", "replace") if isinstance(message.body, ErrorBody) else ""
            raise HandleResponseError(message.header.response_code, text)
    except BaseException:
        _close(answer.sock)
        raise
    return answer


def _tcp_exchange(address: tuple[str, int], timeout: float) -> Exchange:
    def exchange(request: bytes) -> _Answer:
        sock = socket.create_connection(address, timeout=timeout)
        try:
            sock.sendall(request)
            raw = read_tcp_message(sock)
        except BaseException:
            _close(sock)
            raise
        return _Answer(raw, sock, lambda n: read_exact(sock, n))

    return exchange


def _http_exchange(server: ServerInfo, route: Route, timeout: float) -> Exchange:
    host = server.address_text()

    def exchange(request: bytes) -> _Answer:
        sock: socket.socket = socket.create_connection((host, route.port), timeout=timeout)
        try:
            if route.protocol == PROTO_HTTPS:
                sock = _pinned_tls(sock, server, timeout)
            body: HttpBody = post_message(sock, host, route.port, route.protocol == PROTO_HTTPS, request)
            raw = body.message()
        except BaseException:
            _close(sock)
            raise
        return _Answer(raw, sock, body.read_exact)

    return exchange


def _authenticated_connection(address: tuple[str, int], request: bytes, identity: Identity,
                              timeout: float) -> socket.socket:
    """HDL-TCP: the connection that carried the RC 1 answer to ``request``, now at the stream."""
    return _authenticated(_tcp_exchange(address, timeout), request, identity).sock


def _pinned_tls(sock: socket.socket, server: ServerInfo, timeout: float) -> ssl.SSLSocket:
    """TLS as the client on ``sock``; the certificate must carry the HS_SITE key unless that key is DSA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the key is pinned below instead: self-signed certificates
    tls = context.wrap_socket(sock, server_side=False, do_handshake_on_connect=False)
    try:
        tls.settimeout(timeout)
        tls.do_handshake()
        if not is_dsa_key(server.public_key):
            der = tls.getpeercert(binary_form=True)
            if der is None:
                raise StreamError("the source presented no TLS certificate")
            certificate_key = x509.load_der_x509_certificate(der).public_key()
            if keys.public_key_to_bytes(certificate_key) != server.public_key:  # type: ignore[arg-type]
                raise StreamError("the source's TLS certificate does not carry its HS_SITE key")
    except BaseException:
        _close(tls)
        raise
    return tls


def open_stream(server: ServerInfo, opcode: int, body: object, identity: Identity, timeout: float,
                trust_unsigned: bool = False) -> StreamConnection:
    """Connect by ``choose_route``, authenticate the request, and position at the stream content (TLS or
    PK verified; unsigned only over pinned HTTPS, or when ``trust_unsigned``)."""
    route = choose_route(server)
    request = build_request(opcode, body, REPLICATION_FLAGS)
    if route.protocol == PROTO_TCP:
        exchange = _tcp_exchange((server.address_text(), route.port), timeout)
    else:
        exchange = _http_exchange(server, route, timeout)
    answer = _authenticated(exchange, request, identity)
    try:
        kind = read_stream_type(answer.read)
        if kind == STREAM_TLS:
            if route.protocol != PROTO_TCP:
                raise StreamError("the source sent a TLS stream over HTTP")
            tls = _pinned_tls(answer.sock, server, timeout)
            return StreamConnection(tls, SegmentReader(lambda n: read_exact(tls, n), None))
        pinned = route.protocol == PROTO_HTTPS and not is_dsa_key(server.public_key)
        if kind == STREAM_UNSIGNED and not (pinned or trust_unsigned):
            raise StreamError("the source sent an unsigned stream over an untrusted connection")
        public_key = None if kind == STREAM_UNSIGNED else keys.public_key_from_bytes(server.public_key)
        return StreamConnection(answer.sock, SegmentReader(answer.read, public_key))
    except BaseException:
        _close(answer.sock)
        raise

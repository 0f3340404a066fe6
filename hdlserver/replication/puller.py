"""Asking a source server for its transaction log or a dump: the blocking client side (run in a thread).

One TCP connection per request, as the Java mirror does: the request (CT set) is challenged, the mirror
answers with its ``replication_authentication`` identity, the response is followed by the stream. A
"TLS\\0" stream is read through TLS with the source as TLS server; its certificate's key must be the
source's HS_SITE key (servers with DSA keys present another key, which Java accepts, and so do we).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
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
from hdlserver.replication.streams import (
    STREAM_TLS,
    STREAM_UNSIGNED,
    SegmentReader,
    StreamError,
    read_stream_type,
)
from hdlserver.wire.bodies import ChallengeAnswerRequest, ChallengeBody, ErrorBody
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import decode_envelope
from hdlserver.wire.site import PROTO_TCP, ServerInfo

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


def tcp_address(server: ServerInfo) -> tuple[str, int]:
    """Where to send replication requests: the server's admin TCP interface (any TCP one if none is admin)."""
    tcp = [i for i in server.interfaces if i.protocol == PROTO_TCP]
    if not tcp:
        raise HandleResponseError(ResponseCode.ERROR, f"server {server.server_id} has no TCP interface")
    chosen = next((i for i in tcp if i.admin), tcp[0])
    return server.address_text(), chosen.port


@dataclass
class StreamConnection:
    """An open connection positioned at the start of a stream's content; close it when done."""

    sock: socket.socket
    reader: SegmentReader

    def close(self) -> None:
        """Also wakes a read blocked on the socket in another thread (close alone would not)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()


def _authenticated_connection(address: tuple[str, int], request: bytes, identity: Identity,
                              timeout: float) -> socket.socket:
    """Send ``request`` and answer its challenge; the connection that carried the RC 1 answer, now at the
    stream. The answer goes on a new connection: the Java server closes TCP connections after each
    response outside a session (the challenge id, not the connection, ties the answer to the request)."""
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.sendall(request)
        raw = read_tcp_message(sock)
        answer = decode_answer(raw)
        if answer.header.response_code == ResponseCode.AUTHENTICATION_NEEDED:
            if not isinstance(answer.body, ChallengeBody) or answer.request_digest is None:
                raise HandleResponseError(ResponseCode.PROTOCOL_ERROR, "malformed challenge")
            env = decode_envelope(raw)
            version, suggested = (env.major, env.minor), (env.suggested_major, env.suggested_minor)
            signed = identity.answer(answer.body.nonce, answer.request_digest[1], version, suggested)
            body = ChallengeAnswerRequest(identity.auth_type, identity.handle, identity.index, signed)
            reply = bytearray(build_request(OpCode.CHALLENGE_RESPONSE, body, REPLICATION_FLAGS, version=version))
            reply[4:8] = raw[4:8]  # the envelope SessionId carries the challenge id
            sock.close()
            sock = socket.create_connection(address, timeout=timeout)
            sock.sendall(bytes(reply))
            answer = decode_answer(read_tcp_message(sock))
        if answer.header.response_code != ResponseCode.SUCCESS:
            text = answer.body.message.decode("utf-8", "replace") if isinstance(answer.body, ErrorBody) else ""
            raise HandleResponseError(answer.header.response_code, text)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return sock


def _pinned_tls(sock: socket.socket, server: ServerInfo, timeout: float) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the key is pinned below instead: self-signed certificates
    tls = context.wrap_socket(sock, server_side=False, do_handshake_on_connect=False)
    tls.settimeout(timeout)
    tls.do_handshake()
    der = tls.getpeercert(binary_form=True)
    site_key = keys.public_key_from_bytes(server.public_key)
    if not isinstance(site_key, dsa.DSAPublicKey):
        if der is None:
            raise StreamError("the source presented no TLS certificate")
        presented = keys.public_key_to_bytes(x509.load_der_x509_certificate(der).public_key())  # type: ignore[arg-type]
        if presented != server.public_key:
            raise StreamError("the source's TLS certificate does not carry its HS_SITE key")
    return tls


def open_stream(server: ServerInfo, opcode: int, body: object, identity: Identity, timeout: float,
                trust_unsigned: bool = False) -> StreamConnection:
    """Connect, authenticate the request, and position at the stream content (TLS or PK verified)."""
    sock = _authenticated_connection(tcp_address(server), build_request(opcode, body, REPLICATION_FLAGS), identity,
                                     timeout)
    try:
        kind = read_stream_type(lambda n: read_exact(sock, n))
        if kind == STREAM_TLS:
            tls = _pinned_tls(sock, server, timeout)
            return StreamConnection(tls, SegmentReader(lambda n: read_exact(tls, n), None))
        if kind == STREAM_UNSIGNED and not trust_unsigned:
            raise StreamError("the source sent an unsigned stream over an untrusted connection")
        public_key = None if kind == STREAM_UNSIGNED else keys.public_key_from_bytes(server.public_key)
        return StreamConnection(sock, SegmentReader(lambda n: read_exact(sock, n), public_key))
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise


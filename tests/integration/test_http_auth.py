"""REST authentication (auth.md 10) against a real hdl-server process over HTTPS on loopback: Basic, the
``Authorization: Handle`` challenge-response in HTTP sessions with secret and RSA/DSA public keys, server
signatures, plain HTTP, expired sessions, malformed headers -- and pyhandle's REST client, unmodified. Also
the bad input of issue 7 that authenticated writes made visible: non-UTF-8 handles, bad %-escapes,
conflicting Content-Length and Transfer-Encoding.

Signatures and MACs are made here with hashlib/hmac/cryptography, as a client would make them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import ssl
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa
from http_support import Reply, http_server_dir, in_process_http, read_http_response, request
from servers import ServerProcess, start_server

from hdlserver.auth import keys
from hdlserver.config.dct import format_dct, load_dct
from hdlserver.http.auth_header import parse_handle
from hdlserver.serverdir import open_server_state
from hdlserver.wire.values import HandleValue

SECRET = b"secret"
ADMIN = "0.NA/TEST"
DSA_INDEX = 302
URL_VALUE = [{"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.org/"}}]


@dataclass
class HttpsServer:
    process: ServerProcess
    http_port: int
    dsa_key: dsa.DSAPrivateKey
    rsa_key: rsa.RSAPrivateKey

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.http_port)

    @property
    def directory(self) -> Path:
        return self.process.directory


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def call(srv: HttpsServer, method: str, path: str, body: object = None, *, secure: bool = True,
         authorization: str | None = None, **headers: str) -> Reply:
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    sent: dict[str, str] = {"Content-Type": "application/json", **headers}
    if authorization is not None:
        sent["Authorization"] = authorization
    return request(srv.address, method, path, body=data, headers=sent, context=tls() if secure else None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def basic(user: str, password: bytes) -> str:
    return "Basic " + b64(quote(user, safe="").encode() + b":" + password)


def challenge_of(reply: Reply) -> tuple[str, bytes]:
    """(sessionId, nonce) of the ``WWW-Authenticate: Handle`` header of a 401."""
    handle = [v for v in reply.headers.get_all("WWW-Authenticate") or [] if v.startswith("Handle ")]
    assert len(handle) == 1, reply.headers
    parsed = parse_handle(handle[0])
    assert parsed is not None and parsed.session_id is not None
    nonce = next(part.split("=", 1)[1].strip('"') for part in handle[0].split(", ") if part.startswith("nonce="))
    return parsed.session_id, base64.b64decode(nonce)


def open_session(srv: HttpsServer, body: object = b"") -> tuple[str, bytes, dict]:
    reply = call(srv, "POST", "/api/sessions", body)
    assert reply.status == 201 and reply.header("Location") == "/api/sessions/this"
    doc = reply.json()
    return doc["sessionId"], base64.b64decode(doc["nonce"]), doc


def hmac_header(session_id: str, nonce: bytes, secret: bytes = SECRET, identity: str = f"300:{ADMIN}") -> str:
    cnonce = uuid.uuid4().bytes
    mac = hmac.new(secret, nonce + cnonce, "sha256").digest()
    return (f'Handle version="0", sessionId="{session_id}", id="{quote(identity, safe="")}", type="HS_SECKEY", '
            f'cnonce="{b64(cnonce)}", alg="HMAC-SHA256", signature="{b64(mac)}"')


def session_header(session_id: str) -> str:
    return f'Handle sessionId="{session_id}"'


def status_of(srv: HttpsServer, handle: str) -> int:
    return call(srv, "GET", f"/api/handles/{handle}").status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    """prefix TEST; 0.NA/TEST: HS_SECKEY 300 'secret', HS_PUBKEY 301 (RSA, admpriv.bin) and 302 (DSA), all three
    server admins."""
    directory = tmp_path_factory.mktemp("http-auth") / "srv"
    port, http_port = http_server_dir(directory)
    dsa_key = dsa.generate_private_key(1024)
    state = open_server_state(directory)
    try:
        values = state.store.get_values(ADMIN.encode()) or ()
        dsa_value = HandleValue(DSA_INDEX, b"HS_PUBKEY", keys.public_key_to_bytes(dsa_key.public_key()))
        state.store.replace_values(ADMIN.encode(), (*values, dsa_value))
    finally:
        state.store.close()
    config = load_dct(directory / "config.dct")
    admins = config["server_config"]["server_admins"]  # type: ignore[index]
    config["server_config"]["server_admins"] = [*admins, f"{DSA_INDEX}:{ADMIN}"]  # type: ignore[index]
    (directory / "config.dct").write_text(format_dct(config), encoding="utf-8")
    rsa_key = keys.load_private_key(directory / "admpriv.bin")
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    process = start_server(directory, port)
    try:
        yield HttpsServer(process, http_port, dsa_key, rsa_key)
    finally:
        process.stop()


# --- Basic (auth.md 10.1) -------------------------------------------------------------------------------


def test_basic_with_the_right_secret_administers(server: HttpsServer) -> None:
    auth = basic(f"300:{ADMIN}", SECRET)
    created = call(server, "PUT", "/api/handles/TEST/basic", URL_VALUE, authorization=auth)
    assert created.status == 201 and created.json() == {"responseCode": 1, "handle": "TEST/basic"}
    assert status_of(server, "TEST/basic") == 200
    assert call(server, "DELETE", "/api/handles/TEST/basic", authorization=auth).status == 200
    assert status_of(server, "TEST/basic") == 404


def test_basic_with_a_wrong_secret_is_401_and_stores_nothing(server: HttpsServer) -> None:
    reply = call(server, "PUT", "/api/handles/TEST/wrong", URL_VALUE, authorization=basic(f"300:{ADMIN}", b"nope"))
    assert reply.status == 401
    assert reply.json() == {"responseCode": 402, "message": "Authentication failed: Identity not verified"}
    offered = reply.headers.get_all("WWW-Authenticate")
    assert offered[0] == 'Basic realm="handle"'
    assert offered[1].startswith('Handle sessionId="') and offered[1].endswith(', error="Identity not verified"')
    assert status_of(server, "TEST/wrong") == 404
    assert status_of(server, "TEST/hello") == 200  # everyone else is still served


def test_plain_http_never_takes_credentials(server: HttpsServer) -> None:
    auth = basic(f"300:{ADMIN}", SECRET)
    refused = call(server, "PUT", "/api/handles/TEST/plain", URL_VALUE, secure=False, authorization=auth)
    assert refused.status == 403 and refused.header("WWW-Authenticate") is None
    assert refused.json()["responseCode"] == 402
    assert call(server, "POST", "/api/sessions", b"", secure=False).status == 403
    assert call(server, "GET", "/api/sessions/this", secure=False).status == 403
    assert call(server, "GET", "/api/handles/TEST/hello", secure=False, authorization=auth).status == 200
    assert status_of(server, "TEST/plain") == 404


# --- Authorization: Handle (auth.md 10.2) ----------------------------------------------------------------


def test_anonymous_write_gets_a_session_to_sign_and_the_signed_retry_succeeds(server: HttpsServer) -> None:
    first = call(server, "PUT", "/api/handles/TEST/signed", URL_VALUE)
    assert first.status == 401 and first.json()["responseCode"] == 402
    session_id, nonce = challenge_of(first)
    retry = call(server, "PUT", "/api/handles/TEST/signed", URL_VALUE, authorization=hmac_header(session_id, nonce))
    assert retry.status == 201
    # the session is now authenticated: naming it is enough
    deleted = call(server, "DELETE", "/api/handles/TEST/signed", authorization=session_header(session_id))
    assert deleted.status == 200 and status_of(server, "TEST/signed") == 404


def test_session_api_with_a_pbkdf2_secret_key_answer_in_json_parameters(server: HttpsServer) -> None:
    session_id, nonce, doc = open_session(server)
    assert set(doc) == {"sessionId", "nonce"}
    cnonce, salt = uuid.uuid4().bytes, uuid.uuid4().bytes
    key = hashlib.pbkdf2_hmac("sha1", SECRET, salt, 10_000, 20)
    mac = hmac.new(key, nonce + cnonce, "sha1").digest()
    params = {"sessionId": session_id, "id": f"300:{ADMIN}", "type": "HS_SECKEY", "cnonce": b64(cnonce),
              "alg": "PBKDF2-HMAC-SHA1", "signature": b64(mac), "salt": b64(salt), "iterations": 10_000,
              "length": 160}
    reply = call(server, "PUT", "/api/sessions/this", params)
    assert reply.status == 200
    assert reply.json() == {"sessionId": session_id, "nonce": b64(nonce), "authenticated": True,
                            "id": f"300:{ADMIN}"}
    shown = call(server, "GET", "/api/sessions/this", authorization=session_header(session_id))
    assert shown.status == 200 and shown.json()["authenticated"] is True
    created = call(server, "PUT", "/api/handles/TEST/pbkdf2", URL_VALUE, authorization=session_header(session_id))
    assert created.status == 201
    assert call(server, "DELETE", "/api/handles/TEST/pbkdf2", authorization=session_header(session_id)).status == 200


@pytest.mark.parametrize("key_name, index, alg", [("rsa", 301, "SHA256"), ("rsa", 301, "SHA1"),
                                                   ("dsa", DSA_INDEX, "SHA1"), ("dsa", 0, "SHA256")])
def test_public_key_answers_authenticate_administrators(server: HttpsServer, key_name: str, index: int,
                                                        alg: str) -> None:
    session_id, nonce, _doc = open_session(server)
    cnonce = uuid.uuid4().bytes
    digest = hashes.SHA256() if alg == "SHA256" else hashes.SHA1()
    if key_name == "rsa":
        signature = server.rsa_key.sign(nonce + cnonce, padding.PKCS1v15(), digest)
    else:
        signature = server.dsa_key.sign(nonce + cnonce, digest)
    identity = f"{index}:{ADMIN}"
    header = (f'Handle sessionId="{session_id}", id="{identity}", type="HS_PUBKEY", cnonce="{b64(cnonce)}", '
              f'alg="{alg}", signature="{b64(signature)}"')
    reply = call(server, "POST", "/api/sessions/this", authorization=header)
    assert reply.status == 200 and reply.json()["authenticated"] is True and reply.json()["id"] == identity
    handle = f"TEST/{key_name}-{index}-{alg}"
    assert call(server, "PUT", f"/api/handles/{handle}", URL_VALUE,
                authorization=session_header(session_id)).status == 201
    assert call(server, "DELETE", f"/api/handles/{handle}", authorization=session_header(session_id)).status == 200


def test_a_public_key_answer_from_another_key_is_401(server: HttpsServer) -> None:
    session_id, nonce, _doc = open_session(server)
    other = rsa.generate_private_key(65537, 1024)
    signature = other.sign(nonce + b"cn", padding.PKCS1v15(), hashes.SHA256())
    header = (f'Handle sessionId="{session_id}", id="301:{ADMIN}", type="HS_PUBKEY", cnonce="{b64(b"cn")}", '
              f'alg="SHA256", signature="{b64(signature)}"')
    reply = call(server, "PUT", "/api/sessions/this", authorization=header)
    assert reply.status == 401
    assert reply.json() == {"sessionId": session_id, "nonce": b64(nonce), "error": "Identity not verified"}
    assert challenge_of(reply) == (session_id, nonce)
    # the session stays anonymous: an admin write in it is refused
    refused = call(server, "PUT", "/api/handles/TEST/other-key", URL_VALUE, authorization=session_header(session_id))
    assert refused.status == 401 and status_of(server, "TEST/other-key") == 404


def test_server_signature_proves_the_server_key(server: HttpsServer) -> None:
    server_key = keys.load_public_key(server.directory / "pubkey.bin")
    cnonce = uuid.uuid4().bytes
    session_id, nonce, doc = open_session(server, {"cnonce": b64(cnonce)})
    assert doc["serverAlg"] == "SHA-256"
    assert keys.verify(server_key, base64.b64decode(doc["serverSignature"]), nonce + cnonce, "SHA-256")
    other_cnonce = uuid.uuid4().bytes
    reply = call(server, "GET", "/api/handles/TEST/hello",
                 authorization=f'Handle sessionId="{session_id}", cnonce="{b64(other_cnonce)}"')
    assert reply.status == 200
    offered = reply.header("WWW-Authenticate")
    assert offered is not None and 'serverAlg="SHA-256"' in offered
    signature = offered.split('serverSignature="', 1)[1].rstrip('"')
    assert keys.verify(server_key, base64.b64decode(signature), nonce + other_cnonce, "SHA-256")


def test_closed_session_is_gone(server: HttpsServer) -> None:
    session_id, nonce, _doc = open_session(server)
    assert call(server, "PUT", "/api/sessions/this", authorization=hmac_header(session_id, nonce)).status == 200
    assert call(server, "DELETE", "/api/sessions/this", authorization=session_header(session_id)).status == 204
    assert call(server, "GET", "/api/sessions/this", authorization=session_header(session_id)).status == 403
    assert call(server, "DELETE", "/api/sessions/this", authorization=session_header(session_id)).status == 403
    reply = call(server, "PUT", "/api/handles/TEST/closed", URL_VALUE, authorization=session_header(session_id))
    assert reply.status == 401 and challenge_of(reply)[0] != session_id
    assert status_of(server, "TEST/closed") == 404


@pytest.mark.parametrize("method, path, body, headers, status", [
    ("GET", "/api/sessions/this", b"", {}, 200),
    ("GET", "/api/sessions", b"", {}, 405),
    ("PUT", "/api/sessions/other", b"", {}, 403),
    ("POST", "/api/sessions", b"", {"Authorization": 'Handle sessionId="abc"'}, 400),
    ("PUT", "/api/sessions/this", b"[1, 2]", {}, 400),
    ("PUT", "/api/sessions/this", b"{not json", {}, 400),
])
def test_sessions_api_edges(server: HttpsServer, method: str, path: str, body: bytes, headers: Mapping[str, str],
                            status: int) -> None:
    reply = call(server, method, path, body, **headers)
    assert reply.status == status
    if status == 200:
        assert reply.json() == {"authenticated": False}
    if status == 405:
        assert reply.header("Allow") == "POST, TRACE, OPTIONS"


@pytest.mark.parametrize("authorization, error", [
    ("Bearer token", "neither Basic credentials nor Handle parameters"),
    ("Basic !!!", "neither Basic credentials nor Handle parameters"),
    ("Handle id=x y=z", "neither Basic credentials nor Handle parameters"),
    ('Handle id="300:0.NA/TEST", type="HS_SECKEY"', "Missing fields in authentication data"),
    ('Handle id="300:0.NA/TEST", type="HS_SECKEY", cnonce="x", alg="ROT13", signature="x"',
     "Error parsing Authorization: Handle"),
    ('Handle sessionId="expired-or-made-up"', "Unknown or expired session"),
    ("Handle " + "a=b, " * 200 + "id=1", "Missing fields in authentication data"),
])
def test_malformed_authorization_is_a_clear_401_and_changes_nothing(server: HttpsServer, authorization: str,
                                                                    error: str) -> None:
    reply = call(server, "PUT", "/api/handles/TEST/malformed", URL_VALUE, authorization=authorization)
    assert reply.status == 401
    doc = reply.json()
    assert doc["responseCode"] == 402 and error in doc["message"]
    assert status_of(server, "TEST/malformed") == 404
    assert status_of(server, "TEST/hello") == 200


def test_expired_session_is_refused_with_a_fresh_one(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    http_server_dir(directory, http_config={"session_timeout_seconds": "1"})
    with in_process_http(directory) as srv:
        address = srv.address

        def send(method: str, path: str, authorization: str | None = None) -> Reply:
            headers = {"Content-Type": "application/json"}
            if authorization is not None:
                headers["Authorization"] = authorization
            body = json.dumps(URL_VALUE) if path.startswith("/api/handles/") else b""
            return request(address, method, path, body=body, headers=headers, context=tls())

        opened = send("POST", "/api/sessions").json()
        session_id, nonce = opened["sessionId"], base64.b64decode(opened["nonce"])
        assert send("PUT", "/api/sessions/this", hmac_header(session_id, nonce)).json()["authenticated"] is True
        time.sleep(1.3)
        reply = send("PUT", "/api/handles/TEST/late", session_header(session_id))
        assert reply.status == 401 and "Unknown or expired session" in reply.json()["message"]
        fresh_id, _fresh_nonce = challenge_of(reply)
        assert fresh_id != session_id
        assert send("GET", "/api/handles/TEST/late").status == 404


# --- bad input ----------------------------------------------------------------------------------------------


def test_a_handle_that_is_not_utf8_is_refused_not_mangled(server: HttpsServer) -> None:
    auth = basic(f"300:{ADMIN}", SECRET)
    reply = call(server, "PUT", "/api/handles/TEST/caf%E9", URL_VALUE, authorization=auth)
    assert reply.status == 400
    assert reply.json()["responseCode"] == 102 and reply.json()["message"] == "Invalid UTF8 encoding"
    assert status_of(server, "TEST/caf%EF%BF%BD") == 404  # nothing stored under a replacement character
    assert status_of(server, "TEST/caf%E9") == 404
    assert call(server, "PUT", "/api/handles/TEST/caf%C3%A9", URL_VALUE, authorization=auth).status == 201
    assert call(server, "DELETE", "/api/handles/TEST/caf%C3%A9", authorization=auth).status == 200


@pytest.mark.parametrize("path", ["/api/handles/TEST/%zz", "/api/handles/TEST/100%", "/api/handles/TEST/%4"])
def test_bad_percent_escapes_are_rc_4(server: HttpsServer, path: str) -> None:
    reply = call(server, "PUT", path, URL_VALUE, authorization=basic(f"300:{ADMIN}", SECRET))
    assert reply.status == 400
    assert reply.json() == {"responseCode": 4, "message": "Invalid %-encoding in the request path: "
                                                          "'%' must be followed by two hex digits"}
    assert call(server, "GET", path).status == 400
    assert status_of(server, "TEST/hello") == 200


def test_content_length_with_transfer_encoding_is_refused_and_closed(server: HttpsServer) -> None:
    body = json.dumps(URL_VALUE).encode()
    head = (f"PUT /api/handles/TEST/smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {basic(f'300:{ADMIN}', SECRET)}\r\nContent-Length: {len(body)}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    with socket.create_connection(server.address, timeout=10) as raw, tls().wrap_socket(raw) as conn:
        conn.sendall(head + chunked)
        status, headers, text = read_http_response(conn)
        assert conn.recv(1) == b""  # closed after the answer
    assert status == 400 and headers["connection"] == "close"
    assert text == b"Bad request: both Content-Length and Transfer-Encoding"
    assert status_of(server, "TEST/smuggled") == 404


def test_a_verification_with_a_huge_pbkdf2_iteration_count_is_refused_quickly(server: HttpsServer) -> None:
    query = ("nonce=bm9uY2U%3D&cnonce=Y24%3D&alg=PBKDF2-HMAC-SHA1&signature=c2ln&salt=c2FsdA%3D%3D"
             "&iterations=2000000000&length=160")
    started = time.monotonic()
    reply = call(server, "GET", f"/api/verifications/300:0.NA%2FTEST?{query}")
    assert reply.status == 400 and reply.json() == {
        "responseCode": 4, "message": "PBKDF2 answers with more than 100000 iterations are refused"}
    assert time.monotonic() - started < 5


# --- pyhandle, unmodified (issue 7 "Done when") ------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")  # the test server's certificate is self-signed
def test_pyhandle_rest_client_administers_handles(server: HttpsServer) -> None:
    rest_client = pytest.importorskip("pyhandle.client.resthandleclient",
                                      reason="pyhandle (PyPI) is not installed; pip install pyhandle")
    client = rest_client.RESTHandleClient.instantiate_with_username_and_password(
        f"https://127.0.0.1:{server.http_port}", f"300:{ADMIN}", SECRET.decode(), HTTPS_verify=False)
    handle = "TEST/pyhandle-" + uuid.uuid4().hex[:8]
    assert client.register_handle(handle, "https://example.org/first") == handle
    assert client.get_value_from_handle(handle, "URL") == "https://example.org/first"
    client.modify_handle_value(handle, URL="https://example.org/second", CHECKSUM="abc")
    record = client.retrieve_handle_record(handle)
    assert record["URL"] == "https://example.org/second" and record["CHECKSUM"] == "abc"
    client.delete_handle_value(handle, "CHECKSUM")
    assert "CHECKSUM" not in client.retrieve_handle_record(handle)
    client.delete_handle(handle)
    assert client.retrieve_handle_record(handle) is None
    generated = client.generate_and_register_handle("TEST", "https://example.org/generated")
    assert generated.startswith("TEST/") and client.get_value_from_handle(generated, "URL").endswith("/generated")
    client.delete_handle(generated)
    wrong = rest_client.RESTHandleClient.instantiate_with_username_and_password(
        f"https://127.0.0.1:{server.http_port}", f"300:{ADMIN}", "wrong", HTTPS_verify=False)
    from pyhandle.handleexceptions import HandleAuthenticationError

    with pytest.raises(HandleAuthenticationError):
        wrong.register_handle("TEST/pyhandle-refused", "https://example.org/")
    assert status_of(server, "TEST/pyhandle-refused") == 404

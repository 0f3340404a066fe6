"""Administration through challenge-response against a real server process (ops 100-105, 200, 201, 300-302)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, run_cli, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.auth.secret_answers import SECKEY_SHA256, compute_secret_answer
from hdlserver.client.admin import AdminClient, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message, tcp_exchange
from hdlserver.wire.bodies import (
    ChallengeAnswerRequest,
    CreateHandleRequest,
    DeleteHandleRequest,
    ResolutionRequest,
    VerifyChallengeRequest,
    VerifyChallengeResponse,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

SECRET = b"secret"


def url(index: int, text: str) -> HandleValue:
    return HandleValue(index, b"URL", text.encode())


def admin_value(handle: bytes = b"0.NA/TEST", index: int = 300, perms: int = ALL_PERMISSIONS) -> HandleValue:
    return HandleValue(100, b"HS_ADMIN", encode_admin(AdminRecord(perms, handle, index)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("admin") / "srv"
    port = setup_server_dir(directory)
    records = [{"handle": "TEST/user", "values": [
        {"index": 300, "type": "HS_SECKEY", "data": "user-secret", "permissions": "1100"},
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": {
            "handle": "TEST/user", "index": 300, "permissions": "011111110011"}}}]}]
    data = directory.parent / "users.json"
    data.write_text(json.dumps(records))
    run_cli("hdlserver.cli.loadjson", directory, data)
    proc = start_server(directory, port)
    yield proc
    proc.stop()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[AdminClient]:
    with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, SECRET)) as client:
        yield client


def resolve(server: ServerProcess, handle: str) -> list[HandleValue]:
    return list(Resolver([server.address], udp=False).resolve(handle).values)


def test_create_resolve_delete_with_secret_key(server: ServerProcess, admin: AdminClient) -> None:
    before = time.time()
    admin.create_handle("TEST/seckey-1", [admin_value(), url(1, "https://example.org/1")])
    values = resolve(server, "TEST/seckey-1")
    assert [v.index for v in values] == [100, 1]
    assert all(v.timestamp >= int(before) for v in values)
    admin.delete_handle("TEST/seckey-1")
    with pytest.raises(HandleResponseError) as err:
        resolve(server, "TEST/seckey-1")
    assert err.value.response_code == ResponseCode.HANDLE_NOT_FOUND


def test_create_with_public_key(server: ServerProcess) -> None:
    private = keys.read_private_key_file((server.directory / "admpriv.bin").read_bytes(), None)
    with AdminClient(server.address, PublicKeyIdentity(b"0.NA/TEST", 301, private)) as client:
        client.create_handle("TEST/pubkey-1", [url(1, "https://example.org/pk")])
    assert resolve(server, "TEST/pubkey-1")[0].data == b"https://example.org/pk"


def test_add_modify_remove(server: ServerProcess, admin: AdminClient) -> None:
    admin.create_handle("TEST/edit", [admin_value(), url(1, "https://example.org/a")])
    admin.add_values("TEST/edit", [HandleValue(2, b"EMAIL", b"a@example.org")])
    admin.modify_values("TEST/edit", [url(1, "https://example.org/b")])
    admin.remove_values("TEST/edit", [2])
    values = {v.index: v.data for v in resolve(server, "TEST/edit")}
    assert values == {100: encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)),
                      1: b"https://example.org/b"}


@pytest.mark.parametrize("action,code", [
    (lambda a: a.create_handle("TEST/hello", [url(1, "x")]), ResponseCode.HANDLE_ALREADY_EXISTS),
    (lambda a: a.delete_handle("TEST/nothing-here"), ResponseCode.HANDLE_NOT_FOUND),
    (lambda a: a.add_values("TEST/hello", [url(1, "dup")]), ResponseCode.VALUE_ALREADY_EXISTS),
    (lambda a: a.remove_values("TEST/hello", [77]), ResponseCode.VALUES_NOT_FOUND),
    (lambda a: a.modify_values("TEST/hello", [url(77, "x")]), ResponseCode.VALUES_NOT_FOUND),
    (lambda a: a.create_handle("TEST/badindex", [url(0, "x")]), ResponseCode.INVALID_VALUE),
    (lambda a: a.create_handle("TEST/dupindex", [url(1, "x"), url(1, "y")]), ResponseCode.VALUE_ALREADY_EXISTS),
    (lambda a: a.create_handle("OTHER/x", [url(1, "x")]), ResponseCode.SERVER_NOT_RESP),
])
def test_admin_errors(server: ServerProcess, admin: AdminClient, action: object, code: int) -> None:
    before = resolve(server, "TEST/hello")
    with pytest.raises(HandleResponseError) as err:
        action(admin)  # type: ignore[operator]
    assert err.value.response_code == code
    assert resolve(server, "TEST/hello") == before


def test_wrong_secret_is_refused_and_logged(server: ServerProcess) -> None:
    with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"wrong")) as client, \
            pytest.raises(HandleResponseError) as err:
        client.create_handle("TEST/should-not-exist", [url(1, "x")])
    assert err.value.response_code == ResponseCode.AUTHENTICATION_FAILED
    with pytest.raises(HandleResponseError):
        resolve(server, "TEST/should-not-exist")
    deadline = time.monotonic() + 5
    while "authentication failed for 300:0.NA/TEST" not in server.error_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "authentication failed for 300:0.NA/TEST" in server.error_log()


def test_wrong_key_is_refused(server: ServerProcess) -> None:
    other = keys.generate_key_pair("RSA", 1024)
    with AdminClient(server.address, PublicKeyIdentity(b"0.NA/TEST", 301, other)) as client, \
            pytest.raises(HandleResponseError) as err:
        client.delete_handle("TEST/hello")
    assert err.value.response_code == ResponseCode.AUTHENTICATION_FAILED
    assert resolve(server, "TEST/hello")


def test_identity_without_permission_gets_400(server: ServerProcess) -> None:
    with AdminClient(server.address, SecretKeyIdentity(b"TEST/user", 300, b"user-secret")) as client:
        with pytest.raises(HandleResponseError) as err:
            client.delete_handle("TEST/hello")
        assert err.value.response_code == ResponseCode.INVALID_ADMIN
        # Permission is checked before the proof: a wrong secret of a non-admin still gets 400.
    with AdminClient(server.address, SecretKeyIdentity(b"TEST/user", 300, b"bad")) as client, \
            pytest.raises(HandleResponseError) as err:
        client.delete_handle("TEST/hello")
    assert err.value.response_code == ResponseCode.INVALID_ADMIN
    assert resolve(server, "TEST/hello")


def test_list_handles_in_parts(server: ServerProcess, admin: AdminClient) -> None:
    for i in range(57):
        admin.create_handle(f"TEST/list-{i:03d}", [url(1, f"https://example.org/{i}")])
    names = admin.list_handles("0.NA/TEST")
    assert [n for n in names if n.startswith(b"TEST/LIST-")] == [f"TEST/LIST-{i:03d}".encode() for i in range(57)]


def test_home_unhome_and_list_homed(server: ServerProcess, admin: AdminClient) -> None:
    admin.home_prefix("NEWPREFIX")
    assert b"0.NA/NEWPREFIX" in admin.list_homed_prefixes()
    admin.create_handle("NEWPREFIX/a", [url(1, "https://example.org/new")])
    assert resolve(server, "NEWPREFIX/a")
    admin.unhome_prefix("0.NA/NEWPREFIX")
    assert b"0.NA/NEWPREFIX" not in admin.list_homed_prefixes()
    with pytest.raises(HandleResponseError) as err:
        resolve(server, "NEWPREFIX/a")
    assert err.value.response_code == ResponseCode.SERVER_NOT_RESP


def test_answer_to_unknown_challenge_is_405(server: ServerProcess) -> None:
    body = ChallengeAnswerRequest(b"HS_SECKEY", b"0.NA/TEST", 300, b"\x02" + b"\x00" * 20)
    request = bytearray(build_request(OpCode.CHALLENGE_RESPONSE, body))
    request[4:8] = (987654).to_bytes(4, "big")
    answer = decode_answer(tcp_exchange(server.address, bytes(request))[0])
    assert answer.header.response_code == ResponseCode.AUTHEN_TIMEOUT


def test_replayed_answer_is_refused(server: ServerProcess) -> None:
    request = build_request(OpCode.CREATE_HANDLE, CreateHandleRequest(b"TEST/replay", (url(1, "x"),)))
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(request)
        raw = read_tcp_message(sock)
        challenge = decode_answer(raw)
        assert challenge.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
        signed = compute_secret_answer(SECRET, challenge.body.nonce, challenge.request_digest[1], SECKEY_SHA256)
        answer = bytearray(build_request(OpCode.CHALLENGE_RESPONSE,
                                         ChallengeAnswerRequest(b"HS_SECKEY", b"0.NA/TEST", 300, signed)))
        answer[4:8] = raw[4:8]
        sock.sendall(bytes(answer))
        assert decode_answer(read_tcp_message(sock)).header.response_code == ResponseCode.SUCCESS
        sock.sendall(bytes(answer))
        assert decode_answer(read_tcp_message(sock)).header.response_code == ResponseCode.AUTHEN_TIMEOUT


def test_restricted_values_need_authentication(server: ServerProcess) -> None:
    request = build_request(OpCode.RESOLUTION, ResolutionRequest(b"0.NA/TEST", (300,), ()), flags=OpFlag.REC)
    answer = decode_answer(tcp_exchange(server.address, request)[0])
    assert answer.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, SECRET)) as client:
        result = client.request(OpCode.RESOLUTION, ResolutionRequest(b"0.NA/TEST", (300,), ()), OpFlag.REC)
    assert [v.data for v in result.messages[0].body.values] == [SECRET]


def test_verify_challenge_op(server: ServerProcess) -> None:
    nonce, digest = b"n" * 16, b"d" * 32
    for secret, valid in ((SECRET, True), (b"nope", False)):
        signed = compute_secret_answer(secret, nonce, digest, SECKEY_SHA256)
        body = VerifyChallengeRequest(b"0.NA/TEST", 300, nonce, 0, digest, signed)
        answer = decode_answer(tcp_exchange(server.address, build_request(OpCode.VERIFY_CHALLENGE, body))[0])
        assert answer.header.response_code == ResponseCode.SUCCESS
        assert isinstance(answer.body, VerifyChallengeResponse) and answer.body.valid is valid


def test_expired_challenge_is_405(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    config = directory / "config.dct"
    config.write_text(config.read_text().replace('"max_auth_time" = "60000"', '"max_auth_time" = "300"'))
    proc = start_server(directory, port)
    try:
        with socket.create_connection(proc.address, timeout=10) as sock:
            sock.sendall(build_request(OpCode.DELETE_HANDLE, DeleteHandleRequest(b"TEST/hello")))
            raw = read_tcp_message(sock)
            challenge = decode_answer(raw)
            time.sleep(0.6)
            signed = compute_secret_answer(SECRET, challenge.body.nonce, challenge.request_digest[1], SECKEY_SHA256)
            answer = bytearray(build_request(OpCode.CHALLENGE_RESPONSE,
                                             ChallengeAnswerRequest(b"HS_SECKEY", b"0.NA/TEST", 300, signed)))
            answer[4:8] = raw[4:8]
            sock.sendall(bytes(answer))
            assert decode_answer(read_tcp_message(sock)).header.response_code == ResponseCode.AUTHEN_TIMEOUT
        assert Resolver([proc.address]).resolve("TEST/hello").values
    finally:
        proc.stop()

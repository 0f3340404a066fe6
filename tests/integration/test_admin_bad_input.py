"""Bad input to authentication and administration on a real server: the precise response code (as the Java
9.2 server answers, where it was probed), nothing stored changes, and the server keeps serving.

Covered elsewhere: a value index that already exists and a handle outside any homed prefix
(test_admin_server.test_admin_errors), a VLIST cycle (test_admin_permissions), a challenge answered twice
and an expired challenge (test_admin_server).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

import pytest
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.auth.pubkey_answers import make_pubkey_answer, parse_pubkey_answer
from hdlserver.auth.secret_answers import SECKEY_SHA256, compute_secret_answer
from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message, tcp_exchange
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.bodies import AddValueRequest, ChallengeAnswerRequest, VerifyChallengeRequest
from hdlserver.wire.buffer import Writer
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE
from hdlserver.wire.valuedata import PERM_DELETE_HANDLE, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

SECRET = b"secret"
TARGET = b"TEST/hello"
PLAIN = SecretKeyIdentity(b"TEST/plain", 300, b"plain-pass")  # not a server admin
GARBAGE_ADMIN = HandleValue(100, b"HS_ADMIN", b"\x01\x02garbage")

Signer = Callable[[bytes, bytes], bytes]  # (nonce, digest) -> signedResponse


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("bad-admin") / "srv"
    port = setup_server_dir(directory)
    store = open_store(directory, case_sensitive=False, sync=False)
    try:
        store.create_handles([
            (PLAIN.handle, [HandleValue(300, b"HS_SECKEY", PLAIN.secret, permissions=0x0C)]),
            (b"TEST/garbage-only", [GARBAGE_ADMIN, HandleValue(1, b"URL", b"https://example.org/g")]),
            (b"TEST/garbage-then-valid", [GARBAGE_ADMIN, HandleValue(101, b"HS_ADMIN", encode_admin(
                AdminRecord(PERM_DELETE_HANDLE, PLAIN.handle, 300)))]),
        ], log=False)
    finally:
        store.close()
    proc = start_server(directory, port)
    yield proc
    proc.stop()


def values_of(server: ServerProcess, handle: bytes) -> tuple[HandleValue, ...] | None:
    store = open_store(server.directory, case_sensitive=False, readonly=True)
    try:
        return store.get_values(handle)
    finally:
        store.close()


def admin_private_key(server: ServerProcess) -> keys.PrivateKey:
    return keys.load_private_key(server.directory / "admpriv.bin")


def challenge(sock: socket.socket, handle: bytes = TARGET, index: int = 50) -> tuple[bytes, bytes, bytes]:
    """Send an ADD_VALUE and return (raw challenge, nonce, request digest)."""
    request = AddValueRequest(handle, (HandleValue(index, b"EMAIL", b"bad@example.org"),))
    sock.sendall(build_request(OpCode.ADD_VALUE, request))
    raw = read_tcp_message(sock)
    msg = decode_answer(raw)
    assert msg.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    return raw, msg.body.nonce, msg.request_digest[1]  # type: ignore[attr-defined,index]


def answer_message(raw_challenge: bytes, auth_type: bytes, index: int, signed: bytes) -> bytes:
    body = ChallengeAnswerRequest(auth_type, b"0.NA/TEST", index, signed)
    answer = bytearray(build_request(OpCode.CHALLENGE_RESPONSE, body))
    answer[4:8] = raw_challenge[4:8]  # the challenge id travels in the envelope SessionId
    return bytes(answer)


def answered(server: ServerProcess, auth_type: bytes, index: int, signer: Signer) -> int:
    with socket.create_connection(server.address, timeout=10) as sock:
        raw, nonce, digest = challenge(sock)
        sock.sendall(answer_message(raw, auth_type, index, signer(nonce, digest)))
        return decode_answer(read_tcp_message(sock)).header.response_code


def assert_unchanged(server: ServerProcess, before: tuple[HandleValue, ...] | None) -> None:
    assert values_of(server, TARGET) == before
    assert Resolver([server.address], udp=False).resolve(TARGET).values


def seckey(nonce: bytes, digest: bytes) -> bytes:
    return compute_secret_answer(SECRET, nonce, digest, SECKEY_SHA256)


def pbkdf2_fields(salt: bytes, iterations: int, bits: int) -> bytes:
    return Writer().put_byte(0x22).put_byte_array(salt).put_int4(iterations).put_int4(bits).put_byte_array(
        b"m" * 20).getvalue()


SECKEY_CASES: dict[str, tuple[Signer, int]] = {
    # Java's verifier throws on these: RC 406 AUTHEN_ERROR.
    "empty": (lambda n, d: b"", ResponseCode.AUTHEN_ERROR),
    "unknown-code": (lambda n, d: b"\x7f" + seckey(n, d)[1:], ResponseCode.AUTHEN_ERROR),
    "pbkdf2-truncated": (lambda n, d: b"\x22\x00\x00\x00\x10abc", ResponseCode.AUTHEN_ERROR),
    "pbkdf2-zero-iterations": (lambda n, d: pbkdf2_fields(b"s" * 16, 0, 160), ResponseCode.AUTHEN_ERROR),
    "pbkdf2-empty-salt": (lambda n, d: pbkdf2_fields(b"", 10, 160), ResponseCode.AUTHEN_ERROR),
    # Well-formed but wrong: RC 403.
    "sha256-too-short": (lambda n, d: seckey(n, d)[:21], ResponseCode.AUTHENTICATION_FAILED),
    "sha256-too-long": (lambda n, d: seckey(n, d) + b"\x00", ResponseCode.AUTHENTICATION_FAILED),
    "pbkdf2-wrong-mac": (lambda n, d: pbkdf2_fields(b"s" * 16, 10, 160), ResponseCode.AUTHENTICATION_FAILED),
}


@pytest.mark.parametrize("name", sorted(SECKEY_CASES))
def test_bad_secret_key_answer(server: ServerProcess, name: str) -> None:
    signer, code = SECKEY_CASES[name]
    before = values_of(server, TARGET)
    assert answered(server, b"HS_SECKEY", 300, signer) == code
    assert_unchanged(server, before)


def pubkey_signer(server: ServerProcess, change: Callable[[bytes, bytes], bytes]) -> Signer:
    """A Java-form answer by 301:0.NA/TEST, its (algorithm, signature) rewritten by ``change``."""
    private = admin_private_key(server)

    def sign(nonce: bytes, digest: bytes) -> bytes:
        alg, signature = parse_pubkey_answer(make_pubkey_answer(private, nonce, digest, (2, 11)))
        return change(alg, signature)

    return sign


def java_form(alg: bytes, signature: bytes) -> bytes:
    return Writer().put_utf8(alg).put_byte_array(signature).getvalue()


PUBKEY_CASES: dict[str, Callable[[bytes, bytes], bytes]] = {
    "signature-truncated": lambda alg, sig: java_form(alg, sig[:-1]),
    "signature-extended": lambda alg, sig: java_form(alg, sig + b"\x00"),
    "unknown-hash-algorithm": lambda alg, sig: java_form(b"SHA-999", sig),
    "legacy-id-of-another-hash": lambda alg, sig: java_form(b"\x01", sig),
    "not-utf8string-bytearray": lambda alg, sig: b"\x00\x00\x00",
    "empty": lambda alg, sig: b"",
}


@pytest.mark.parametrize("name", sorted(PUBKEY_CASES))
def test_bad_public_key_answer_is_403(server: ServerProcess, name: str) -> None:
    before = values_of(server, TARGET)
    assert answered(server, b"HS_PUBKEY", 301, pubkey_signer(server, PUBKEY_CASES[name])) == \
        ResponseCode.AUTHENTICATION_FAILED
    assert_unchanged(server, before)


def test_good_public_key_answer_passes(server: ServerProcess) -> None:
    """The control for the cases above: the unmodified answer is accepted."""
    with socket.create_connection(server.address, timeout=10) as sock:
        raw, nonce, digest = challenge(sock, index=60)
        signed = pubkey_signer(server, java_form)(nonce, digest)
        sock.sendall(answer_message(raw, b"HS_PUBKEY", 301, signed))
        assert decode_answer(read_tcp_message(sock)).header.response_code == ResponseCode.SUCCESS


def test_unknown_auth_type_is_404(server: ServerProcess) -> None:
    before = values_of(server, TARGET)
    assert answered(server, b"HS_FOO", 300, seckey) == ResponseCode.INVALID_CREDENTIAL
    assert_unchanged(server, before)


def test_answer_computed_for_another_requests_nonce_is_403(server: ServerProcess) -> None:
    before = values_of(server, TARGET)
    with socket.create_connection(server.address, timeout=10) as sock:
        first, _nonce, _digest = challenge(sock)
        _second, other_nonce, other_digest = challenge(sock, index=51)
        sock.sendall(answer_message(first, b"HS_SECKEY", 300, seckey(other_nonce, other_digest)))
        assert decode_answer(read_tcp_message(sock)).header.response_code == ResponseCode.AUTHENTICATION_FAILED
    assert_unchanged(server, before)


def test_truncated_answer_message_is_protocol_error(server: ServerProcess) -> None:
    """An op-200 body that ends inside its fields (Java 9.2 answers this with RC 400; we refuse to decode it)."""
    before = values_of(server, TARGET)
    with socket.create_connection(server.address, timeout=10) as sock:
        raw, nonce, digest = challenge(sock)
        full = answer_message(raw, b"HS_SECKEY", 300, seckey(nonce, digest))
        body = full[ENVELOPE_SIZE + 24:ENVELOPE_SIZE + 24 + 13]  # the authType field only
        header = full[ENVELOPE_SIZE:ENVELOPE_SIZE + 20] + struct.pack(">I", len(body))
        envelope = full[:16] + struct.pack(">I", 24 + len(body))
        sock.sendall(envelope + header + body)
        assert decode_answer(read_tcp_message(sock)).header.response_code == ResponseCode.PROTOCOL_ERROR
    assert_unchanged(server, before)


@pytest.mark.parametrize("signed", [b"", b"\x7f" + b"x" * 32, b"\x22\x00\x00\x00\x10abc"],
                         ids=["empty", "unknown-code", "pbkdf2-truncated"])
def test_verify_challenge_with_malformed_answer_is_rc2(server: ServerProcess, signed: bytes) -> None:
    """Op 201 as the Java server answers it: RC 2 "Server error processing request, see server logs"."""
    body = VerifyChallengeRequest(b"0.NA/TEST", 300, b"n" * 16, 0, b"d" * 32, signed)
    answer = decode_answer(tcp_exchange(server.address, build_request(OpCode.VERIFY_CHALLENGE, body))[0])
    assert answer.header.response_code == ResponseCode.ERROR
    assert answer.body.message == b"Server error processing request, see server logs"  # type: ignore[attr-defined]
    assert Resolver([server.address], udp=False).resolve(TARGET).values


def test_undecodable_hs_admin_is_stored_as_java_does(server: ServerProcess) -> None:
    """Java 9.2 validates no HS_ADMIN data on create (probed: RC 1); the record is stored byte for byte."""
    with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, SECRET), timeout=15) as client:
        client.create_handle(b"TEST/garbage-created", [GARBAGE_ADMIN])
    assert [v.data for v in values_of(server, b"TEST/garbage-created") or ()] == [GARBAGE_ADMIN.data]


def test_undecodable_hs_admin_grants_nothing(server: ServerProcess) -> None:
    handle = b"TEST/garbage-only"
    before = values_of(server, handle)
    with AdminClient(server.address, PLAIN, timeout=15) as client, pytest.raises(HandleResponseError) as err:
        client.delete_handle(handle)
    assert err.value.response_code == ResponseCode.INVALID_ADMIN
    assert values_of(server, handle) == before


def test_undecodable_hs_admin_is_skipped_not_fatal(server: ServerProcess) -> None:
    """auth.md 6.3 step 5: an undecodable record is skipped and the next, valid one still grants."""
    with AdminClient(server.address, PLAIN, timeout=15) as client:
        client.delete_handle(b"TEST/garbage-then-valid")
    assert values_of(server, b"TEST/garbage-then-valid") is None

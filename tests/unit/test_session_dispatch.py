"""Sessions through the dispatcher (ops 400-402, MACs, replay, encryption; auth.md 8-9, wire.md 12.5).

A real server directory and LMDB store, the sans-IO ``Dispatcher`` fed request bytes, a controllable
clock, and the project's client session (``hdlserver.client.session``) on the other side. Every refusal
checks the response code and message, that nothing stored changed, and that the server still serves.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import run_cli, setup_server_dir

from hdlserver.auth import keys
from hdlserver.auth.secret_answers import make_secret_answer
from hdlserver.auth.session_crypto import ALG_AES, ALG_DES, ALG_DESEDE, decrypt_message, encrypt_message, verify_mac
from hdlserver.auth.sessions import Session
from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.client.session import OAKLEY_GROUP_2_G, OAKLEY_GROUP_2_P, ClientSession, DHSetup, SessionRefused
from hdlserver.core.context import InterfaceRole, RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher, Outcome
from hdlserver.core.session_ops import SessionSweeper
from hdlserver.serverdir import open_server_state
from hdlserver.wire.bodies import (
    KEY_EXCHANGE_CIPHER_CLIENT,
    KEY_EXCHANGE_CIPHER_HDL,
    KEY_EXCHANGE_CIPHER_SERVER,
    KEY_EXCHANGE_DH,
    ChallengeAnswerRequest,
    ChallengeBody,
    CreateHandleRequest,
    ErrorBody,
    ResolutionRequest,
    ResolutionResponse,
    SessionExchangeKeyRequest,
    SessionSetupRequest,
    SessionSetupResponse,
    SessionTerminateRequest,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.credential import HS_MAC, HS_SIGNED, signed_prefix
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope, encode_envelope
from hdlserver.wire.message import Message
from hdlserver.wire.pubkey import DHPublicKeyData, decode_public_key, encode_public_key
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "sessions" / "session_vectors.json"
ADMIN = (b"0.NA/TEST", 300)
SECRET = b"secret"
USER = (b"TEST/user", 300)
USER_SECRET = b"user-secret"
ADMIN_FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Server:
    state: ServerState
    dispatcher: Dispatcher
    clock: Clock
    public_key: keys.PublicKey

    def send(self, request: bytes) -> Outcome:
        env = decode_envelope(request)
        info = RequestInfo("TCP", "127.0.0.1", InterfaceRole(), self.clock())
        return self.dispatcher.handle(env, request[ENVELOPE_SIZE:], info)

    def answer(self, request: bytes) -> bytes:
        outcome = self.send(request)
        assert len(outcome.messages) == 1
        return outcome.messages[0]


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("session-dispatch") / "srv"
    setup_server_dir(directory)
    users = [{"handle": "TEST/user", "values": [
        {"index": 300, "type": "HS_SECKEY", "data": USER_SECRET.decode(), "permissions": "1100"}]}]
    data = directory.parent / "users.json"
    data.write_text(json.dumps(users), encoding="utf-8")
    run_cli("hdlserver.cli.loadjson", directory, data)
    return directory


@pytest.fixture
def server(server_dir: Path) -> Iterator[Server]:
    clock = Clock()
    state = open_server_state(server_dir, clock=clock)
    public_key = keys.public_key_from_bytes(state.this_server.public_key)
    try:
        yield Server(state, Dispatcher(state), clock, public_key)
    finally:
        state.store.close()


def admin_value(identity: tuple[bytes, int] = ADMIN) -> HandleValue:
    return HandleValue(100, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, identity[0], identity[1])))


def fresh_handle(name: str) -> bytes:
    return f"TEST/{name}-{uuid.uuid4().hex}".encode()


def create_request(handle: bytes, version: tuple[int, int] = (2, 11), flags: int = ADMIN_FLAGS) -> bytes:
    body = CreateHandleRequest(handle, (admin_value(), HandleValue(1, b"URL", b"https://example.org/")))
    return build_request(OpCode.CREATE_HANDLE, body, flags, version=version)


def error_text(msg: Message) -> str:
    assert isinstance(msg.body, ErrorBody)
    return msg.body.message.decode()


def open_session(server: Server, identity: tuple[bytes, int] = ADMIN, *, encrypt_all: bool = False) -> ClientSession:
    setup = DHSetup.start(*identity, encrypt_all=encrypt_all)
    return setup.finish(server.answer(setup.request), server.public_key)


def answer_challenge(server: Server, session: ClientSession, challenge_raw: bytes,
                     identity: tuple[bytes, int] = ADMIN, secret: bytes = SECRET) -> bytes:
    """The Java way: the answer carries the challenge id (= the session id) and no credential."""
    challenge = decode_answer(session.open(challenge_raw))
    assert isinstance(challenge.body, ChallengeBody) and challenge.request_digest is not None
    env = decode_envelope(challenge_raw)
    signed = make_secret_answer(secret, challenge.body.nonce, challenge.request_digest[1], env.version,
                                env.suggested)
    body = ChallengeAnswerRequest(b"HS_SECKEY", identity[0], identity[1], signed)
    answer = build_request(OpCode.CHALLENGE_RESPONSE, body, ADMIN_FLAGS, version=env.version)
    return session.open(server.answer(session.join(answer)))


def authenticated_session(server: Server) -> ClientSession:
    session = open_session(server)
    challenge = server.answer(session.seal(create_request(fresh_handle("auth"))))
    assert decode_answer(challenge).header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    result = decode_answer(answer_challenge(server, session, challenge))
    assert result.header.response_code == ResponseCode.SUCCESS
    return session


def still_serves(server: Server) -> None:
    request = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello", (), ()))
    assert decode_answer(server.answer(request)).header.response_code == ResponseCode.SUCCESS


# --- SESSION_SETUP (400) ---------------------------------------------------------------------------


def test_setup_answer_is_signed_and_gives_an_aes_session(server: Server) -> None:
    setup = DHSetup.start(*ADMIN)
    raw = server.answer(setup.request)
    msg = decode_answer(raw)
    assert msg.header.flags & (OpFlag.CT | OpFlag.RD) == OpFlag.CT | OpFlag.RD
    assert msg.credential is not None and msg.credential.type == HS_SIGNED
    session = setup.finish(raw, server.public_key)
    stored = server.state.sessions.get(session.session_id, server.clock())
    assert stored is not None and stored.key == session.key and stored.algorithm == ALG_AES == session.algorithm
    assert (stored.identity_handle, stored.identity_index) == ADMIN and not stored.authenticated
    assert stored.timeout_seconds == 86_400 and stored.version == (2, 11)


def test_session_and_challenge_ids_share_one_counter(server: Server) -> None:
    first = open_session(server)
    challenge = decode_envelope(server.answer(create_request(b"TEST/no-session")))
    second = open_session(server)
    assert challenge.session_id == first.session_id + 1 and second.session_id == first.session_id + 2


def test_setup_timeout_falls_back_to_max_session_time(server: Server) -> None:
    setup = DHSetup.start(*ADMIN, timeout=0)
    session = setup.finish(server.answer(setup.request))
    stored = server.state.sessions.get(session.session_id, server.clock())
    assert stored is not None and stored.timeout_seconds == server.state.settings.server.max_session_time_s


@pytest.mark.parametrize(("mode", "extra", "text"), [
    (KEY_EXCHANGE_CIPHER_CLIENT, {"public_key": b"\x00"}, "Error performing client cipher key exchange."),
    (KEY_EXCHANGE_CIPHER_SERVER, {}, "KEY_EXCHANGE_CIPHER_SERVER not supported"),
    (KEY_EXCHANGE_CIPHER_HDL, {"exchange_key_handle": b"TEST/key", "exchange_key_index": 1},
     "Error performing hdl cipher key exchange."),
    (9, {}, "Unrecognized key exchange mode"),
])
def test_setup_modes_other_than_dh_are_refused_like_java(server: Server, mode: int, extra: dict[str, Any],
                                                         text: str) -> None:
    body = SessionSetupRequest(mode, 86_400, *ADMIN, **extra)
    msg = decode_answer(server.answer(build_request(OpCode.SESSION_SETUP, body, ADMIN_FLAGS | OpFlag.CT)))
    assert msg.header.response_code == ResponseCode.SESSION_FAILED and error_text(msg) == text
    assert len(server.state.sessions) == 0
    still_serves(server)


@pytest.mark.parametrize("y", [0, 1, OAKLEY_GROUP_2_P - 1, OAKLEY_GROUP_2_P, OAKLEY_GROUP_2_P + 5])
def test_setup_with_dh_public_value_out_of_range_is_501(server: Server, y: int) -> None:
    public = encode_public_key(DHPublicKeyData(y=y, p=OAKLEY_GROUP_2_P, g=OAKLEY_GROUP_2_G))
    body = SessionSetupRequest(KEY_EXCHANGE_DH, 86_400, *ADMIN, public_key=public)
    raw = server.answer(build_request(OpCode.SESSION_SETUP, body, ADMIN_FLAGS | OpFlag.CT | OpFlag.RD))
    msg = decode_answer(raw)
    assert msg.header.response_code == ResponseCode.SESSION_FAILED
    assert error_text(msg) == "Error encoding public session key"
    assert len(server.state.sessions) == 0
    with pytest.raises(SessionRefused):
        DHSetup(build_request(OpCode.SESSION_SETUP, body, ADMIN_FLAGS), 2).finish(raw)
    still_serves(server)


# --- The Java flow: setup, MACed request, challenge inside the session, MACed requests after ---------


def test_challenge_inside_session_authenticates_it_once(server: Server) -> None:
    session = open_session(server)
    challenge_raw = server.answer(session.seal(create_request(b"TEST/s-1")))
    challenge = decode_answer(challenge_raw)
    assert challenge.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert decode_envelope(challenge_raw).session_id == session.session_id  # challenge id = session id
    result = decode_answer(answer_challenge(server, session, challenge_raw))
    assert result.header.response_code == ResponseCode.SUCCESS
    stored = server.state.sessions.get(session.session_id, server.clock())
    assert stored is not None and stored.authenticated
    for n in range(2, 5):  # later requests: MAC only, no challenge
        outcome = server.send(session.seal(create_request(f"TEST/s-{n}".encode())))
        assert outcome.response_code == ResponseCode.SUCCESS and outcome.identity == "300:0.NA/TEST"
        assert server.state.store.exists(f"TEST/S-{n}".encode())


def test_certified_answers_in_a_session_carry_verifiable_hs_macs(server: Server) -> None:
    session = authenticated_session(server)
    counters = []
    for n in range(2):
        raw = server.answer(session.seal(create_request(f"TEST/ct-{n}".encode(), flags=ADMIN_FLAGS | OpFlag.CT)))
        msg = decode_answer(raw)
        env = decode_envelope(raw)
        assert msg.header.flags & OpFlag.CT and msg.credential is not None and msg.credential.type == HS_MAC
        assert verify_mac(session.key, msg.credential, msg.header_body, env.version, env.suggested,
                          env.session_id, env.request_id)
        counters.append(msg.credential.signer_index)
        session.open(raw)  # the client accepts it too
    assert counters[1] == counters[0] + 1


def test_certified_challenge_in_a_session_is_macced(server: Server) -> None:
    session = open_session(server)
    raw = server.answer(session.seal(create_request(b"TEST/ct-challenge", flags=ADMIN_FLAGS | OpFlag.CT)))
    msg = decode_answer(raw)
    assert msg.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert msg.credential is not None and msg.credential.type == HS_MAC and msg.credential.signer_index == 1
    final = decode_answer(answer_challenge(server, session, raw))
    assert final.credential is not None and final.credential.type == HS_MAC and final.credential.signer_index == 2


def test_challenge_retry_in_a_session_gets_the_same_challenge(server: Server) -> None:
    session = open_session(server)
    request = session.seal(create_request(b"TEST/retry"))
    first, again = decode_answer(server.answer(request)), decode_answer(server.answer(request))
    assert isinstance(first.body, ChallengeBody) and isinstance(again.body, ChallengeBody)
    assert first.body.nonce == again.body.nonce


def test_answer_for_another_identity_does_not_authenticate_the_session(server: Server) -> None:
    # The session claims the prefix admin; the challenge is answered (correctly) as TEST/user.
    session = open_session(server)
    challenge = server.answer(session.seal(create_request(b"TEST/other-identity")))
    result = decode_answer(answer_challenge(server, session, challenge, USER, USER_SECRET))
    assert result.header.response_code == ResponseCode.INVALID_ADMIN  # TEST/user may not create handles
    stored = server.state.sessions.get(session.session_id, server.clock())
    assert stored is not None and not stored.authenticated
    # The session still has no identity: the next request is challenged again, not granted admin rights.
    retry = decode_answer(server.answer(session.seal(create_request(b"TEST/other-identity"))))
    assert retry.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert not server.state.store.exists(b"TEST/OTHER-IDENTITY")


def test_anonymous_session_is_never_authenticated(server: Server) -> None:
    session = open_session(server, (b"", -1))
    challenge = server.answer(session.seal(create_request(b"TEST/anon")))
    assert decode_answer(answer_challenge(server, session, challenge)).header.response_code == ResponseCode.SUCCESS
    stored = server.state.sessions.get(session.session_id, server.clock())
    assert stored is not None and not stored.authenticated


# --- Bad input in a session: right code, nothing changes, the server keeps serving -----------------


def assert_refused(server: Server, request: bytes, code: int, text: str, handle: bytes) -> None:
    msg = decode_answer(server.answer(request))
    assert msg.header.response_code == code, error_text(msg)
    assert error_text(msg) == text
    assert not server.state.store.exists(handle.upper())
    still_serves(server)


def test_wrong_mac_in_authenticated_session_is_502(server: Server) -> None:
    session = authenticated_session(server)
    thief = replace(session, key=bytes(32), counter=session.counter)
    assert_refused(server, thief.seal(create_request(b"TEST/bad-mac")), ResponseCode.INVALID_SESSION_KEY,
                   "Session authentication failed.", b"TEST/bad-mac")


def test_session_id_of_another_client_without_mac_is_404(server: Server) -> None:
    session = authenticated_session(server)
    assert_refused(server, session.join(create_request(b"TEST/no-mac")), ResponseCode.INVALID_CREDENTIAL,
                   "Session request missing MAC code.", b"TEST/no-mac")


def test_challenged_request_with_wrong_mac_does_not_authenticate(server: Server) -> None:
    session = open_session(server)
    thief = replace(session, key=bytes(32))
    challenge = server.answer(thief.seal(create_request(b"TEST/stolen")))
    result = decode_answer(answer_challenge(server, session, challenge))
    assert result.header.response_code == ResponseCode.INVALID_SESSION_KEY
    assert error_text(result) == "The session key authentication failed."
    stored = server.state.sessions.get(session.session_id, server.clock())
    assert stored is not None and not stored.authenticated
    assert not server.state.store.exists(b"TEST/STOLEN")


def test_replayed_counter_is_505(server: Server) -> None:
    session = authenticated_session(server)
    replayed = session.seal(create_request(b"TEST/replay-1"), counter=session.counter)
    assert_refused(server, replayed, ResponseCode.SESSION_MESSAGE_REJECTED,
                   f"Duplicate session counter {session.counter} in session {session.session_id}", b"TEST/replay-1")


def test_unknown_session_id_is_500(server: Server) -> None:
    session = authenticated_session(server)
    lost = replace(session, session_id=session.session_id + 1000)
    assert_refused(server, lost.seal(create_request(b"TEST/unknown")), ResponseCode.SESSION_TIMEOUT,
                   "Invalid session id or session time out. Please try again.", b"TEST/unknown")


def test_idle_session_expires_and_every_use_refreshes_it(server: Server) -> None:
    session = authenticated_session(server)
    stored = server.state.sessions.get(session.session_id, server.clock())
    assert stored is not None
    server.clock.now += stored.timeout_seconds - 1
    assert server.send(session.seal(create_request(b"TEST/refreshed"))).response_code == ResponseCode.SUCCESS
    server.clock.now += stored.timeout_seconds + 1
    assert_refused(server, session.seal(create_request(b"TEST/expired")), ResponseCode.SESSION_TIMEOUT,
                   "Invalid session id or session time out. Please try again.", b"TEST/expired")


def test_sweeper_removes_idle_sessions_once_per_interval(server: Server) -> None:
    session = open_session(server)
    sweeper = SessionSweeper(server.state.sessions, interval=60)
    assert sweeper.tick(server.clock()) == 0
    server.clock.now += 86_401
    assert sweeper.tick(server.clock.now - 86_401 + 30) == 0  # within the interval: no sweep
    assert sweeper.tick(server.clock()) == 1
    assert server.state.sessions.get(session.session_id, server.clock()) is None


# --- Encryption (auth.md 9.7, wire.md 12.5) --------------------------------------------------------


def test_encrypted_requests_are_decrypted_and_enc_answers_encrypted(server: Server) -> None:
    session = open_session(server, encrypt_all=True)
    enc_flags = ADMIN_FLAGS | OpFlag.ENC
    request = session.seal(create_request(b"TEST/enc", flags=enc_flags))
    assert decode_envelope(request).encrypted
    challenge = server.answer(request)
    assert decode_envelope(challenge).encrypted
    result = decode_answer(answer_challenge(server, session, challenge))
    assert result.header.response_code == ResponseCode.SUCCESS
    resolution = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/enc", (), ()),
                               ADMIN_FLAGS | OpFlag.ENC)
    raw = server.answer(session.seal(resolution))
    assert decode_envelope(raw).encrypted
    msg = decode_answer(session.open(raw))
    assert isinstance(msg.body, ResolutionResponse) and {v.index for v in msg.body.values} == {1, 100}


def test_resolution_with_non_public_values_in_a_session_is_encrypted(server: Server) -> None:
    session = authenticated_session(server)
    request = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/user", (), ()), OpFlag.REC | OpFlag.CA)
    raw = server.answer(session.seal(request, encrypt=False))
    assert decode_envelope(raw).encrypted  # HS_SECKEY without public read: encrypted from 2.8 on
    msg = decode_answer(session.open(raw))
    assert isinstance(msg.body, ResolutionResponse) and msg.body.values[0].type == b"HS_SECKEY"


def _zero_padding_byte(data: bytes, padding: int) -> bytes:
    """Flip the block before the last so that the last plaintext byte decrypts to 0: never valid PKCS#5
    padding (zeroing the last block instead gives valid padding about once in 256 runs)."""
    damaged = bytearray(data)
    damaged[-17] ^= padding
    return bytes(damaged)


@pytest.mark.parametrize(("mutate", "code", "text"), [
    (lambda data, _pad: data[:-1], ResponseCode.SESSION_FAILED, "Exception decrypting request with session key"),
    (_zero_padding_byte, ResponseCode.SESSION_FAILED, "Exception decrypting request with session key"),
    (lambda data, _pad: data[:8], ResponseCode.SESSION_FAILED, "Exception decrypting request with session key"),
])
def test_bad_ciphertext_is_an_early_501(server: Server, mutate: Any, code: int, text: str) -> None:
    session = authenticated_session(server)
    plain_length = len(session.seal(create_request(b"TEST/bad-cipher"), encrypt=False)) - ENVELOPE_SIZE
    request = session.seal(create_request(b"TEST/bad-cipher"), encrypt=True)
    env = decode_envelope(request)
    data = mutate(request[ENVELOPE_SIZE:], 16 - plain_length % 16)
    env.message_length = len(data)
    msg = decode_answer(server.answer(encode_envelope(env) + data))
    assert msg.header.response_code == code and error_text(msg).startswith(text)
    assert not server.state.store.exists(b"TEST/BAD-CIPHER")
    still_serves(server)


@pytest.mark.parametrize(("session_id", "code", "text"), [
    (0, ResponseCode.SESSION_FAILED, "Invalid session id. Unable to decrypt request message."),
    (99_999, ResponseCode.SESSION_TIMEOUT,
     "Session information not available or time out. Unable to decrypt request message."),
])
def test_encrypted_request_without_live_session(server: Server, session_id: int, code: int, text: str) -> None:
    session = open_session(server)
    request = session.seal(create_request(b"TEST/enc-lost"), encrypt=True)
    msg = decode_answer(server.answer(request[:4] + session_id.to_bytes(4, "big") + request[8:]))
    assert msg.header.response_code == code and error_text(msg) == text
    still_serves(server)


# --- SESSION_TERMINATE (401) and SESSION_EXCHANGEKEY (402) ------------------------------------------


def terminate_request(session: ClientSession) -> bytes:
    return session.seal(build_request(OpCode.SESSION_TERMINATE, SessionTerminateRequest(b"/"), ADMIN_FLAGS))


def test_terminate_removes_the_session(server: Server) -> None:
    session = authenticated_session(server)
    assert decode_answer(server.answer(terminate_request(session))).header.response_code == ResponseCode.SUCCESS
    assert server.state.sessions.get(session.session_id, server.clock()) is None
    after = decode_answer(server.answer(session.seal(create_request(b"TEST/after-terminate"))))
    assert after.header.response_code == ResponseCode.SESSION_TIMEOUT


def test_terminate_with_wrong_mac_keeps_the_session(server: Server) -> None:
    session = authenticated_session(server)
    msg = decode_answer(server.answer(terminate_request(replace(session, key=bytes(32)))))
    assert msg.header.response_code == ResponseCode.INVALID_SESSION_KEY and error_text(msg) == "Invalid session key."
    assert server.state.sessions.get(session.session_id, server.clock()) is not None


def test_terminate_without_session_is_500(server: Server) -> None:
    request = build_request(OpCode.SESSION_TERMINATE, SessionTerminateRequest(b"/"), ADMIN_FLAGS)
    msg = decode_answer(server.answer(request))
    assert msg.header.response_code == ResponseCode.SESSION_TIMEOUT and error_text(msg) == "Can not get session info."


def test_exchange_key_is_refused(server: Server) -> None:
    session = open_session(server)
    request = build_request(OpCode.SESSION_EXCHANGEKEY, SessionExchangeKeyRequest(b"\x01\x02"), ADMIN_FLAGS)
    in_session = decode_answer(server.answer(session.join(request)))
    assert in_session.header.response_code == ResponseCode.SESSION_FAILED
    assert error_text(in_session) == "Invalid session id. Session failed."
    lost = request[:4] + (session.session_id + 500).to_bytes(4, "big") + request[8:]
    assert decode_answer(server.answer(lost)).header.response_code == ResponseCode.SESSION_TIMEOUT


# --- Java's session vectors through the server ------------------------------------------------------


def session_vectors() -> dict[str, Any]:
    if not VECTORS.is_file():
        pytest.skip(f"Java test vectors not available at {VECTORS}")
    return json.loads(VECTORS.read_text(encoding="utf-8"))


_ALGS = {"AES": ALG_AES, "DES": ALG_DES, "DESede": ALG_DESEDE}


@pytest.mark.parametrize("name", ["AES", "AES legacy", "DES", "DES legacy", "DESede", "DESede legacy"])
def test_java_encrypted_request_is_decrypted_verified_and_answered(server: Server, name: str) -> None:
    vectors = session_vectors()
    entry = next(e for e in vectors["encryption"] if e["name"] == name)
    mac_entry = next(e for e in vectors["hs_mac"] if e["message_version"] == "2.11")
    key = bytes.fromhex(vectors["inputs"]["session_key_hex"])
    version = tuple(int(p) for p in entry["session_version"].split("."))
    env = decode_envelope(bytes.fromhex(mac_entry["envelope_hex"]))
    session = Session(session_id=env.session_id, key=key, algorithm=_ALGS[name.split()[0]], identity_handle=b"",
                      identity_index=-1, mode=KEY_EXCHANGE_DH, version=version,  # type: ignore[arg-type]
                      timeout_seconds=60, last_used=server.clock())
    server.state.sessions.create(session)
    server.state.store.create_handle(b"TEST/VEC-1", [HandleValue(1, b"URL", b"https://example.org/vec")],
                                     overwrite=True)
    transmitted = bytes.fromhex(entry["transmitted_hex"])
    env.encrypted, env.message_length = True, len(transmitted)
    raw = server.answer(encode_envelope(env) + transmitted)
    answer_env = decode_envelope(raw)
    assert answer_env.session_id == env.session_id and answer_env.request_id == env.request_id
    msg = decode_answer(raw)
    assert msg.header.response_code == ResponseCode.SUCCESS  # PO set: the public URL, no challenge
    assert isinstance(msg.body, ResolutionResponse) and [v.data for v in msg.body.values] == [b"https://example.org/vec"]
    assert msg.credential is not None and msg.credential.type == HS_MAC  # CT in a session: the session key
    assert verify_mac(key, msg.credential, msg.header_body, answer_env.version, answer_env.suggested,
                      answer_env.session_id, answer_env.request_id)
    plaintext = decrypt_message(session.algorithm, key, transmitted, version)  # type: ignore[arg-type]
    assert plaintext == bytes.fromhex(entry["plaintext_hex"])
    assert encrypt_message(session.algorithm, key, plaintext, version,  # type: ignore[arg-type]
                           None if "legacy" in name else bytes.fromhex(entry["iv_hex"])) == transmitted


# --- Java's captured SESSION_SETUP requests, answered by our server ----------------------------------

CAPTURES = VECTORS.parents[1] / "captures" / "messages.jsonl"


def captured_setups() -> list[tuple[bytes, bytes]]:
    """(Java's SESSION_SETUP request, the Java server's answer) per captured scenario."""
    if not CAPTURES.is_file():
        pytest.skip(f"Java captures not available at {CAPTURES}")
    records = [json.loads(line) for line in CAPTURES.read_text(encoding="utf-8").splitlines()]
    setups = [r for r in records if isinstance(r["message"], dict) and r["message"].get("opCode") == 400]
    requests = {r["scenario"]: bytes.fromhex(r["message_hex"]) for r in setups if r["dir"] == "c2s"}
    answers = {r["scenario"]: bytes.fromhex(r["message_hex"]) for r in setups if r["dir"] == "s2c"}
    assert len(requests) == 3 and requests.keys() == answers.keys()
    return [(requests[s], answers[s]) for s in sorted(requests)]


def test_captured_java_setup_requests_get_answers_shaped_like_javas(server: Server) -> None:
    for request, java_raw in captured_setups():
        raw = server.answer(request)
        ours, java = decode_answer(raw), decode_answer(java_raw)
        env, java_env = decode_envelope(raw), decode_envelope(java_raw)
        assert (env.version, env.suggested, env.request_id) == (java_env.version, java_env.suggested,
                                                               java_env.request_id)
        assert (ours.header.opcode, ours.header.response_code, ours.header.flags) == \
            (java.header.opcode, java.header.response_code, java.header.flags)
        assert ours.request_digest == java.request_digest  # both digest Java's exact request bytes
        ours_body, java_body = ours.body, java.body
        assert isinstance(ours_body, SessionSetupResponse) and isinstance(java_body, SessionSetupResponse)
        assert ours_body.mode == java_body.mode == KEY_EXCHANGE_DH
        assert ours_body.data[:4] == java_body.data[:4] == ALG_AES.to_bytes(4, "big")
        ours_key, java_key = decode_public_key(ours_body.data[4:]), decode_public_key(java_body.data[4:])
        assert isinstance(ours_key, DHPublicKeyData) and isinstance(java_key, DHPublicKeyData)
        assert (ours_key.p, ours_key.g) == (java_key.p, java_key.g) == (OAKLEY_GROUP_2_P, OAKLEY_GROUP_2_G)
        cred = ours.credential
        assert cred is not None and java.credential is not None
        assert (cred.type, cred.digest_alg, cred.signer_index) == (java.credential.type, java.credential.digest_alg,
                                                                    java.credential.signer_index)
        prefix = signed_prefix(env.version, env.suggested, env.session_id, env.request_id, cred.signer_index)
        assert keys.verify(server.public_key, cred.signature, prefix + ours.header_body, cred.digest_alg)
        assert server.state.sessions.get(env.session_id, server.clock()) is not None


@pytest.mark.parametrize(("config_name", "alg"), [("des", ALG_DES), ("desede", ALG_DESEDE)])
def test_configured_cipher_is_used_for_keys_and_encryption(server: Server, config_name: str, alg: int) -> None:
    current = server.state.settings
    server.state.settings = replace(current, server=replace(current.server, encryption_alg=config_name))
    session = open_session(server, encrypt_all=True)
    assert session.algorithm == alg and len(session.key) == {ALG_DES: 8, ALG_DESEDE: 24}[alg]
    challenge = server.answer(session.seal(create_request(f"TEST/{config_name}-{uuid.uuid4().hex}".encode(),
                                                          flags=ADMIN_FLAGS | OpFlag.ENC)))
    assert decode_envelope(challenge).encrypted
    assert decode_answer(answer_challenge(server, session, challenge)).header.response_code == ResponseCode.SUCCESS


def test_require_sessions_is_satisfied_by_a_session(server: Server) -> None:
    current = server.state.settings
    server.state.settings = replace(current, server=replace(current.server, require_sessions=True))
    plain = fresh_handle("plain")
    challenge = server.answer(create_request(plain))
    no_session = ClientSession(decode_envelope(challenge).session_id, b"", ALG_AES, (2, 11))
    refused = decode_answer(answer_challenge(server, no_session, challenge))
    assert refused.header.response_code == ResponseCode.INVALID_CREDENTIAL
    assert error_text(refused) == "Sessions are required for administration on this server"
    assert not server.state.store.exists(plain.upper())
    session = authenticated_session(server)
    in_session = fresh_handle("in-session")
    assert server.send(session.seal(create_request(in_session))).response_code == ResponseCode.SUCCESS


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600))
def test_any_ciphertext_in_a_live_session_is_answered_and_changes_nothing(server: Server, data: bytes) -> None:
    session_id = open_session(server).session_id
    before = server.state.store.count_handles()
    env = decode_envelope(build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello", (), ())))
    env.session_id, env.encrypted, env.message_length = session_id, True, len(data)
    outcome = server.send(encode_envelope(env) + data)
    assert len(outcome.messages) == 1 and outcome.response_code != ResponseCode.SUCCESS
    decode_answer(outcome.messages[0])
    stored = server.state.sessions.get(session_id, server.clock())
    assert stored is not None and not stored.authenticated
    assert server.state.store.count_handles() == before

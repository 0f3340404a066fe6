"""Sessions against a real server process: the Java-style flow through the project's client.

SESSION_SETUP (400, DH) over UDP, admin operations over TCP with HS_MACs, the one challenge inside the
session, encrypted requests and values, SESSION_TERMINATE; and the bad inputs over real sockets (wrong MAC,
replayed counter, unknown session, bad ciphertext, DH value out of range), each followed by a check that
nothing changed and the server still answers.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.auth.secret_answers import make_secret_answer
from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer
from hdlserver.client.session import (
    OAKLEY_GROUP_2_G,
    OAKLEY_GROUP_2_P,
    ClientSession,
    DHSetup,
    open_dh_session,
)
from hdlserver.client.transport import read_tcp_message, udp_exchange
from hdlserver.config.siteinfo import load_site_info
from hdlserver.wire.bodies import (
    KEY_EXCHANGE_DH,
    ChallengeAnswerRequest,
    ChallengeBody,
    CreateHandleRequest,
    ErrorBody,
    ResolutionRequest,
    ResolutionResponse,
    SessionSetupRequest,
    SessionTerminateRequest,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope, encode_envelope
from hdlserver.wire.message import Message
from hdlserver.wire.pubkey import DHPublicKeyData, encode_public_key
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")
FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO
ADMIN_VALUE = HandleValue(100, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("sessions") / "srv"
    port = setup_server_dir(directory)
    proc = start_server(directory, port)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def server_key(server: ServerProcess) -> keys.PublicKey:
    return keys.public_key_from_bytes(load_site_info(server.directory).servers[0].public_key)


def fresh(name: str) -> str:
    return f"TEST/{name}-{uuid.uuid4().hex[:12]}"


def resolve(server: ServerProcess, handle: str) -> dict[int, bytes]:
    return {v.index: v.data for v in Resolver([server.address], udp=False).resolve(handle).values}


def exists(server: ServerProcess, handle: str) -> bool:
    try:
        resolve(server, handle)
    except HandleResponseError as exc:
        assert exc.response_code == ResponseCode.HANDLE_NOT_FOUND
        return False
    return True


class Connection:
    """One TCP connection carrying raw (already sealed) requests; answers opened with the session."""

    def __init__(self, server: ServerProcess, session: ClientSession) -> None:
        self.sock = socket.create_connection(server.address, timeout=10)
        self.session = session

    def ask(self, request: bytes) -> Message:
        self.sock.sendall(request)
        return decode_answer(self.session.open(read_tcp_message(self.sock)))

    def ask_raw(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        return read_tcp_message(self.sock)

    def close(self) -> None:
        self.sock.close()


def create(handle: str, flags: int = FLAGS, extra: tuple[HandleValue, ...] = ()) -> bytes:
    values = (ADMIN_VALUE, HandleValue(1, b"URL", b"https://example.org/"), *extra)
    return build_request(OpCode.CREATE_HANDLE, CreateHandleRequest(handle.encode(), values), flags)


def answer(session: ClientSession, challenge_raw: bytes, challenge: Message) -> bytes:
    assert isinstance(challenge.body, ChallengeBody) and challenge.request_digest is not None
    env = decode_envelope(challenge_raw)
    signed = make_secret_answer(ADMIN.secret, challenge.body.nonce, challenge.request_digest[1], env.version,
                                env.suggested)
    body = ChallengeAnswerRequest(ADMIN.auth_type, ADMIN.handle, ADMIN.index, signed)
    return session.join(build_request(OpCode.CHALLENGE_RESPONSE, body, FLAGS, version=env.version))


def authenticated(server: ServerProcess, server_key: keys.PublicKey) -> tuple[ClientSession, Connection]:
    session = open_dh_session(server.address, ADMIN.handle, ADMIN.index, server_key=server_key)
    conn = Connection(server, session)
    conn.sock.sendall(session.seal(create(fresh("auth"))))
    raw = session.open(read_tcp_message(conn.sock))
    challenge = decode_answer(raw)
    assert challenge.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert conn.ask(answer(session, raw, challenge)).header.response_code == ResponseCode.SUCCESS
    return session, conn


def error_text(msg: Message) -> str:
    assert isinstance(msg.body, ErrorBody)
    return msg.body.message.decode()


# --- The Java-style flow ---------------------------------------------------------------------------


def test_setup_over_udp_is_signed_and_spans_two_datagrams(server: ServerProcess, server_key: keys.PublicKey) -> None:
    setup = DHSetup.start(ADMIN.handle, ADMIN.index)
    raw = udp_exchange(server.address, setup.request)
    assert len(raw) > 512  # a 2048-bit signature: two datagrams, as with Java
    session = setup.finish(raw, server_key)
    assert session.session_id > 0 and len(session.key) == 32


def test_one_challenge_then_macs_only_over_tcp(server: ServerProcess, server_key: keys.PublicKey) -> None:
    session, conn = authenticated(server, server_key)
    try:
        handles = [fresh("mac") for _ in range(3)]
        for handle in handles:  # no more challenges: each request is authenticated by its MAC
            assert conn.ask(session.seal(create(handle))).header.response_code == ResponseCode.SUCCESS
        assert all(exists(server, h) for h in handles)
        assert session.counter == 4
    finally:
        conn.close()
    # The session is not tied to the connection: Java opens one TCP connection per request.
    second = Connection(server, session)
    try:
        handle = fresh("new-connection")
        assert second.ask(session.seal(create(handle))).header.response_code == ResponseCode.SUCCESS
        assert exists(server, handle)
    finally:
        second.close()


def test_admin_client_session_runs_every_operation(server: ServerProcess, server_key: keys.PublicKey) -> None:
    handle = fresh("client")
    with AdminClient(server.address, ADMIN, session=True, server_key=server_key) as admin:
        admin.create_handle(handle, [ADMIN_VALUE, HandleValue(1, b"URL", b"https://example.org/a")])
        admin.add_values(handle, [HandleValue(2, b"EMAIL", b"a@example.org")])
        admin.modify_values(handle, [HandleValue(1, b"URL", b"https://example.org/b")])
        assert resolve(server, handle)[1] == b"https://example.org/b"
        admin.remove_values(handle, [2])
        assert 2 not in resolve(server, handle)
        assert handle.upper().encode() in admin.list_handles("0.NA/TEST")
        admin.delete_handle(handle)
        assert admin.session is not None and admin.session.counter >= 6
    assert not exists(server, handle)


def test_encrypted_session_stores_non_public_values_and_reads_them_back(server: ServerProcess,
                                                                        server_key: keys.PublicKey) -> None:
    handle = fresh("encrypted")
    secret_value = HandleValue(4, b"SECRET", b"admin-only value", permissions=PERM_ADMIN_READ | PERM_ADMIN_WRITE)
    with AdminClient(server.address, ADMIN, encrypt=True, server_key=server_key) as admin:
        admin.create_handle(handle, [ADMIN_VALUE, secret_value])
        session = admin.session
        assert session is not None and session.encrypt_all
        request = session.seal(build_request(OpCode.RESOLUTION, ResolutionRequest(handle.encode(), (), ()),
                                             OpFlag.REC | OpFlag.CA | OpFlag.ENC))
        assert decode_envelope(request).encrypted
        conn = Connection(server, session)
        try:
            raw = conn.ask_raw(request)
            assert decode_envelope(raw).encrypted
            msg = decode_answer(session.open(raw))
        finally:
            conn.close()
    assert isinstance(msg.body, ResolutionResponse)
    assert {v.index: v.data for v in msg.body.values}[4] == b"admin-only value"
    assert 4 not in resolve(server, handle)  # public resolution leaves it out


class RecordingAdminClient(AdminClient):
    """Remembers, for every request it sends, whether the envelope says it is encrypted."""

    sent_encrypted: list[bool]

    def _exchange(self, request: bytes, session: ClientSession | None = None) -> list[bytes]:
        self.sent_encrypted.append(decode_envelope(request).encrypted)
        return super()._exchange(request, session)


def test_session_requests_with_non_public_values_are_encrypted_as_java_does(server: ServerProcess,
                                                                           server_key: keys.PublicKey) -> None:
    handle = fresh("private-values")
    secret_value = HandleValue(4, b"SECRET", b"admin-only", permissions=PERM_ADMIN_READ | PERM_ADMIN_WRITE)
    with RecordingAdminClient(server.address, ADMIN, session=True, server_key=server_key) as admin:
        admin.sent_encrypted = []
        admin.create_handle(handle, [ADMIN_VALUE, HandleValue(1, b"URL", b"http://example.org/")])
        public_create = list(admin.sent_encrypted)
        admin.sent_encrypted = []
        admin.add_values(handle, [secret_value])
        private_add = list(admin.sent_encrypted)
        admin.sent_encrypted = []
        admin.modify_values(handle, [HandleValue(1, b"URL", b"http://example.org/changed")])
        public_modify = list(admin.sent_encrypted)
    assert public_create[0] is False  # the first request of the session (then the challenge answer)
    assert private_add == [True]
    assert public_modify == [False]
    values = resolve(server, handle)
    assert values[1] == b"http://example.org/changed" and 4 not in values  # stored; not public


def test_terminated_session_is_gone(server: ServerProcess, server_key: keys.PublicKey) -> None:
    admin = AdminClient(server.address, ADMIN, session=True, server_key=server_key)
    try:
        admin.create_handle(fresh("terminate"), [ADMIN_VALUE])
        session = admin.session
        assert session is not None
        admin.close_session()
        conn = Connection(server, session)
        try:
            msg = conn.ask(session.seal(create(fresh("after"))))
        finally:
            conn.close()
        assert msg.header.response_code == ResponseCode.SESSION_TIMEOUT
        admin.create_handle(fresh("reopened"), [ADMIN_VALUE])  # a new session is set up on demand
        assert admin.session is not None and admin.session.session_id != session.session_id
    finally:
        admin.close()


# --- Bad input over real sockets -------------------------------------------------------------------


def test_wrong_mac_replay_and_unknown_session_are_refused(server: ServerProcess, server_key: keys.PublicKey) -> None:
    session, conn = authenticated(server, server_key)
    thief = replace(session, key=bytes(32))
    lost = replace(session, session_id=session.session_id + 10_000)
    names = [fresh(n) for n in ("bad-mac", "no-mac", "replay", "unknown")]
    cases = [
        (thief.seal(create(names[0])), ResponseCode.INVALID_SESSION_KEY, "Session authentication failed."),
        (session.join(create(names[1])), ResponseCode.INVALID_CREDENTIAL, "Session request missing MAC code."),
        (session.seal(create(names[2]), counter=session.counter), ResponseCode.SESSION_MESSAGE_REJECTED,
         f"Duplicate session counter {session.counter} in session {session.session_id}"),
        (lost.seal(create(names[3])), ResponseCode.SESSION_TIMEOUT,
         "Invalid session id or session time out. Please try again."),
    ]
    try:
        for request, code, text in cases:
            msg = decode_answer(conn.ask_raw(request))
            assert msg.header.response_code == code and error_text(msg) == text
        assert not any(exists(server, name) for name in names)
        assert conn.ask(session.seal(create(fresh("still-works")))).header.response_code == ResponseCode.SUCCESS
    finally:
        conn.close()


def test_bad_ciphertext_gets_an_early_501_and_the_connection_stays_usable(server: ServerProcess,
                                                                          server_key: keys.PublicKey) -> None:
    session, conn = authenticated(server, server_key)
    try:
        request = session.seal(create(fresh("bad-padding")), encrypt=True)
        env = decode_envelope(request)
        broken = request[ENVELOPE_SIZE:-16] + bytes(16)
        env.message_length = len(broken)
        msg = decode_answer(conn.ask_raw(encode_envelope(env) + broken))
        assert msg.header.response_code == ResponseCode.SESSION_FAILED
        assert error_text(msg).startswith("Exception decrypting request with session key")
        assert conn.ask(session.seal(create(fresh("after-bad-padding")))).header.response_code == ResponseCode.SUCCESS
    finally:
        conn.close()


def test_dh_value_out_of_range_over_udp_is_501(server: ServerProcess) -> None:
    public = encode_public_key(DHPublicKeyData(y=1, p=OAKLEY_GROUP_2_P, g=OAKLEY_GROUP_2_G))
    body = SessionSetupRequest(KEY_EXCHANGE_DH, 86_400, ADMIN.handle, ADMIN.index, public_key=public)
    msg = decode_answer(udp_exchange(server.address, build_request(OpCode.SESSION_SETUP, body, FLAGS | OpFlag.CT)))
    assert msg.header.response_code == ResponseCode.SESSION_FAILED
    assert error_text(msg) == "Error encoding public session key"
    assert resolve(server, "TEST/hello")  # still serving


def test_admin_client_sets_up_a_new_session_when_the_server_forgot_it(server: ServerProcess,
                                                                     server_key: keys.PublicKey) -> None:
    with AdminClient(server.address, ADMIN, session=True, server_key=server_key) as admin:
        admin.create_handle(fresh("before"), [ADMIN_VALUE])
        old = admin.session
        assert old is not None
        conn = Connection(server, replace(old))  # another holder of the key ends the session behind its back
        try:
            terminate = build_request(OpCode.SESSION_TERMINATE, SessionTerminateRequest(b"/"), FLAGS)
            assert conn.ask(conn.session.seal(terminate, counter=old.counter + 100)).header.response_code == \
                ResponseCode.SUCCESS
        finally:
            conn.close()
        handle = fresh("after-forgotten")
        admin.create_handle(handle, [ADMIN_VALUE])  # RC 500, then one new session, as Java clients do
        assert admin.session is not None and admin.session.session_id != old.session_id
    assert exists(server, handle)

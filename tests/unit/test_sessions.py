"""Sessions (hdlserver.auth.sessions): the record, replay window, session table and SESSION_SETUP (auth.md 9)."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from hdlserver.auth.challenges import IdAllocator
from hdlserver.auth.session_crypto import (
    ALG_AES,
    ALG_DES,
    ALG_DESEDE,
    SessionError,
    dh_server_keypair,
    dh_shared_secret,
    session_key_from_dh,
)
from hdlserver.auth.sessions import (
    MSG_CIPHER_CLIENT_FAILED,
    MSG_CIPHER_HDL_FAILED,
    MSG_CIPHER_SERVER_UNSUPPORTED,
    MSG_DH_FAILED,
    MSG_UNKNOWN_MODE,
    REPLAY_WINDOW,
    InMemorySessionStore,
    ReplayError,
    Session,
    SessionStore,
    create_dh_session,
)
from hdlserver.wire.bodies import SessionSetupRequest
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.message import decode_message
from hdlserver.wire.pubkey import DHPublicKeyData, RSAPublicKeyData, decode_public_key, encode_public_key

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"

OAKLEY2_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)


def dh_vectors() -> dict[str, Any]:
    path = VECTORS / "sessions" / "session_vectors.json"
    if not path.is_file():
        pytest.skip(f"Java test vectors not available at {VECTORS}")
    return json.loads(path.read_text())["dh"]


class FixedBits:
    """A random source that returns one fixed private exponent (the vectors' x_server)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def getrandbits(self, k: int) -> int:
        assert self.value.bit_length() <= k
        return self.value


def session(session_id: int = 5, *, version: tuple[int, int] = (2, 11), timeout: float = 100.0,
            last_used: float = 0.0, handle: bytes = b"0.NA/TEST", index: int = 300,
            authenticated: bool = False) -> Session:
    return Session(session_id=session_id, key=bytes(32), algorithm=ALG_AES, identity_handle=handle,
                   identity_index=index, mode=4, version=version, timeout_seconds=timeout, last_used=last_used,
                   authenticated=authenticated)


def client_request(public: bytes, *, mode: int = 4, timeout: int = 86_400) -> SessionSetupRequest:
    return SessionSetupRequest(mode=mode, timeout=timeout, identity_handle=b"0.NA/TEST", identity_index=300,
                               public_key=public)


def setup(request: SessionSetupRequest, ids: IdAllocator | None = None, **kw: Any) -> tuple[Session, bytes]:
    args: dict[str, Any] = {"now": 1000.0, "configured_alg": ALG_AES, "max_session_time_s": 3600,
                            "response_version": (2, 11), "client_suggested": (2, 11)}
    args.update(kw)
    return create_dh_session(ids or IdAllocator(), request, **args)


# ---------------------------------------------------------------------------------------------------
# Session record


def test_anonymous_and_identity_matching() -> None:
    s = session()
    assert not s.anonymous
    assert s.identity_matches(b"0.NA/TEST", 300)
    assert not s.identity_matches(b"0.na/test", 300)  # byte-equal, no case folding
    assert not s.identity_matches(b"0.NA/TEST", 301)
    assert session(handle=b"").anonymous
    assert session(index=-1).anonymous
    assert not session(index=-1).identity_matches(b"0.NA/TEST", -1)  # anonymous never matches
    assert not session(handle=b"", index=0).identity_matches(b"", 0)


def test_server_counter_counts_from_one() -> None:
    s = session()
    assert [s.next_server_counter() for _ in range(3)] == [1, 2, 3]
    assert s.server_counter == 3


def test_replay_duplicates_are_rejected_with_rc_505() -> None:
    s = session(session_id=42)
    s.check_and_record_counter(1)
    s.check_and_record_counter(3)
    s.check_and_record_counter(2)  # out of order but new: fine
    with pytest.raises(ReplayError) as err:
        s.check_and_record_counter(3)
    assert err.value.response_code == ResponseCode.SESSION_MESSAGE_REJECTED == 505
    assert err.value.message == "Duplicate session counter 3 in session 42"
    assert isinstance(err.value, SessionError)


def test_replay_counter_zero_is_never_checked() -> None:
    s = session()
    for _ in range(3):
        s.check_and_record_counter(0)
    s.check_and_record_counter(1)


def test_replay_negative_counters_are_below_the_initial_floor() -> None:
    with pytest.raises(ReplayError):
        session().check_and_record_counter(-1)


def test_replay_unique_false_records_without_checking() -> None:
    s = session()
    s.check_and_record_counter(5)
    s.check_and_record_counter(5, unique=False)  # a challenge answer's counter: no check
    s.check_and_record_counter(6, unique=False)
    with pytest.raises(ReplayError):
        s.check_and_record_counter(6)  # but it was recorded


def test_replay_window_forgets_old_counters_but_refuses_them() -> None:
    s = session()
    for counter in range(1, REPLAY_WINDOW + 1):
        s.check_and_record_counter(counter)
    with pytest.raises(ReplayError):
        s.check_and_record_counter(1)  # still remembered
    s.check_and_record_counter(REPLAY_WINDOW + 1)  # overflows: 1 is forgotten and becomes the floor
    for old in (1, 2, -7):
        with pytest.raises(ReplayError):
            s.check_and_record_counter(old)
    s.check_and_record_counter(REPLAY_WINDOW + 5)
    s.check_and_record_counter(REPLAY_WINDOW + 3)
    with pytest.raises(ReplayError):
        s.check_and_record_counter(REPLAY_WINDOW + 5)


def test_replay_window_never_lets_a_forgotten_counter_back_in() -> None:
    """Java would move the floor to 1 here and accept 1000 again; we keep the highest forgotten counter."""
    s = session()
    s.check_and_record_counter(1000)
    for counter in range(1, REPLAY_WINDOW + 1):
        s.check_and_record_counter(counter)
    for replay in (1000, 500, 1):  # 1000 was forgotten; everything up to it is refused
        with pytest.raises(ReplayError):
            s.check_and_record_counter(replay)
    s.check_and_record_counter(1001)


@pytest.mark.parametrize("old_version", [(2, 4), (2, 0), (1, 5)])
def test_sessions_before_2_5_keep_no_window(old_version: tuple[int, int]) -> None:
    s = session(version=old_version)
    s.check_and_record_counter(3)
    s.check_and_record_counter(3)  # no replay defence before 2.5, as in Java


def test_session_pickles_with_its_window() -> None:
    s = session()
    s.check_and_record_counter(7)
    s.next_server_counter()
    copy = pickle.loads(pickle.dumps(s))
    assert copy == s
    assert copy.server_counter == 1
    with pytest.raises(ReplayError):
        copy.check_and_record_counter(7)
    assert copy.next_server_counter() == 2


# ---------------------------------------------------------------------------------------------------
# Session table


def test_store_is_a_session_store() -> None:
    store: SessionStore = InMemorySessionStore()
    assert len(store) == 0


def test_get_refreshes_idle_timeout() -> None:
    store = InMemorySessionStore()
    store.create(session(1, timeout=10.0, last_used=0.0))
    assert store.get(1, 10.0) is not None  # exactly at the timeout: still live (Java: strictly older)
    s = store.get(1, 19.0)  # 9 s after the last use
    assert s is not None and s.last_used == 19.0
    assert store.get(1, 29.0) is not None
    assert store.get(1, 39.5) is None  # 10.5 s idle
    assert len(store) == 0  # expired sessions are removed on lookup
    assert store.get(1, 29.0) is None


def test_get_unknown_session() -> None:
    assert InMemorySessionStore().get(99, 0.0) is None


def test_expire_sweeps_only_idle_sessions() -> None:
    store = InMemorySessionStore()
    store.create(session(1, timeout=10.0, last_used=0.0))
    store.create(session(2, timeout=100.0, last_used=0.0))
    store.create(session(3, timeout=10.0, last_used=0.0))
    assert store.get(3, 8.0) is not None  # refreshed
    assert store.expire(15.0) == 1
    assert len(store) == 2
    assert store.get(2, 15.0) is not None and store.get(3, 15.0) is not None
    assert store.expire(15.0) == 0


def test_remove() -> None:
    store = InMemorySessionStore()
    store.create(session(1))
    assert store.remove(1)
    assert not store.remove(1)
    assert store.get(1, 0.0) is None


def test_update_writes_back_only_live_sessions() -> None:
    store = InMemorySessionStore()
    store.create(session(1))
    changed = pickle.loads(pickle.dumps(store.get(1, 1.0)))  # what a cross-process store would hand out
    changed.authenticated = True
    store.update(changed)
    got = store.get(1, 2.0)
    assert got is not None and got.authenticated
    store.remove(1)
    store.update(changed)
    assert len(store) == 0


def test_create_replaces_same_id() -> None:
    store = InMemorySessionStore(max_sessions=2)
    store.create(session(1))
    store.create(session(2))
    store.create(session(1, handle=b"0.NA/OTHER"))
    assert len(store) == 2
    got = store.get(1, 0.0)
    assert got is not None and got.identity_handle == b"0.NA/OTHER"


def test_full_store_evicts_least_recently_used_unauthenticated_session() -> None:
    store = InMemorySessionStore(max_sessions=3)
    store.create(session(1, authenticated=True))
    store.create(session(2))
    store.create(session(3))
    assert store.get(2, 1.0) is not None  # 2 is now more recently used than 3
    store.create(session(4, last_used=2.0))
    assert len(store) == 3
    assert store.get(3, 2.0) is None  # the LRU unauthenticated session went
    assert store.get(1, 2.0) is not None  # the authenticated one (older still) stayed
    assert store.get(2, 2.0) is not None and store.get(4, 2.0) is not None


def test_full_store_evicts_expired_authenticated_sessions_first() -> None:
    store = InMemorySessionStore(max_sessions=2)
    store.create(session(1, authenticated=True, timeout=5.0))
    store.create(session(2, authenticated=True, timeout=500.0))
    store.create(session(3, last_used=10.0, authenticated=True))
    assert store.get(1, 10.0) is None
    assert store.get(2, 10.0) is not None and store.get(3, 10.0) is not None


def test_full_store_of_live_authenticated_sessions_evicts_the_least_recently_used() -> None:
    store = InMemorySessionStore(max_sessions=2)
    store.create(session(1, authenticated=True))
    store.create(session(2, authenticated=True))
    assert store.get(1, 1.0) is not None
    store.create(session(3, last_used=1.0))
    assert store.get(2, 1.0) is None
    assert store.get(1, 1.0) is not None and store.get(3, 1.0) is not None


def test_store_bound_holds_under_a_flood() -> None:
    store = InMemorySessionStore(max_sessions=50)
    store.create(session(1, authenticated=True, timeout=86_400.0))
    for sid in range(2, 1000):
        store.create(session(sid, last_used=float(sid)))
        assert len(store) <= 50
    assert store.get(1, 1000.0) is not None  # the admin's session survived the anonymous flood


def test_store_rejects_a_zero_bound() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        InMemorySessionStore(max_sessions=0)


# ---------------------------------------------------------------------------------------------------
# SESSION_SETUP (auth.md 9.2, 9.3)


def vector_request() -> SessionSetupRequest:
    dh = dh_vectors()
    msg = decode_message(bytes.fromhex(dh["session_setup_request_message_hex"]), (2, 11))
    assert msg.header.opcode == OpCode.SESSION_SETUP
    assert isinstance(msg.body, SessionSetupRequest)
    return msg.body


def test_setup_from_java_request_matches_java_response_data_and_key() -> None:
    dh = dh_vectors()
    request = vector_request()
    assert (request.mode, request.timeout, request.identity_handle, request.identity_index) == (
        4, 86_400, b"0.NA/TEST", 300)
    ids = IdAllocator(start=17)
    s, data = setup(request, ids, rng=FixedBits(int(dh["x_server_hex"], 16)), now=5.0)
    assert data.hex() == dh["session_setup_response_data_hex_aes"]
    assert s.key == bytes.fromhex(dh["getKeyFromDH_alg3_hex"])[4:]
    assert s.session_id == 17 and ids.next_id() == 18  # ids shared with challenges
    assert s.algorithm == ALG_AES and s.mode == 4
    assert s.identity_handle == b"0.NA/TEST" and s.identity_index == 300
    assert s.version == (2, 11)
    assert s.timeout_seconds == 86_400 and s.last_used == 5.0
    assert not s.authenticated and not s.encrypt_all and s.server_counter == 0


@pytest.mark.parametrize("alg", [ALG_DES, ALG_DESEDE, ALG_AES])
def test_setup_uses_the_configured_algorithm(alg: int) -> None:
    dh = dh_vectors()
    s, data = setup(vector_request(), configured_alg=alg, rng=FixedBits(int(dh["x_server_hex"], 16)))
    assert data[:4] == alg.to_bytes(4, "big")
    assert s.algorithm == alg
    assert s.key == bytes.fromhex(dh[f"getKeyFromDH_alg{alg}_hex"])[4:]


@pytest.mark.parametrize("suggested", [(2, 3), (2, 1), (2, 0)])
def test_old_clients_get_des_and_a_bare_public_key(suggested: tuple[int, int]) -> None:
    dh = dh_vectors()
    s, data = setup(vector_request(), client_suggested=suggested, response_version=suggested,
                    rng=FixedBits(int(dh["x_server_hex"], 16)))
    assert data.hex() == dh["server_DH_PUB_KEY_hex"]
    assert s.algorithm == ALG_DES
    assert s.key == bytes.fromhex(dh["getDESKeyFromDH_legacy_hex"])
    assert s.version == suggested


def test_client_derives_the_same_key_from_the_response() -> None:
    rng = random.Random(7)
    client_x, client_y = dh_server_keypair(OAKLEY2_P, 2, rng)
    request = client_request(encode_public_key(DHPublicKeyData(y=client_y, p=OAKLEY2_P, g=2)))
    s, data = setup(request, rng=rng)
    assert int.from_bytes(data[:4], "big") == ALG_AES
    server = decode_public_key(data[4:])
    assert isinstance(server, DHPublicKeyData) and (server.p, server.g) == (OAKLEY2_P, 2)
    z = dh_shared_secret(server.y, client_x, OAKLEY2_P)
    assert session_key_from_dh(z, ALG_AES) == s.key


@pytest.mark.parametrize("timeout", [0, -5])
def test_non_positive_timeout_uses_max_session_time(timeout: int) -> None:
    rng = random.Random(3)
    _, client_y = dh_server_keypair(OAKLEY2_P, 2, rng)
    request = client_request(encode_public_key(DHPublicKeyData(y=client_y, p=OAKLEY2_P, g=2)), timeout=timeout)
    s, _ = setup(request, max_session_time_s=7200, rng=rng)
    assert s.timeout_seconds == 7200


def test_requested_timeout_is_not_capped() -> None:
    rng = random.Random(4)
    _, client_y = dh_server_keypair(OAKLEY2_P, 2, rng)
    request = client_request(encode_public_key(DHPublicKeyData(y=client_y, p=OAKLEY2_P, g=2)), timeout=10**6)
    s, _ = setup(request, max_session_time_s=60, rng=rng)
    assert s.timeout_seconds == 10**6


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (1, MSG_CIPHER_CLIENT_FAILED),
        (2, MSG_CIPHER_SERVER_UNSUPPORTED),
        (3, MSG_CIPHER_HDL_FAILED),
        (0, MSG_UNKNOWN_MODE),
        (5, MSG_UNKNOWN_MODE),
        (-1, MSG_UNKNOWN_MODE),
    ],
)
def test_other_modes_fail_with_java_messages(mode: int, message: str) -> None:
    ids = IdAllocator()
    with pytest.raises(SessionError) as err:
        setup(client_request(b"", mode=mode), ids)
    assert err.value.response_code == ResponseCode.SESSION_FAILED
    assert err.value.message == message
    assert ids.next_id() == 1  # no id consumed by a failed setup


def test_java_messages_are_exact() -> None:
    assert MSG_CIPHER_CLIENT_FAILED == "Error performing client cipher key exchange."
    assert MSG_CIPHER_SERVER_UNSUPPORTED == "KEY_EXCHANGE_CIPHER_SERVER not supported"
    assert MSG_CIPHER_HDL_FAILED == "Error performing hdl cipher key exchange."
    assert MSG_UNKNOWN_MODE == "Unrecognized key exchange mode"


def dh_key(y: int, p: int = OAKLEY2_P, g: int = 2) -> bytes:
    return encode_public_key(DHPublicKeyData(y=y, p=p, g=g))


@pytest.mark.parametrize(
    ("public", "cause"),
    [
        (b"", "DecodeError"),
        (b"\x00\x00\x00\x0aDH_PUB_KEY\x00", "DecodeError"),
        (encode_public_key(RSAPublicKeyData(e=65537, n=OAKLEY2_P)), "SessionError"),
        (dh_key(0), "SessionError"),
        (dh_key(1), "SessionError"),
        (dh_key(OAKLEY2_P - 1), "SessionError"),
        (dh_key(OAKLEY2_P), "SessionError"),
        (dh_key(OAKLEY2_P + 2), "SessionError"),
        (dh_key(5, p=23, g=5), "SessionError"),
        (dh_key(5, p=OAKLEY2_P - 1), "SessionError"),
        (dh_key(5, g=1), "SessionError"),
    ],
)
def test_bad_client_keys_fail_with_rc_501(public: bytes, cause: str) -> None:
    ids = IdAllocator()
    with pytest.raises(SessionError) as err:
        setup(client_request(public), ids)
    assert err.value.response_code == 501
    assert err.value.message == MSG_DH_FAILED
    assert type(err.value.__cause__).__name__ == cause  # the detail, for the log
    assert ids.next_id() == 1

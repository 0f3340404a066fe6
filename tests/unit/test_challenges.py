"""Pending challenges and the id counter (hdlserver.auth.challenges, auth.md 3)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from hdlserver.auth import challenges
from hdlserver.auth.challenges import (
    MAX_ID,
    ChallengeStore,
    IdAllocator,
    InMemoryChallengeStore,
    PendingChallenge,
    find_retry,
    new_challenge,
)
from hdlserver.wire.codes import DigestAlgorithm
from hdlserver.wire.envelope import Envelope

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
HEADER_BODY = b"\x00\x00\x00\x65header-and-body"
MESSAGE = HEADER_BODY + b"credential"


def envelope(request_id: int = 77, session_id: int = 0) -> Envelope:
    return Envelope(2, 11, 2, 11, session_id=session_id, request_id=request_id, message_length=len(MESSAGE))


def challenge(challenge_id: int, created: float = 0.0, request_id: int = 77) -> PendingChallenge:
    return PendingChallenge(
        challenge_id=challenge_id,
        created=created,
        nonce=bytes(16),
        digest_alg=DigestAlgorithm.SHA256,
        digest=hashlib.sha256(HEADER_BODY).digest(),
        request_envelope=envelope(request_id),
        request_message=MESSAGE,
        request_session_id=0,
    )


# ---------------------------------------------------------------------------------------------------------
# IdAllocator


def test_ids_start_at_one_and_count_up() -> None:
    ids = IdAllocator()
    assert [ids.next_id() for _ in range(5)] == [1, 2, 3, 4, 5]


def test_ids_wrap_before_2_31_and_never_reach_zero() -> None:
    ids = IdAllocator(start=MAX_ID - 1)
    assert [ids.next_id() for _ in range(4)] == [MAX_ID - 1, MAX_ID, 1, 2]
    assert MAX_ID == 2**31 - 1


@pytest.mark.parametrize("start", [0, -1, 2**31])
def test_id_start_is_checked(start: int) -> None:
    with pytest.raises(ValueError, match="id counter start"):
        IdAllocator(start=start)


def test_ids_are_unique_under_threads() -> None:
    ids = IdAllocator()
    per_thread = 2_000
    results: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(len(results))

    def worker(out: list[int]) -> None:
        barrier.wait()
        out.extend(ids.next_id() for _ in range(per_thread))

    threads = [threading.Thread(target=worker, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for out in results for i in out]
    assert len(set(every)) == len(every) == 8 * per_thread
    assert set(every) == set(range(1, 8 * per_thread + 1))


# ---------------------------------------------------------------------------------------------------------
# new_challenge


def test_new_challenge_takes_a_fresh_id_nonce_and_sha256_digest() -> None:
    ids = IdAllocator()
    env = envelope(request_id=42, session_id=0)
    first = new_challenge(ids, now=100.0, request_envelope=env, request_message=MESSAGE, header_body=HEADER_BODY,
                          response_version=(2, 11))
    second = new_challenge(ids, now=101.0, request_envelope=env, request_message=MESSAGE, header_body=HEADER_BODY,
                           response_version=(2, 11))
    assert (first.challenge_id, second.challenge_id) == (1, 2)
    assert first.created == 100.0
    assert len(first.nonce) == 16 and first.nonce != second.nonce
    assert first.digest_alg == DigestAlgorithm.SHA256
    assert first.digest == hashlib.sha256(HEADER_BODY).digest()
    assert first.request_message == MESSAGE
    assert first.request_id == 42 and first.request_session_id == 0
    assert first.request_envelope == env and first.request_envelope is not env  # a private copy


@pytest.mark.parametrize(
    ("response_version", "alg", "hash_name"),
    [((2, 7), DigestAlgorithm.SHA256, "sha256"), ((2, 6), DigestAlgorithm.SHA1, "sha1"),
     ((2, 1), DigestAlgorithm.SHA1, "sha1"), ((2, 0), DigestAlgorithm.OLD_FORMAT, "md5")],
)
def test_digest_follows_the_response_version(response_version: tuple[int, int], alg: int, hash_name: str) -> None:
    ch = new_challenge(IdAllocator(), now=0, request_envelope=envelope(), request_message=MESSAGE,
                       header_body=HEADER_BODY, response_version=response_version, nonce=b"n" * 16)
    assert (ch.digest_alg, ch.digest) == (alg, hashlib.new(hash_name, HEADER_BODY).digest())
    assert ch.nonce == b"n" * 16


def test_new_challenge_reuses_the_session_id() -> None:
    ids = IdAllocator()
    env = envelope(session_id=9)
    ch = new_challenge(ids, now=0, request_envelope=env, request_message=MESSAGE, header_body=HEADER_BODY,
                       response_version=(2, 11), reuse_id=9)
    assert ch.challenge_id == 9 and ch.request_session_id == 9
    assert ids.next_id() == 1  # the counter was not used
    with pytest.raises(ValueError, match="challenge id 0"):
        new_challenge(ids, now=0, request_envelope=env, request_message=MESSAGE, header_body=HEADER_BODY,
                      response_version=(2, 11), reuse_id=0)


def test_java_request_digest_vector() -> None:
    path = VECTORS / "auth" / "auth_vectors.json"
    if not path.is_file():
        pytest.skip(f"Java test vectors not available at {VECTORS}")
    entry = json.loads(path.read_text())["client_answers_by_challenge_version"][0]
    header_body = bytes.fromhex(entry["request_header_body_hex"])
    ch = new_challenge(IdAllocator(), now=0, request_envelope=envelope(), request_message=header_body,
                       header_body=header_body, response_version=(2, 11),
                       nonce=bytes.fromhex(entry["nonce_hex"]))
    assert ch.digest.hex() == entry["request_digest_sha256_hex"]


# ---------------------------------------------------------------------------------------------------------
# InMemoryChallengeStore


def test_get_and_expiry_with_an_injected_clock() -> None:
    store: ChallengeStore = InMemoryChallengeStore(max_age_seconds=20)
    store.put(challenge(1, created=1000.0))
    store.put(challenge(2, created=1010.0))
    assert store.get(1, now=1020.0) == challenge(1, created=1000.0)  # exactly max_age: still live
    assert store.get(1, now=1020.001) is None  # older than max_age: gone
    assert len(store) == 1
    assert store.get(2, now=1020.001) is not None
    assert store.get(3, now=1000.0) is None


def test_expire_removes_only_old_entries() -> None:
    store = InMemoryChallengeStore(max_age_seconds=60)
    for cid, created in ((1, 0.0), (2, 30.0), (3, 50.0), (4, 10.0)):
        store.put(challenge(cid, created=created))
    assert store.expire(now=75.0) == 2  # 1 and 4
    assert len(store) == 2
    assert store.get(2, now=75.0) is not None and store.get(3, now=75.0) is not None
    assert store.expire(now=75.0) == 0
    assert store.expire(now=1000.0) == 2 and len(store) == 0


def test_answer_does_not_remove_the_entry() -> None:
    store = InMemoryChallengeStore(max_age_seconds=60)
    store.put(challenge(5))
    assert store.get(5, now=1.0) is not None
    assert store.get(5, now=2.0) is not None  # a second answer re-runs the request too


def test_same_id_replaces() -> None:
    store = InMemoryChallengeStore(max_age_seconds=60)
    store.put(challenge(5, request_id=1))
    store.put(challenge(5, request_id=2, created=3.0))
    assert len(store) == 1
    got = store.get(5, now=3.0)
    assert got is not None and got.request_id == 2


def test_store_is_bounded_dropping_the_oldest() -> None:
    store = InMemoryChallengeStore(max_age_seconds=60, max_entries=3)
    for cid in (1, 2, 3):
        store.put(challenge(cid))
    store.put(challenge(1))  # replacing makes id 1 the newest
    store.put(challenge(4))
    assert len(store) == 3
    assert store.get(2, now=0) is None
    assert all(store.get(cid, now=0) is not None for cid in (1, 3, 4))


@pytest.mark.parametrize(("age", "entries"), [(-1, 10), (10, 0)])
def test_store_limits_are_checked(age: float, entries: int) -> None:
    with pytest.raises(ValueError, match="challenge store"):
        InMemoryChallengeStore(max_age_seconds=age, max_entries=entries)


def test_store_survives_concurrent_use() -> None:
    store = InMemoryChallengeStore(max_age_seconds=10, max_entries=500)
    ids = IdAllocator()

    def worker() -> None:
        for _ in range(1_000):
            cid = ids.next_id()
            store.put(challenge(cid, created=float(cid % 50)))
            store.get(cid, now=20.0)
            store.expire(now=25.0)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) <= 500


# ---------------------------------------------------------------------------------------------------------
# UDP retries


def test_find_retry_matches_the_request_id() -> None:
    store = InMemoryChallengeStore(max_age_seconds=20)
    pending = challenge(9, created=0.0, request_id=1234)
    store.put(pending)
    assert find_retry(store, 9, 1234, now=5.0) is pending
    assert find_retry(store, 9, 1235, now=5.0) is None
    assert find_retry(store, 8, 1234, now=5.0) is None
    assert find_retry(store, 9, 1234, now=21.0) is None  # expired


def test_module_is_sans_io() -> None:
    source = Path(challenges.__file__).read_text()
    assert "asyncio" not in source and "socket" not in source and "time.time" not in source


def test_take_makes_challenges_single_use() -> None:
    store = InMemoryChallengeStore(max_age_seconds=20)
    ids = IdAllocator()
    ch = new_challenge(ids, now=100.0, request_envelope=Envelope(2, 11, 2, 11, request_id=5),
                       request_message=b"m", header_body=b"hb", response_version=(2, 11))
    store.put(ch)
    assert store.take(ch.challenge_id, 101.0) == ch
    assert store.take(ch.challenge_id, 101.0) is None
    assert store.get(ch.challenge_id, 101.0) is None
    late = new_challenge(ids, now=100.0, request_envelope=Envelope(2, 11, 2, 11, request_id=6),
                         request_message=b"m", header_body=b"hb", response_version=(2, 11))
    store.put(late)
    assert store.take(late.challenge_id, 121.0) is None  # expired: taken away and refused
    assert len(store) == 0

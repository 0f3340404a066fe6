"""Pending 402 challenges and the server-wide id counter (auth.md 3).

Sans-IO: every time is passed in by the caller (seconds, from whatever monotonic clock it uses). The
store sits behind the ``ChallengeStore`` protocol so that worker processes can later share one
(design.md 5); ``InMemoryChallengeStore`` is the single-process implementation.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Protocol

from hdlserver.wire.digest import request_digest
from hdlserver.wire.envelope import Envelope

NONCE_BYTES = 16
MAX_ID = 2**31 - 1  # ids travel as a signed int4 SessionId and must stay positive


class IdAllocator:
    """Server-wide counter for challenge and session ids, so the two never collide (auth.md 3 step 2).

    Starts at 1, never returns 0 or a negative number, and wraps back to 1 after ``2**31 - 1``.
    Thread-safe.
    """

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= MAX_ID:
            raise ValueError(f"id counter start {start} outside 1..{MAX_ID}")
        self._next = start
        self._lock = threading.Lock()

    def next_id(self) -> int:
        with self._lock:
            value = self._next
            self._next = 1 if value >= MAX_ID else value + 1
            return value


@dataclass(frozen=True, slots=True)
class PendingChallenge:
    """A challenge sent and the request it interrupted, kept to re-run that request when answered."""

    challenge_id: int
    created: float  # seconds, on the caller's clock
    nonce: bytes
    digest_alg: int  # DigestAlgorithm of the 402's RD prefix
    digest: bytes  # raw digest of the request's header+body, without the algorithm byte
    request_envelope: Envelope  # a private copy: do not mutate
    request_message: bytes  # header + body + credential as received (after decryption)
    request_session_id: int

    @property
    def request_id(self) -> int:
        return self.request_envelope.request_id

    def expired(self, now: float, max_age_seconds: float) -> bool:
        return now - self.created > max_age_seconds


class ChallengeStore(Protocol):
    """Pending challenges by id.

    Java keeps an answered challenge until it expires, so a second answer re-runs the request (auth.md 3
    step 5). We make challenges single-use instead -- the server ``take``s the challenge an answer refers
    to -- so a replayed answer gets RC 405; honest clients answer each challenge once.
    """

    def put(self, ch: PendingChallenge) -> None:
        """Store ``ch``, replacing any challenge with the same id."""

    def get(self, challenge_id: int, now: float) -> PendingChallenge | None:
        """The live challenge with this id; None if there is none or it has expired."""

    def take(self, challenge_id: int, now: float) -> PendingChallenge | None:
        """Like ``get``, and remove the challenge: each challenge is answered at most once."""

    def expire(self, now: float) -> int:
        """Remove expired challenges; returns how many were removed."""

    def __len__(self) -> int: ...


class InMemoryChallengeStore(ChallengeStore):
    """A ``ChallengeStore`` in a dict, bounded to ``max_entries`` by dropping the oldest entries."""

    def __init__(self, max_age_seconds: float, max_entries: int = 10_000) -> None:
        if max_age_seconds < 0 or max_entries < 1:
            raise ValueError("challenge store needs max_age_seconds >= 0 and max_entries >= 1")
        self.max_age_seconds = max_age_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[int, PendingChallenge] = OrderedDict()  # oldest put first
        self._lock = threading.Lock()

    def put(self, ch: PendingChallenge) -> None:
        with self._lock:
            self._entries.pop(ch.challenge_id, None)  # a replacement counts as the newest entry
            while len(self._entries) >= self.max_entries:
                self._entries.popitem(last=False)
            self._entries[ch.challenge_id] = ch

    def get(self, challenge_id: int, now: float) -> PendingChallenge | None:
        with self._lock:
            ch = self._entries.get(challenge_id)
            if ch is None:
                return None
            if ch.expired(now, self.max_age_seconds):
                del self._entries[challenge_id]
                return None
            return ch

    def take(self, challenge_id: int, now: float) -> PendingChallenge | None:
        with self._lock:
            ch = self._entries.pop(challenge_id, None)
        if ch is None or ch.expired(now, self.max_age_seconds):
            return None
        return ch

    def expire(self, now: float) -> int:
        with self._lock:
            stale = [cid for cid, ch in self._entries.items() if ch.expired(now, self.max_age_seconds)]
            for cid in stale:
                del self._entries[cid]
            return len(stale)

    def __len__(self) -> int:
        return len(self._entries)


def new_challenge(
    ids: IdAllocator,
    *,
    now: float,
    request_envelope: Envelope,
    request_message: bytes,
    header_body: bytes,
    response_version: tuple[int, int],
    reuse_id: int | None = None,
    nonce: bytes | None = None,
) -> PendingChallenge:
    """A challenge for a request (auth.md 3 steps 2-4); the caller stores it and sends the 402.

    ``header_body``: the request's header+body bytes exactly as received, which the client re-digests.
    ``reuse_id``: the id of the live session the request belongs to (step 1), else a new id is taken.
    """
    if reuse_id is not None and not 1 <= reuse_id <= MAX_ID:
        raise ValueError(f"challenge id {reuse_id} outside 1..{MAX_ID}")
    digest_alg, digest = request_digest(header_body, response_version)
    return PendingChallenge(
        challenge_id=ids.next_id() if reuse_id is None else reuse_id,
        created=now,
        nonce=secrets.token_bytes(NONCE_BYTES) if nonce is None else nonce,
        digest_alg=digest_alg,
        digest=digest,
        request_envelope=replace(request_envelope),
        request_message=bytes(request_message),
        request_session_id=request_envelope.session_id,
    )


def find_retry(store: ChallengeStore, challenge_id: int, request_id: int, now: float) -> PendingChallenge | None:
    """The live challenge to re-send for a UDP retry (auth.md 3 step 1), else None.

    A request in a live session is challenged under the session id; if a challenge is already pending
    there for a request with the same RequestId, the client is retrying and gets the same challenge.
    """
    ch = store.get(challenge_id, now)
    return ch if ch is not None and ch.request_id == request_id else None

"""Server-side sessions: the session record, its replay window, the session table and SESSION_SETUP.

auth.md 9.2-9.8. Sans-IO: every time is passed in by the caller (seconds, from whatever monotonic clock it
uses). The table sits behind the ``SessionStore`` protocol so that worker processes can later share one
(design.md 5); ``InMemorySessionStore`` is the single-process implementation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from hdlserver.auth.challenges import IdAllocator
from hdlserver.auth.session_crypto import (
    ALG_DES,
    SYSTEM_RANDOM,
    RandomBits,
    SessionError,
    dh_server_keypair,
    dh_shared_secret,
    legacy_des_key_from_dh,
    session_key_from_dh,
    setup_response_data,
)
from hdlserver.errors import DecodeError
from hdlserver.wire.bodies import (
    KEY_EXCHANGE_CIPHER_CLIENT,
    KEY_EXCHANGE_CIPHER_HDL,
    KEY_EXCHANGE_CIPHER_SERVER,
    KEY_EXCHANGE_DH,
    SessionSetupRequest,
)
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import version_at_least
from hdlserver.wire.pubkey import DHPublicKeyData, decode_public_key

Version = tuple[int, int]

REPLAY_WINDOW = 200  # session counters remembered per session (auth.md 9.6)
_V_REPLAY_CHECK = (2, 5)  # sessions below this version keep no replay window (as in Java)
_V_NEW_CLIENT = (2, 4)  # older clients get a bare DH_PUB_KEY and a DES session (auth.md 9.3)

# Java's RC 501 messages for the key exchange modes (auth.md 9.3). Modes 1 and 3 cannot work between Java
# peers (Java asks for the cipher "RSA/EBC/PKCS1"); mode 2 would leave the Java client unable to finish, so
# we refuse it at setup, with Java's message for servers without an RSA key.
MSG_CIPHER_CLIENT_FAILED = "Error performing client cipher key exchange."
MSG_CIPHER_SERVER_UNSUPPORTED = "KEY_EXCHANGE_CIPHER_SERVER not supported"
MSG_CIPHER_HDL_FAILED = "Error performing hdl cipher key exchange."
MSG_DH_FAILED = "Error encoding public session key"
MSG_UNKNOWN_MODE = "Unrecognized key exchange mode"

_REFUSED_MODES = {
    KEY_EXCHANGE_CIPHER_CLIENT: MSG_CIPHER_CLIENT_FAILED,
    KEY_EXCHANGE_CIPHER_SERVER: MSG_CIPHER_SERVER_UNSUPPORTED,
    KEY_EXCHANGE_CIPHER_HDL: MSG_CIPHER_HDL_FAILED,
}


class ReplayError(SessionError):
    """A session counter seen before, or older than the replay window: RC 505."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ResponseCode.SESSION_MESSAGE_REJECTED)


@dataclass
class Session:
    """One session (Java ``ServerSideSessionInfo``).

    ``version`` is the response version of the SESSION_SETUP; it selects the cipher mode (auth.md 9.4) and
    whether a replay window is kept. ``timeout_seconds`` is an idle timeout: every lookup refreshes
    ``last_used``. ``key`` is None only for a session still waiting for its key (mode 2, which we refuse).
    Copy with ``copy.deepcopy`` or pickle, not ``dataclasses.replace``, which would reset the replay window.
    """

    session_id: int
    key: bytes | None
    algorithm: int
    identity_handle: bytes
    identity_index: int
    mode: int
    version: Version
    timeout_seconds: float
    last_used: float
    authenticated: bool = False
    authenticated_index: int | None = None  # the HS_PUBKEY index that verified (auth.md 5 step 4)
    encrypt_all: bool = False
    server_counter: int = 0  # the last counter the server put in an HS_MAC response
    # Replay window: counters in the order they were recorded, and the floor at or below which every
    # counter is refused (the highest counter forgotten so far; Java's earliestRecordedSeenSessionCounter).
    _seen: dict[int, None] = field(default_factory=dict, init=False, repr=False, compare=False)
    _floor: int = field(default=0, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def anonymous(self) -> bool:
        """No identity: never authenticated (auth.md 9.8)."""
        return not self.identity_handle or self.identity_index == -1

    def identity_matches(self, handle: bytes, index: int) -> bool:
        """Is ``index:handle`` this session's identity? Byte-equal handles, as Java compares them."""
        return not self.anonymous and self.identity_handle == handle and self.identity_index == index

    def expired(self, now: float) -> bool:
        return now - self.last_used > self.timeout_seconds

    def next_server_counter(self) -> int:
        """The signer index for the next HS_MAC response: 1, 2, 3, ... (auth.md 8 step 1)."""
        with self._lock:
            self.server_counter += 1
            return self.server_counter

    def check_and_record_counter(self, counter: int, *, unique: bool = True) -> None:
        """Record a client's session counter, refusing replays (auth.md 9.6).

        Sessions of version >= 2.5 remember the last ``REPLAY_WINDOW`` counters. With ``unique`` a
        counter already remembered, or not above every counter forgotten so far (initially 0), raises
        ``ReplayError``, so no counter is ever accepted twice; ``unique=False`` (challenge answers and the
        challenged request) records without checking. Counter 0 (no counter) is never checked nor recorded.
        """
        if counter == 0 or not version_at_least(self.version, _V_REPLAY_CHECK):
            return
        with self._lock:
            if unique and (counter <= self._floor or counter in self._seen):
                raise ReplayError(f"Duplicate session counter {counter} in session {self.session_id}")
            self._seen[counter] = None
            if len(self._seen) > REPLAY_WINDOW:
                forgotten = next(iter(self._seen))
                del self._seen[forgotten]
                # Java moves the floor to the oldest counter still remembered, which lets a forgotten
                # counter above it be replayed when counters arrived out of order; never lowering the floor
                # below a forgotten counter closes that gap and is the same for in-order clients.
                self._floor = max(self._floor, forgotten)

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for a store shared between worker processes; the lock is per process.
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class SessionStore(Protocol):
    """Live sessions by id. Expiry is idle time: ``get`` refreshes a session's ``last_used``."""

    def create(self, session: Session) -> None:
        """Store a new session (replacing one with the same id). May evict another to stay bounded."""

    def get(self, session_id: int, now: float) -> Session | None:
        """The live session with this id, its ``last_used`` set to ``now``; None if there is none or it
        had expired (it is then removed)."""

    def update(self, session: Session) -> None:
        """Write back a session changed after ``get`` (authenticated, counters) if it is still stored.

        The in-memory store hands out its own objects, so changes are already there; a store shared
        between processes keeps copies and needs this call.
        """

    def remove(self, session_id: int) -> bool:
        """Remove a session (SESSION_TERMINATE); True if it was there."""

    def expire(self, now: float) -> int:
        """Remove idle sessions; returns how many were removed."""

    def __len__(self) -> int: ...


class InMemorySessionStore(SessionStore):
    """A ``SessionStore`` in a dict, bounded to ``max_sessions``.

    Anyone may open sessions (SESSION_SETUP needs no authentication), so a full table must not lock
    administrators out for a whole idle timeout (86 400 s by default). When a new session arrives at a full
    table we therefore evict rather than refuse: the least recently used session that is expired or not
    authenticated, or, if every session is authenticated and live, the least recently used one. An evicted
    client gets RC 500 on its next request and, like Java clients do, sets up a new session.
    """

    def __init__(self, max_sessions: int = 10_000) -> None:
        if max_sessions < 1:
            raise ValueError("session store needs max_sessions >= 1")
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[int, Session] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def create(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.session_id, None)
            if len(self._sessions) >= self.max_sessions:
                del self._sessions[self._eviction_victim(session.last_used)]
            self._sessions[session.session_id] = session

    def _eviction_victim(self, now: float) -> int:
        for session_id, session in self._sessions.items():
            if not session.authenticated or session.expired(now):
                return session_id
        return next(iter(self._sessions))

    def get(self, session_id: int, now: float) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expired(now):
                del self._sessions[session_id]
                return None
            session.last_used = now
            self._sessions.move_to_end(session_id)
            return session

    def update(self, session: Session) -> None:
        with self._lock:
            if session.session_id in self._sessions:
                self._sessions[session.session_id] = session

    def remove(self, session_id: int) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def expire(self, now: float) -> int:
        with self._lock:
            idle = [sid for sid, session in self._sessions.items() if session.expired(now)]
            for sid in idle:
                del self._sessions[sid]
            return len(idle)

    def __len__(self) -> int:
        return len(self._sessions)


def _dh_exchange(request: SessionSetupRequest, configured_alg: int, client_suggested: Version,
                 rng: RandomBits) -> tuple[bytes, int, bytes]:
    """Mode 4: (session key, algorithm, response data). Raises SessionError with Java's RC 501 message."""
    try:
        client = decode_public_key(request.public_key)
        if not isinstance(client, DHPublicKeyData):
            raise SessionError("SESSION_SETUP mode 4 needs a DH_PUB_KEY")
        x, y = dh_server_keypair(client.p, client.g, rng)
        z = dh_shared_secret(client.y, x, client.p)
    except (DecodeError, SessionError) as exc:
        # Java answers every DH failure with this one message; the cause stays chained for the log.
        raise SessionError(MSG_DH_FAILED) from exc
    data = setup_response_data(configured_alg, DHPublicKeyData(y=y, p=client.p, g=client.g), client_suggested)
    if not version_at_least(client_suggested, _V_NEW_CLIENT):
        return legacy_des_key_from_dh(z), ALG_DES, data
    return session_key_from_dh(z, configured_alg), configured_alg, data


def create_dh_session(
    ids: IdAllocator,
    request: SessionSetupRequest,
    *,
    now: float,
    configured_alg: int,
    max_session_time_s: int,
    response_version: Version,
    client_suggested: Version,
    rng: RandomBits = SYSTEM_RANDOM,
) -> tuple[Session, bytes]:
    """SESSION_SETUP steps 2-4 (auth.md 9.2): the new session and the response's ``data`` field.

    Only mode 4 (DH) is supported (auth.md 9.3); other modes raise ``SessionError`` (RC 501) with Java's
    messages. Clients suggesting a version below 2.4 get a DES session and a bare DH_PUB_KEY. The session id
    comes from ``ids``, the counter shared with challenge ids. The caller stores the session and sends the
    response (mode echoed, signed when CT).
    """
    if request.mode != KEY_EXCHANGE_DH:
        raise SessionError(_REFUSED_MODES.get(request.mode, MSG_UNKNOWN_MODE))
    key, algorithm, data = _dh_exchange(request, configured_alg, client_suggested, rng)
    session = Session(
        session_id=ids.next_id(),
        key=key,
        algorithm=algorithm,
        identity_handle=request.identity_handle,
        identity_index=request.identity_index,
        mode=request.mode,
        version=response_version,
        timeout_seconds=request.timeout if request.timeout > 0 else max_session_time_s,
        last_used=now,
    )
    return session, data

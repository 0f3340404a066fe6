"""HTTP sessions of the REST API (auth.md 10.2): the session record and a bounded table of them.

Sans-IO: every time is passed in by the caller (seconds on the server's clock). A session is named by the
client in ``Authorization: Handle sessionId="..."`` (never by a cookie) and carries the server nonce the
client signs. Expiry is idle time, as a servlet container's ``maxInactiveInterval``: every lookup refreshes
the session. The table is used from the event-loop thread only.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

NONCE_BYTES = 16  # as the native challenge nonce (Java ChallengeResponse.generateNonce)
SESSION_ID_BYTES = 18  # 24 URL-safe characters: a header token, needs no quoting or escaping
MAX_REST_SESSIONS = 10_000


@dataclass(slots=True)
class RestSession:
    """One HTTP session (Java ``HandleAuthenticationStatus`` in an ``HttpSession``)."""

    session_id: str
    nonce: bytes
    last_used: float
    identity: tuple[bytes, int] | None = None  # (handle, index) once authenticated
    identity_text: str | None = None  # the ``id`` as the client wrote it, echoed in the session JSON
    # The Authorization header that authenticated the session: the same header again is not re-verified.
    authorization: str | None = None
    # The last server signature (auth.md 10.2 step 5) and the cnonce it signs, reused for the same cnonce.
    cnonce: bytes | None = None
    server_signature: bytes | None = None

    @property
    def authenticated(self) -> bool:
        return self.identity is not None

    def authenticate(self, identity: tuple[bytes, int], identity_text: str, authorization: str | None) -> None:
        self.identity = identity
        self.identity_text = identity_text
        self.authorization = authorization


class RestSessionTable:
    """Live sessions by id, at most ``max_sessions`` of them.

    Every 401 of the API hands out a session (as Java does), so anonymous clients create sessions freely and
    a full table must neither refuse new ones nor let that traffic push out administrators: a new session at
    a full table evicts the least recently used session that is expired or not authenticated, and only when
    every session is authenticated and live, the least recently used one. ``timeout_seconds <= 0``: sessions
    never expire (servlet semantics).
    """

    def __init__(self, timeout_seconds: float, max_sessions: int = MAX_REST_SESSIONS) -> None:
        if max_sessions < 1:
            raise ValueError("the REST session table needs max_sessions >= 1")
        self.timeout_seconds = timeout_seconds
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, RestSession] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: RestSession, now: float) -> bool:
        return self.timeout_seconds > 0 and now - session.last_used > self.timeout_seconds

    def expire(self, now: float) -> int:
        """Remove idle sessions; returns how many were removed. They sit at the front, in LRU order."""
        removed = 0
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if not self._expired(oldest, now):
                break
            del self._sessions[oldest.session_id]
            removed += 1
        return removed

    def create(self, now: float) -> RestSession:
        """A new, unauthenticated session with a fresh id and nonce."""
        self.expire(now)
        if len(self._sessions) >= self.max_sessions:
            del self._sessions[self._eviction_victim()]
        session = RestSession(secrets.token_urlsafe(SESSION_ID_BYTES), secrets.token_bytes(NONCE_BYTES), now)
        self._sessions[session.session_id] = session
        return session

    def _eviction_victim(self) -> str:
        # expire() ran just before, so every session left is live
        for session_id, session in self._sessions.items():
            if not session.authenticated:
                return session_id
        return next(iter(self._sessions))

    def get(self, session_id: str, now: float) -> RestSession | None:
        """The live session with this id, refreshed to ``now``; None if there is none or it expired."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if self._expired(session, now):
            del self._sessions[session_id]
            return None
        session.last_used = now
        self._sessions.move_to_end(session_id)
        return session

    def remove(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

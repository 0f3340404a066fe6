"""Which prefixes this server serves, and the responsibility test of server.md 7.1.

Every resolution consults the homed prefixes, so their set is kept in memory and read again from the
store whenever ``store.homed_version()`` moves: a home or unhome by anyone -- this server, another worker
process, a mirror's replication thread, hdl-loadjson --home -- is seen by the next request, for the price
of one empty read transaction. ``serves`` also remembers its verdict per prefix (the part of a handle
before its first '/'), so the hot path pays one dict lookup on top.
"""

from __future__ import annotations

from typing import NamedTuple

from hdlserver.errors import ProtocolError
from hdlserver.store.lmdb_store import LmdbStore
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.handles import NA_PREFIX, prefix_handle_of, server_position, to_prefix_handle
from hdlserver.wire.site import SiteInfo

NOT_HERE = "That prefix doesn't live here"
HASHED_WRONG = "Request was hashed incorrectly"

_NOT_SERVED, _SERVED, _DERIVED = 0, 1, 2  # verdicts per prefix; _DERIVED: 0.NA, the suffix decides
_MAX_VERDICTS = 4096  # distinct prefixes remembered before starting afresh (names come from clients)
_UNREAD = -1  # no store version is negative


class _View(NamedTuple):
    """The homed prefixes as read at one store version, with the verdicts found for it so far. Replaced
    whole, never changed in place (but for the verdict cache), so a thread holding one sees one state."""

    version: int
    homed: frozenset[bytes]
    verdicts: dict[bytes, int]


class HomedPrefixes:
    def __init__(self, store: LmdbStore) -> None:
        self._store = store
        self._view = _View(_UNREAD, frozenset(), {})
        self._current()

    def _current(self) -> _View:
        version = self._store.homed_version()
        view = self._view
        if version != view.version:
            # Read after the version: a change committed in between only means one more reload later (and
            # no verdict of this view is ever taken for that later version).
            view = _View(version, frozenset(p.upper() for p in self._store.homed_prefixes()), {})
            self._view = view
        return view

    def __contains__(self, prefix_handle: bytes) -> bool:
        return prefix_handle.upper() in self._current().homed

    def home(self, prefix: bytes, *, log: bool = True) -> bytes:
        handle = to_prefix_handle(prefix)
        self._store.home_prefix(handle, log=log)
        return handle

    def unhome(self, prefix: bytes, *, log: bool = True) -> bool:
        handle = to_prefix_handle(prefix)
        return self._store.unhome_prefix(handle, log=log)

    def sorted(self) -> list[bytes]:
        return sorted(self._current().homed)

    def serves(self, handle: bytes) -> bool:
        """server.md 7.1 steps 2-3, for a handle already in its 0.NA form when slashless."""
        return self.serves_at(handle)[0]

    def serves_at(self, handle: bytes) -> tuple[bool, int]:
        """``serves`` and the store version its verdict holds for (answer templates check it)."""
        view = self._current()
        slash = handle.find(b"/")
        if slash < 0:
            return prefix_handle_of(handle) in view.homed, view.version
        prefix = handle[:slash]
        verdict = view.verdicts.get(prefix)
        if verdict is None:
            verdict = _verdict(view, prefix)
        if verdict != _DERIVED:
            return verdict == _SERVED, view.version
        return _serves_derived(view.homed, handle), view.version


def _verdict(view: _View, prefix: bytes) -> int:
    upper = prefix.upper()
    if NA_PREFIX + upper in view.homed:
        verdict = _SERVED
    elif upper + b"/" == NA_PREFIX:
        verdict = _DERIVED
    else:
        verdict = _NOT_SERVED
    if len(view.verdicts) >= _MAX_VERDICTS:
        view.verdicts.clear()
    view.verdicts[prefix] = verdict
    return verdict


def _serves_derived(homed: frozenset[bytes], handle: bytes) -> bool:
    # Derived prefix handle 0.NA/a.b.c: served if some 0.NA/0.NA/a.b or 0.NA/0.NA/a is homed.
    rest = handle[5:]
    dot = rest.rfind(b".")
    while dot > 0:
        if NA_PREFIX + (NA_PREFIX + rest[:dot]).upper() in homed:
            return True
        dot = rest.rfind(b".", 0, dot)
    return False


def check_responsible(site: SiteInfo, own_position: int, homed: HomedPrefixes, handle: bytes) -> None:
    """Raise RC 301 unless this server is responsible for ``handle`` (server.md 7.1)."""
    if len(site.servers) > 1 and server_position(handle, site.hash_option, len(site.servers)) != own_position:
        raise ProtocolError(ResponseCode.SERVER_NOT_RESP, HASHED_WRONG)
    if not homed.serves(handle):
        raise ProtocolError(ResponseCode.SERVER_NOT_RESP, NOT_HERE)

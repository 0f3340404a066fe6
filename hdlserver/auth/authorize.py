"""The pure authorization rules: who may do what to a handle (auth.md 6, values.md 1.5).

Nothing here touches a store, the network or the clock. Group (HS_VLIST) members are resolved through a
``ValueLookup`` the caller provides, which decides between local storage and certified resolution.
Verifying the identity's proof (signature, MAC) is the caller's job and happens after these checks,
as in Java (auth.md 6.3 step 7).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hdlserver.errors import DecodeError, HandleError
from hdlserver.wire.valuedata import (
    HS_ADMIN,
    HS_VLIST,
    PERM_ADD_ADMIN,
    PERM_ADD_VALUE,
    PERM_MODIFY_ADMIN,
    PERM_MODIFY_VALUE,
    PERM_REMOVE_ADMIN,
    PERM_REMOVE_VALUE,
    decode_admin,
    decode_vlist,
    parse_value_reference_text,
)
from hdlserver.wire.values import HandleValue, ValueReference, has_type

# Handles starting with this are "global" (0.NA/..., 0.SITE/...): Java compares them ignoring case entirely.
GLOBAL_HANDLE_START = b"0."

# Our limit, not Java's (Java has none besides the visited list): how many group references one check may
# visit, each costing at most one lookup. Cycles already end through the visited list; this bounds a
# hostile fan-out of distinct groups, each of which may be a certified resolution over the network.
DEFAULT_MAX_VISITS = 1000

ValueLookup = Callable[[bytes, int], Sequence[HandleValue] | None]
"""Resolve value index ``i`` of handle ``H`` (auth.md 6.4 step 3); None when it fails or does not exist."""


def handle_key(handle: bytes) -> bytes:
    """A key equal for two handles exactly when Java's ``equalsPrefixCI`` says they are equal.

    The prefix part (up to the first '/') is folded to upper case and the rest kept; global handles
    (starting with ``0.``) are folded entirely. Only ASCII letters are folded (``bytes.upper``).
    """
    if handle.startswith(GLOBAL_HANDLE_START):
        return handle.upper()
    slash = handle.find(b"/")
    if slash < 0:
        return handle.upper()
    return handle[:slash].upper() + handle[slash:]


def same_handle(a: bytes, b: bytes) -> bool:
    return handle_key(a) == handle_key(b)


def reference_key(ref: ValueReference) -> tuple[bytes, int]:
    """Equality of references in the group queue and visited list: same handle, exact index (auth.md 6.4)."""
    return handle_key(ref.handle), ref.index


def references_match(entry: ValueReference, identity: ValueReference) -> bool:
    """Does an HS_ADMIN/HS_VLIST/server-list ``entry`` name ``identity`` (values.md 1.5)?

    Entry index 0 means "any index of that handle"; identity index 0 matches only entry index 0.
    """
    return (entry.index == 0 or entry.index == identity.index) and same_handle(entry.handle, identity.handle)


def parse_admin_list(entries: Sequence[str]) -> tuple[ValueReference, ...]:
    """A server_config admin list (``index:handle`` texts; no all-digit index means index 0).

    Entries that name no handle or whose index does not fit an int4 can never match an identity, so
    they are left out rather than failing every request that consults the list.
    """
    refs = []
    for text in entries:
        try:
            refs.append(parse_value_reference_text(text))
        except ValueError:
            continue
    return tuple(refs)


@dataclass(frozen=True, slots=True)
class AuthorizationOutcome:
    """The result of an authorization check, before the identity's proof is verified.

    ``visited`` holds the direct references considered plus every group reference visited, for the
    identity-index-0 rule (auth.md 6.6). ``visit_limit_reached`` says the search stopped at our
    ``max_visits`` bound, so a "not allowed" may be due to the bound (worth logging).
    """

    allowed: bool
    matched_directly: bool
    visited: tuple[ValueReference, ...]
    visit_limit_reached: bool = False


class _GroupSearch:
    """Breadth-first HS_VLIST expansion with a visited list (auth.md 6.4), shared by one whole check."""

    def __init__(self, identity: ValueReference, lookup: ValueLookup, max_visits: int) -> None:
        self.identity = identity
        self.lookup = lookup
        self.max_visits = max_visits
        self.considered: dict[tuple[bytes, int], ValueReference] = {}  # direct references and T, in order
        self.seen: set[tuple[bytes, int]] = set()  # Q and T: a reference is enqueued once
        self.visits = 0
        self.limit_reached = False

    def note_direct(self, ref: ValueReference) -> None:
        self.considered.setdefault(reference_key(ref), ref)

    def expand(self, start: Iterable[ValueReference]) -> bool:
        """Search the groups reachable from ``start``; True when some member matches the identity."""
        queue: deque[ValueReference] = deque()
        for ref in start:
            key = reference_key(ref)
            if key not in self.seen:
                self.seen.add(key)
                queue.append(ref)
        while queue:
            ref = queue.popleft()
            if self.visits >= self.max_visits:
                self.limit_reached = True
                return False
            self.visits += 1
            self.considered.setdefault(reference_key(ref), ref)
            if ref.index == 0:  # a 0 reference only matches directly
                continue
            for member in self._members(ref):
                if references_match(member, self.identity):
                    return True
                key = reference_key(member)
                if key not in self.seen:
                    self.seen.add(key)
                    queue.append(member)
        return False

    def _members(self, group: ValueReference) -> list[ValueReference]:
        try:
            values = self.lookup(group.handle, group.index)
        except HandleError:  # a failing resolution contributes nothing (auth.md 6.4 step 5)
            return []
        members: list[ValueReference] = []
        for v in values or ():
            if v.index != group.index or not has_type(v.type, HS_VLIST):
                continue
            try:
                members.extend(decode_vlist(v.data))
            except DecodeError:
                continue
        return members

    def outcome(self, allowed: bool, matched_directly: bool = False) -> AuthorizationOutcome:
        return AuthorizationOutcome(allowed, matched_directly, tuple(self.considered.values()),
                                    self.limit_reached)


def find_admin(identity: ValueReference, required: int, values: Sequence[HandleValue], lookup: ValueLookup, *,
               server_admins: Sequence[ValueReference] = (), server_admin_full_access: bool = False,
               max_visits: int = DEFAULT_MAX_VISITS) -> AuthorizationOutcome:
    """Is ``identity`` an administrator with every bit of ``required`` over ``values`` (auth.md 6.3 steps 4-6)?

    With ``server_admin_full_access`` the server admins (directly or through their groups) may do
    anything. Otherwise each decodable HS_ADMIN value whose mask holds all of ``required`` names an
    admin reference that must match the identity directly or through HS_VLIST groups.
    """
    search = _GroupSearch(identity, lookup, max_visits)
    if server_admin_full_access:
        for entry in server_admins:
            search.note_direct(entry)
            if references_match(entry, identity):
                return search.outcome(True, matched_directly=True)
        if search.expand(server_admins):
            return search.outcome(True)
    queued: list[ValueReference] = []
    for v in values:
        if not has_type(v.type, HS_ADMIN):
            continue
        try:
            record = decode_admin(v.data)
        except DecodeError:
            continue
        if record.permissions & required != required:
            continue
        ref = ValueReference(record.handle, record.index)
        search.note_direct(ref)
        if references_match(ref, identity):
            return search.outcome(True, matched_directly=True)
        queued.append(ref)
    return search.outcome(search.expand(queued))


def find_in_list(identity: ValueReference, entries: Sequence[ValueReference], lookup: ValueLookup,
                 max_visits: int = DEFAULT_MAX_VISITS) -> AuthorizationOutcome:
    """The list-based check (server_config lists): an entry matches directly or through its groups."""
    search = _GroupSearch(identity, lookup, max_visits)
    for entry in entries:
        search.note_direct(entry)
        if references_match(entry, identity):
            return search.outcome(True, matched_directly=True)
    return search.outcome(search.expand(entries))


def index_zero_allows(outcome: AuthorizationOutcome, identity_handle: bytes, verified_index: int) -> bool:
    """auth.md 6.6: an identity of index 0 whose proof verified with value ``verified_index`` is allowed
    when that exact reference was among those the failed check considered."""
    wanted = reference_key(ValueReference(identity_handle, verified_index))
    return any(reference_key(ref) == wanted for ref in outcome.visited)


def index_zero_may_allow(outcome: AuthorizationOutcome, identity_handle: bytes) -> bool:
    """Whether ``index_zero_allows`` can hold for some verified index: a considered reference names the
    identity's handle. Lets a caller skip an expensive proof (a remote identity) that could not help."""
    wanted = handle_key(identity_handle)
    return any(handle_key(ref.handle) == wanted for ref in outcome.visited)


# --- required permission bits (auth.md 6.2, 6.5) ----------------------------------------------------


def is_admin_value(v: HandleValue) -> bool:
    return has_type(v.type, HS_ADMIN)


def _add_bits(v: HandleValue) -> int:
    return PERM_ADD_ADMIN if is_admin_value(v) else PERM_ADD_VALUE


def _remove_bits(v: HandleValue) -> int:
    return PERM_REMOVE_ADMIN if is_admin_value(v) else PERM_REMOVE_VALUE


def _modify_bits(old: HandleValue, new: HandleValue) -> int:
    if is_admin_value(old):
        return PERM_MODIFY_ADMIN if is_admin_value(new) else PERM_REMOVE_ADMIN | PERM_MODIFY_VALUE
    if is_admin_value(new):
        return PERM_MODIFY_VALUE | PERM_ADD_ADMIN
    return 0 if old.public_write else PERM_MODIFY_VALUE


def _replace_bits(old: HandleValue, new: HandleValue) -> int:
    """Replacing a value by one with the same index: nothing when only the timestamp differs."""
    return 0 if old.same_ignoring_timestamp(new) else _modify_bits(old, new)


def _by_index(values: Sequence[HandleValue]) -> dict[int, HandleValue]:
    out: dict[int, HandleValue] = {}
    for v in values:
        out.setdefault(v.index, v)
    return out


def bits_for_add(existing: Sequence[HandleValue], new: Sequence[HandleValue], overwrite: bool) -> int:
    """ADD_VALUE (102): a new HS_ADMIN index needs ADD_ADMIN, any other new index ADD_VALUE; with
    ``overwrite``, replacing an existing index follows the modify rules (identical values need nothing).

    Without ``overwrite`` every request value counts as an addition: the caller rejects a request
    naming an existing index (RC 201) before authorization (server.md 9.3 step 3).
    """
    current = _by_index(existing)
    bits = 0
    for v in new:
        old = current.get(v.index)
        bits |= _replace_bits(old, v) if overwrite and old is not None else _add_bits(v)
    return bits


def bits_for_remove(removed: Sequence[HandleValue]) -> int:
    """REMOVE_VALUE (103): REMOVE_ADMIN for removed HS_ADMIN values, REMOVE_VALUE for the others."""
    bits = 0
    for v in removed:
        bits |= _remove_bits(v)
    return bits


def bits_for_modify(pairs: Sequence[tuple[HandleValue, HandleValue]]) -> int:
    """MODIFY_VALUE (104) over (old, new) pairs (auth.md 6.2, the modify row)."""
    bits = 0
    for old, new in pairs:
        bits |= _modify_bits(old, new)
    return bits


def bits_for_create_overwrite(existing: Sequence[HandleValue], new: Sequence[HandleValue]) -> int:
    """CREATE with OVRW over an existing handle (auth.md 6.5 step 1), values matched by index."""
    current = _by_index(existing)
    requested = _by_index(new)
    bits = 0
    for index, old in current.items():
        if index not in requested:
            bits |= _remove_bits(old)
    for index, v in requested.items():
        old = current.get(index)
        bits |= _add_bits(v) if old is None else _replace_bits(old, v)
    return bits


def modify_allowed_anonymously(pairs: Sequence[tuple[HandleValue, HandleValue]]) -> bool:
    """MODIFY without authentication (auth.md 2, server.md 9.5): every existing value has public-write
    and neither the old nor the new value is HS_ADMIN."""
    return all(old.public_write and not is_admin_value(old) and not is_admin_value(new) for old, new in pairs)

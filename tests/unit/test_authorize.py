"""hdlserver.auth.authorize: reference matching, HS_ADMIN/HS_VLIST checks and required bits (auth.md 6)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from hdlserver.auth.authorize import (
    DEFAULT_MAX_VISITS,
    AuthorizationOutcome,
    bits_for_add,
    bits_for_create_overwrite,
    bits_for_modify,
    bits_for_remove,
    find_admin,
    find_in_list,
    index_zero_allows,
    modify_allowed_anonymously,
    parse_admin_list,
    references_match,
)
from hdlserver.errors import ProtocolError, StorageError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.valuedata import (
    ALL_PERMISSIONS,
    PERM_ADD_ADMIN,
    PERM_ADD_HANDLE,
    PERM_ADD_VALUE,
    PERM_DELETE_HANDLE,
    PERM_LIST_HANDLES,
    PERM_MODIFY_ADMIN,
    PERM_MODIFY_VALUE,
    PERM_READ_VALUE,
    PERM_REMOVE_ADMIN,
    PERM_REMOVE_VALUE,
    AdminRecord,
    decode_vlist,
    encode_admin,
    encode_vlist,
)
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, PERM_PUBLIC_READ, PERM_PUBLIC_WRITE, HandleValue
from hdlserver.wire.values import ValueReference as Ref

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
PUBLIC_WRITE = PERM_ADMIN_READ | PERM_ADMIN_WRITE | PERM_PUBLIC_READ | PERM_PUBLIC_WRITE


def ref(text: str) -> Ref:
    index, _, handle = text.partition(":")
    return Ref(handle.encode(), int(index))


def admin(index: int, who: str, perms: int = ALL_PERMISSIONS, *, legacy: bool = False,
          vtype: bytes = b"HS_ADMIN") -> HandleValue:
    r = ref(who)
    return HandleValue(index, vtype, encode_admin(AdminRecord(perms, r.handle, r.index, legacy)))


def vlist(index: int, *members: str, vtype: bytes = b"HS_VLIST") -> HandleValue:
    return HandleValue(index, vtype, encode_vlist([ref(m) for m in members]))


def text_value(index: int, data: bytes = b"x", vtype: bytes = b"URL", permissions: int = PERM_ADMIN_READ
               | PERM_ADMIN_WRITE | PERM_PUBLIC_READ, timestamp: int = 0) -> HandleValue:
    return HandleValue(index, vtype, data, permissions, timestamp=timestamp)


class FakeWorld:
    """Handles by exact name; records every lookup; some handles fail."""

    def __init__(self, handles: dict[bytes, Sequence[HandleValue]] | None = None, *,
                 failing: dict[bytes, Exception | None] | None = None) -> None:
        self.handles = dict(handles or {})
        self.failing = dict(failing or {})
        self.calls: list[tuple[bytes, int]] = []

    def lookup(self, handle: bytes, index: int) -> Sequence[HandleValue] | None:
        self.calls.append((handle, index))
        if handle in self.failing:
            error = self.failing[handle]
            if error is not None:
                raise error
            return None
        values = self.handles.get(handle)
        if values is None:
            return None
        return [v for v in values if v.index == index]


def no_lookup(handle: bytes, index: int) -> Sequence[HandleValue] | None:
    raise AssertionError(f"unexpected lookup of {index}:{handle!r}")


# --- values.md 1.5 ----------------------------------------------------------------------------------

MATCH_CASES = [
    # entry, identity, matches, why
    ("300:TEST/abc", "300:TEST/abc", True, "identical"),
    ("300:TEST/abc", "300:test/abc", True, "prefix part ignores case"),
    ("300:TeSt/abc", "300:tEsT/abc", True, "prefix part ignores case, mixed"),
    ("300:TEST/abc", "300:TEST/ABC", False, "suffix is compared exactly"),
    ("300:TEST/a/B", "300:test/a/B", True, "only the text before the first '/' is the prefix"),
    ("300:TEST/a/B", "300:TEST/a/b", False, "later slashes do not start a new prefix"),
    ("300:0.NA/test", "300:0.na/TEST", True, "0. handles compare fully ignoring case"),
    ("300:0.SITE/Status", "300:0.site/STATUS", True, "any 0. handle"),
    ("300:0.NA/test", "300:0.NA/test2", False, "0. handles still need equal text"),
    ("1:ABC", "1:abc", True, "a handle without '/' is all prefix"),
    ("1:ab/c", "1:a/bc", False, "slash in a different place"),
    ("1:TEST/x", "1:TEST/x/", False, "lengths differ"),
    ("1:É/x", "1:é/x", False, "only ASCII letters are folded"),
    ("1:É/x", "1:É/x", True, "non-ASCII bytes compared exactly"),
    ("0:TEST/abc", "300:test/abc", True, "entry index 0 matches any identity index"),
    ("0:TEST/abc", "0:TEST/abc", True, "entry index 0 matches identity index 0"),
    ("300:TEST/abc", "0:TEST/abc", False, "identity index 0 does not match a non-zero entry"),
    ("300:TEST/abc", "301:TEST/abc", False, "different index"),
    ("0:TEST/abc", "300:TEST/abd", False, "index 0 still needs the same handle"),
]


@pytest.mark.parametrize(("entry", "identity", "expected", "why"), MATCH_CASES, ids=[c[3] for c in MATCH_CASES])
def test_references_match(entry: str, identity: str, expected: bool, why: str) -> None:
    assert references_match(ref(entry), ref(identity)) is expected


def test_parse_admin_list() -> None:
    got = parse_admin_list(["300:0.NA/TEST", "0.NA/TEST", "12a:X/y", "0:X/y", "", "300:", "99999999999:X/y",
                            "2147483647:X/y"])
    assert got == (
        Ref(b"0.NA/TEST", 300),
        Ref(b"0.NA/TEST", 0),  # no index: index 0 with the whole text as handle
        Ref(b"12a:X/y", 0),  # the index part is not all digits
        Ref(b"X/y", 0),
        # "", "300:" (no handle) and an index beyond int4 are left out
        Ref(b"X/y", 2147483647),
    )


# --- auth.md 6.3: direct HS_ADMIN checks ------------------------------------------------------------

def test_direct_match_with_every_required_bit() -> None:
    values = [text_value(1), admin(100, "300:0.NA/TEST", PERM_ADD_VALUE | PERM_MODIFY_VALUE)]
    out = find_admin(ref("300:0.na/test"), PERM_ADD_VALUE | PERM_MODIFY_VALUE, values, no_lookup)
    assert out == AuthorizationOutcome(True, True, (Ref(b"0.NA/TEST", 300),))


@pytest.mark.parametrize("missing", [PERM_ADD_VALUE, PERM_MODIFY_VALUE, PERM_ADD_ADMIN])
def test_record_lacking_one_required_bit_is_skipped(missing: int) -> None:
    required = PERM_ADD_VALUE | PERM_MODIFY_VALUE | PERM_ADD_ADMIN
    values = [admin(100, "300:0.NA/TEST", ALL_PERMISSIONS & ~missing)]
    out = find_admin(ref("300:0.NA/TEST"), required, values, no_lookup)
    assert not out.allowed
    assert out.visited == ()  # a skipped record is not even a candidate for the index-0 rule


def test_required_bits_must_be_in_one_record() -> None:
    values = [admin(100, "300:0.NA/TEST", PERM_ADD_VALUE), admin(101, "300:0.NA/TEST", PERM_MODIFY_VALUE)]
    out = find_admin(ref("300:0.NA/TEST"), PERM_ADD_VALUE | PERM_MODIFY_VALUE, values, FakeWorld().lookup)
    assert not out.allowed


def test_unused_high_bits_do_not_hurt() -> None:
    values = [admin(100, "300:0.NA/TEST", 0xF000 | PERM_DELETE_HANDLE)]
    assert find_admin(ref("300:0.NA/TEST"), PERM_DELETE_HANDLE, values, no_lookup).allowed


@pytest.mark.parametrize("data", [b"", b"\x0f\xff", b"\x0f\xff\x00\x00\x00\x09" + b"0.NA/TEST",
                                  encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)) + b"\x00"],
                         ids=["empty", "mask only", "truncated index", "one trailing byte"])
def test_undecodable_hs_admin_is_skipped(data: bytes) -> None:
    bad = HandleValue(100, b"HS_ADMIN", data)
    good = admin(101, "300:0.NA/TEST", PERM_ADD_VALUE)
    assert not find_admin(ref("300:0.NA/TEST"), PERM_ADD_VALUE, [bad], no_lookup).allowed
    out = find_admin(ref("300:0.NA/TEST"), PERM_ADD_VALUE, [bad, good], no_lookup)
    assert out.allowed and out.matched_directly


def test_legacy_trailer_record_counts() -> None:
    value = admin(100, "300:0.NA/TEST", PERM_DELETE_HANDLE, legacy=True)
    assert value.data.endswith(b"TEST\x00\x00\x01\x2c\x00\x00")
    assert find_admin(ref("300:0.NA/TEST"), PERM_DELETE_HANDLE, [value], no_lookup).allowed


@pytest.mark.parametrize(("vtype", "counts"), [(b"HS_ADMIN", True), (b"hs_admin", True), (b"HS_ADMIN.extra", True),
                                                (b"HS_ADMINX", False), (b"HS_ADMI", False), (b"URL", False)])
def test_hs_admin_type_uses_has_type(vtype: bytes, counts: bool) -> None:
    values = [admin(100, "300:0.NA/TEST", vtype=vtype)]
    assert find_admin(ref("300:0.NA/TEST"), PERM_ADD_VALUE, values, FakeWorld().lookup).allowed is counts


def test_hs_admin_vectors() -> None:
    path = VECTORS / "values" / "value_data.json"
    if not path.exists():
        pytest.skip(f"Java vectors not available ({path})")
    records = [r for r in json.loads(path.read_text()) if r["type"] == "HS_ADMIN"]
    assert records
    for rec in records:
        value = HandleValue(100, b"HS_ADMIN", bytes.fromhex(rec["data_hex"]))
        perms = sum(1 << i for i, c in enumerate(rec["perms12_in_AdminRecord_order"]) if c == "1")
        handle = rec["admin_handle"].encode()
        identity = Ref(handle.lower(), rec["admin_index"] or 7)  # index 0 records admit any index
        for bit in (1 << i for i in range(12)):
            out = find_admin(identity, bit, [value], FakeWorld().lookup)
            assert out.allowed is bool(perms & bit), (rec["description"], bit)
            assert out.matched_directly is out.allowed
        if perms:
            assert find_admin(identity, perms, [value], no_lookup).allowed
        assert not find_admin(Ref(handle + b"x", identity.index), 0, [value], FakeWorld().lookup).allowed


# --- auth.md 6.4: groups --------------------------------------------------------------------------------

def test_one_level_group() -> None:
    world = FakeWorld({b"TEST/group": [text_value(1), vlist(200, "300:TEST/user")]})
    out = find_admin(ref("300:test/user"), PERM_ADD_VALUE, [admin(100, "200:TEST/group")], world.lookup)
    assert out.allowed and not out.matched_directly
    assert world.calls == [(b"TEST/group", 200)]


def test_group_vector_members() -> None:
    path = VECTORS / "values" / "value_data.json"
    if not path.exists():
        pytest.skip(f"Java vectors not available ({path})")
    rec = next(r for r in json.loads(path.read_text()) if r["type"] == "HS_VLIST" and r.get("json"))
    data = bytes.fromhex(rec["data_hex"])
    assert decode_vlist(data)  # 300:0.NA/TEST, 200:TEST/admin-group, 0:TEST/user
    world = FakeWorld({b"TEST/g": [HandleValue(5, b"HS_VLIST", data)]})
    values = [admin(100, "5:TEST/g")]
    assert find_admin(ref("300:0.na/test"), PERM_ADD_VALUE, values, world.lookup).allowed
    assert find_admin(ref("77:TEST/user"), PERM_ADD_VALUE, values, world.lookup).allowed  # member index 0
    assert not find_admin(ref("301:0.NA/TEST"), PERM_ADD_VALUE, values, world.lookup).allowed
    assert not find_admin(ref("300:TEST/USER"), PERM_ADD_VALUE, values, world.lookup).allowed


def test_multi_level_groups() -> None:
    world = FakeWorld({
        b"TEST/g1": [vlist(1, "1:TEST/g2", "5:TEST/other")],
        b"TEST/g2": [vlist(1, "2:TEST/g3")],
        b"TEST/g3": [vlist(2, "300:TEST/deep")],
    })
    out = find_admin(ref("300:TEST/deep"), PERM_DELETE_HANDLE, [admin(100, "1:TEST/g1")], world.lookup)
    assert out.allowed and not out.matched_directly
    assert world.calls == [(b"TEST/g1", 1), (b"TEST/g2", 1), (b"TEST/other", 5), (b"TEST/g3", 2)]  # breadth-first


def test_cycle_terminates_and_visits_each_group_once() -> None:
    world = FakeWorld({
        b"TEST/a": [vlist(1, "1:TEST/b", "1:test/a")],
        b"TEST/b": [vlist(1, "1:TEST/a", "1:TEST/b", "2:TEST/c")],
        b"TEST/c": [vlist(2, "1:TEST/a")],
    })
    out = find_admin(ref("300:TEST/x"), PERM_ADD_VALUE, [admin(100, "1:TEST/a"), admin(101, "1:TEST/b")],
                     world.lookup)
    assert not out.allowed and not out.visit_limit_reached
    assert world.calls == [(b"TEST/a", 1), (b"TEST/b", 1), (b"TEST/c", 2)]
    assert out.visited == (Ref(b"TEST/a", 1), Ref(b"TEST/b", 1), Ref(b"TEST/c", 2))


def test_queue_equality_ignores_prefix_case_only() -> None:
    world = FakeWorld({b"TEST/g": [vlist(1, "1:test/g", "1:TEST/G")], b"TEST/G": [vlist(1)]})
    find_admin(ref("300:TEST/x"), PERM_ADD_VALUE, [admin(100, "1:TEST/g")], world.lookup)
    assert world.calls == [(b"TEST/g", 1), (b"TEST/G", 1)]


def test_group_reference_with_index_zero_is_not_expanded() -> None:
    world = FakeWorld({b"TEST/group": [vlist(200, "300:TEST/user"), vlist(0, "300:TEST/user")],
                       b"TEST/g1": [vlist(1, "0:TEST/group")]})
    out = find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "0:TEST/group")], world.lookup)
    assert not out.allowed
    assert world.calls == []
    out = find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g1")], world.lookup)
    assert not out.allowed
    assert world.calls == [(b"TEST/g1", 1)]
    assert Ref(b"TEST/group", 0) in out.visited


def test_member_with_index_zero_matches_any_identity_index() -> None:
    world = FakeWorld({b"TEST/g": [vlist(1, "0:TEST/user")]})
    assert find_admin(ref("42:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g")], world.lookup).allowed


def test_failing_lookups_contribute_nothing() -> None:
    world = FakeWorld(
        {b"TEST/good": [vlist(1, "300:TEST/user")],
         b"TEST/bad-data": [HandleValue(1, b"HS_VLIST", b"\x00\x00\x00\x09")],
         b"TEST/not-vlist": [HandleValue(1, b"URL", encode_vlist([ref("300:TEST/user")]))]},
        failing={b"TEST/none": None, b"TEST/raises": ProtocolError(ResponseCode.ERROR, "down"),
                 b"TEST/storage": StorageError("disk")})
    groups = ["1:TEST/none", "1:TEST/raises", "1:TEST/storage", "1:TEST/missing", "1:TEST/bad-data",
              "1:TEST/not-vlist", "2:TEST/good"]
    values = [admin(100 + i, g) for i, g in enumerate(groups)]
    assert not find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, values, world.lookup).allowed
    assert world.calls == [(ref(g).handle, ref(g).index) for g in groups]  # every branch was tried
    values.append(admin(200, "1:TEST/good"))
    assert find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, values, world.lookup).allowed


def test_values_of_other_indexes_from_a_lookup_are_ignored() -> None:
    def lookup(handle: bytes, index: int) -> Sequence[HandleValue]:
        return [vlist(9, "300:TEST/user")]

    assert not find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g")], lookup).allowed


@pytest.mark.parametrize("vtype", [b"HS_VLIST", b"hs_vlist", b"HS_VLIST.sub"])
def test_hs_vlist_type_uses_has_type(vtype: bytes) -> None:
    world = FakeWorld({b"TEST/g": [vlist(1, "300:TEST/user", vtype=vtype)]})
    assert find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g")], world.lookup).allowed


def test_groups_only_reached_through_records_with_the_bits() -> None:
    world = FakeWorld({b"TEST/g": [vlist(1, "300:TEST/user")]})
    values = [admin(100, "1:TEST/g", PERM_READ_VALUE)]
    assert not find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, values, world.lookup).allowed
    assert world.calls == []


def test_visit_limit_bounds_a_long_chain() -> None:
    n = DEFAULT_MAX_VISITS + 50
    world = FakeWorld({f"TEST/g{i}".encode(): [vlist(1, f"1:TEST/g{i + 1}")] for i in range(n)})
    world.handles[f"TEST/g{n}".encode()] = [vlist(1, "300:TEST/user")]
    out = find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g0")], world.lookup)
    assert not out.allowed and out.visit_limit_reached
    assert len(world.calls) == DEFAULT_MAX_VISITS
    world.calls.clear()
    out = find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g0")], world.lookup,
                     max_visits=n + 1)
    assert out.allowed and not out.visit_limit_reached


def test_visit_limit_bounds_fan_out() -> None:
    members = [f"{i}:TEST/leaf" for i in range(1, 5001)]
    world = FakeWorld({b"TEST/wide": [vlist(1, *members)]})
    out = find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/wide")], world.lookup, max_visits=50)
    assert not out.allowed and out.visit_limit_reached
    assert len(world.calls) == 50


def test_members_are_checked_even_when_the_visit_limit_is_near() -> None:
    world = FakeWorld({b"TEST/g": [vlist(1, "1:TEST/x", "300:TEST/user")]})
    assert find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g")], world.lookup,
                      max_visits=1).allowed


# --- server_admin_full_access (6.3 step 4) --------------------------------------------------------------

def test_server_admin_full_access_direct() -> None:
    admins = parse_admin_list(["300:0.NA/ADMIN"])
    out = find_admin(ref("300:0.na/admin"), ALL_PERMISSIONS, [], no_lookup, server_admins=admins,
                     server_admin_full_access=True)
    assert out.allowed and out.matched_directly


def test_server_admin_full_access_index_zero_entry() -> None:
    admins = parse_admin_list(["0.NA/ADMIN"])
    assert find_admin(ref("301:0.NA/ADMIN"), PERM_ADD_HANDLE, [], no_lookup, server_admins=admins,
                      server_admin_full_access=True).allowed


def test_server_admin_full_access_via_group() -> None:
    world = FakeWorld({b"0.NA/ADMIN": [vlist(200, "300:TEST/user")]})
    admins = parse_admin_list(["200:0.NA/ADMIN"])
    out = find_admin(ref("300:TEST/user"), ALL_PERMISSIONS, [admin(100, "300:TEST/other")], world.lookup,
                     server_admins=admins, server_admin_full_access=True)
    assert out.allowed and not out.matched_directly


def test_server_admins_without_full_access_are_ignored() -> None:
    admins = parse_admin_list(["300:0.NA/ADMIN"])
    out = find_admin(ref("300:0.NA/ADMIN"), PERM_ADD_VALUE, [], no_lookup, server_admins=admins)
    assert not out.allowed and out.visited == ()


def test_full_access_falls_back_to_hs_admin() -> None:
    world = FakeWorld()
    admins = parse_admin_list(["300:0.NA/ADMIN"])
    out = find_admin(ref("300:TEST/user"), PERM_ADD_VALUE, [admin(100, "300:TEST/user", PERM_ADD_VALUE)],
                     world.lookup, server_admins=admins, server_admin_full_access=True)
    assert out.allowed and out.matched_directly
    assert world.calls == [(b"0.NA/ADMIN", 300)]  # the server admins' groups were searched first


# --- the list-based check -------------------------------------------------------------------------------

LIST_CASES = [
    (["300:0.NA/ADMIN"], "300:0.na/admin", True, True),
    (["0.NA/ADMIN"], "7:0.NA/ADMIN", True, True),
    (["300:0.NA/ADMIN"], "0:0.NA/ADMIN", False, False),
    (["300:0.NA/ADMIN", "1:TEST/repl"], "300:TEST/user", True, False),  # via the group TEST/repl
    (["0:TEST/repl"], "300:TEST/user", False, False),  # index 0 entries are not expanded
    ([], "300:0.NA/ADMIN", False, False),
]


@pytest.mark.parametrize(("entries", "identity", "allowed", "direct"), LIST_CASES)
def test_find_in_list(entries: list[str], identity: str, allowed: bool, direct: bool) -> None:
    world = FakeWorld({b"TEST/repl": [vlist(1, "300:TEST/user"), vlist(0, "300:TEST/user")]})
    out = find_in_list(ref(identity), parse_admin_list(entries), world.lookup)
    assert (out.allowed, out.matched_directly) == (allowed, direct)


def test_find_in_list_multi_level_and_limit() -> None:
    world = FakeWorld({b"TEST/a": [vlist(1, "1:TEST/b")], b"TEST/b": [vlist(1, "300:TEST/user", "1:TEST/a")]})
    entries = parse_admin_list(["1:TEST/a"])
    assert find_in_list(ref("300:TEST/user"), entries, world.lookup).allowed
    out = find_in_list(ref("300:TEST/user"), entries, world.lookup, max_visits=1)
    assert not out.allowed and out.visit_limit_reached


# --- auth.md 6.6: identity index 0 ----------------------------------------------------------------------

def test_index_zero_rule_direct_reference() -> None:
    out = find_admin(ref("0:0.NA/TEST"), PERM_ADD_VALUE, [admin(100, "300:0.NA/TEST")], FakeWorld().lookup)
    assert not out.allowed
    assert index_zero_allows(out, b"0.na/test", 300)
    assert not index_zero_allows(out, b"0.NA/TEST", 301)
    assert not index_zero_allows(out, b"0.NA/OTHER", 300)


def test_index_zero_rule_visited_group_reference() -> None:
    world = FakeWorld({b"TEST/g": [vlist(1, "2:TEST/g2")], b"TEST/g2": [vlist(2, "301:TEST/user")]})
    out = find_admin(ref("0:TEST/user"), PERM_ADD_VALUE, [admin(100, "1:TEST/g")], world.lookup)
    assert not out.allowed
    assert index_zero_allows(out, b"test/g2", 2)  # visited (prefix case ignored)
    assert not index_zero_allows(out, b"TEST/G2", 2)  # suffix case matters
    # The member 301:TEST/user did not match index 0, so it was queued and visited (its lookup found no
    # group): a key at index 301 of TEST/user therefore proves the identity (the point of the 6.6 rule).
    assert index_zero_allows(out, b"TEST/user", 301)
    assert not index_zero_allows(out, b"TEST/user", 302)


def test_index_zero_rule_ignores_records_without_the_bits() -> None:
    out = find_admin(ref("0:0.NA/TEST"), PERM_ADD_VALUE, [admin(100, "300:0.NA/TEST", PERM_READ_VALUE)],
                     FakeWorld().lookup)
    assert not index_zero_allows(out, b"0.NA/TEST", 300)


def test_index_zero_rule_server_admins() -> None:
    out = find_admin(ref("0:0.NA/ADMIN"), PERM_ADD_VALUE, [], FakeWorld().lookup,
                     server_admins=parse_admin_list(["300:0.NA/ADMIN"]), server_admin_full_access=True)
    assert not out.allowed
    assert index_zero_allows(out, b"0.NA/ADMIN", 300)


def test_index_zero_rule_list_check() -> None:
    out = find_in_list(ref("0:0.NA/ADMIN"), parse_admin_list(["300:0.NA/ADMIN"]), FakeWorld().lookup)
    assert not out.allowed and index_zero_allows(out, b"0.NA/ADMIN", 300)


# --- required bits (6.2, 6.5) ---------------------------------------------------------------------------

ADM = admin(100, "300:0.NA/TEST")
ADM2 = admin(100, "301:0.NA/TEST")
URL = text_value(1, b"http://a")
URL2 = text_value(1, b"http://b")
URL_PW = text_value(1, b"http://a", permissions=PUBLIC_WRITE)
URL_PW2 = text_value(1, b"http://b", permissions=PUBLIC_WRITE)
ADM_AS_1 = admin(1, "300:0.NA/TEST")
ADM_PW = HandleValue(100, b"HS_ADMIN", ADM.data, PUBLIC_WRITE)
ADM_SUB = admin(100, "300:0.NA/TEST", vtype=b"HS_ADMIN.x")

MODIFY_CASES = [
    ("admin -> admin", [(ADM, ADM2)], PERM_MODIFY_ADMIN),
    ("admin -> same admin", [(ADM, ADM)], PERM_MODIFY_ADMIN),
    ("public-write admin -> admin", [(ADM_PW, ADM2)], PERM_MODIFY_ADMIN),
    ("admin subtype -> admin", [(ADM_SUB, ADM2)], PERM_MODIFY_ADMIN),
    ("admin -> non-admin", [(ADM, text_value(100))], PERM_REMOVE_ADMIN | PERM_MODIFY_VALUE),
    ("non-admin -> admin", [(URL, ADM_AS_1)], PERM_MODIFY_VALUE | PERM_ADD_ADMIN),
    ("public-write non-admin -> admin", [(URL_PW, ADM_AS_1)], PERM_MODIFY_VALUE | PERM_ADD_ADMIN),
    ("non-admin -> non-admin", [(URL, URL2)], PERM_MODIFY_VALUE),
    ("public-write non-admin -> non-admin", [(URL_PW, URL2)], 0),
    ("union", [(URL, URL2), (ADM, ADM2)], PERM_MODIFY_VALUE | PERM_MODIFY_ADMIN),
    ("nothing", [], 0),
]


@pytest.mark.parametrize(("name", "pairs", "bits"), MODIFY_CASES, ids=[c[0] for c in MODIFY_CASES])
def test_bits_for_modify(name: str, pairs: list[tuple[HandleValue, HandleValue]], bits: int) -> None:
    assert bits_for_modify(pairs) == bits


REMOVE_CASES = [
    ("admin", [ADM], PERM_REMOVE_ADMIN),
    ("admin subtype", [ADM_SUB], PERM_REMOVE_ADMIN),
    ("value", [URL], PERM_REMOVE_VALUE),
    ("both", [URL, ADM], PERM_REMOVE_ADMIN | PERM_REMOVE_VALUE),
    ("public-write value still needs the bit", [URL_PW], PERM_REMOVE_VALUE),
    ("nothing", [], 0),
]


@pytest.mark.parametrize(("name", "removed", "bits"), REMOVE_CASES, ids=[c[0] for c in REMOVE_CASES])
def test_bits_for_remove(name: str, removed: list[HandleValue], bits: int) -> None:
    assert bits_for_remove(removed) == bits


ADD_CASES = [
    ("new value", [ADM], [text_value(2)], False, PERM_ADD_VALUE),
    ("new admin", [URL], [ADM], False, PERM_ADD_ADMIN),
    ("new admin subtype", [URL], [ADM_SUB], False, PERM_ADD_ADMIN),
    ("both new", [], [URL, ADM], False, PERM_ADD_VALUE | PERM_ADD_ADMIN),
    ("overwrite value", [URL, ADM], [URL2], True, PERM_MODIFY_VALUE),
    ("overwrite public-write value", [URL_PW], [URL_PW2], True, 0),
    ("overwrite admin", [ADM], [ADM2], True, PERM_MODIFY_ADMIN),
    ("overwrite admin with value", [ADM], [text_value(100)], True, PERM_REMOVE_ADMIN | PERM_MODIFY_VALUE),
    ("overwrite value with admin", [URL], [ADM_AS_1], True, PERM_MODIFY_VALUE | PERM_ADD_ADMIN),
    ("overwrite identical but timestamp", [URL], [URL.with_timestamp(123)], True, 0),
    ("overwrite identical admin", [ADM.with_timestamp(5)], [ADM.with_timestamp(9)], True, 0),
    ("overwrite differs in permissions", [URL], [URL_PW], True, PERM_MODIFY_VALUE),
    ("overwrite plus new", [URL], [URL.with_timestamp(9), text_value(3), ADM], True, PERM_ADD_VALUE | PERM_ADD_ADMIN),
    ("existing index without overwrite counts as an addition", [URL], [URL2], False, PERM_ADD_VALUE),
]


@pytest.mark.parametrize(("name", "existing", "new", "overwrite", "bits"), ADD_CASES, ids=[c[0] for c in ADD_CASES])
def test_bits_for_add(name: str, existing: list[HandleValue], new: list[HandleValue], overwrite: bool,
                      bits: int) -> None:
    assert bits_for_add(existing, new, overwrite) == bits


CREATE_OVERWRITE_CASES = [
    ("identical", [URL, ADM], [URL.with_timestamp(7), ADM.with_timestamp(8)], 0),
    ("drop a value", [URL, ADM], [ADM], PERM_REMOVE_VALUE),
    ("drop the admin", [URL, ADM], [URL], PERM_REMOVE_ADMIN),
    ("new value", [ADM], [ADM, text_value(2)], PERM_ADD_VALUE),
    ("new admin", [URL], [URL, admin(101, "300:X/y")], PERM_ADD_ADMIN),
    ("change value", [URL, ADM], [URL2, ADM], PERM_MODIFY_VALUE),
    ("change public-write value", [URL_PW, ADM], [URL_PW2, ADM], 0),
    ("change admin", [URL, ADM], [URL, ADM2], PERM_MODIFY_ADMIN),
    ("admin to value", [ADM], [text_value(100)], PERM_REMOVE_ADMIN | PERM_MODIFY_VALUE),
    ("value to admin", [URL], [ADM_AS_1], PERM_MODIFY_VALUE | PERM_ADD_ADMIN),
    ("replace everything", [URL, ADM], [text_value(5), admin(6, "300:X/y")],
     PERM_REMOVE_VALUE | PERM_REMOVE_ADMIN | PERM_ADD_VALUE | PERM_ADD_ADMIN),
    ("empty to empty", [], [], 0),
]


@pytest.mark.parametrize(("name", "existing", "new", "bits"), CREATE_OVERWRITE_CASES,
                         ids=[c[0] for c in CREATE_OVERWRITE_CASES])
def test_bits_for_create_overwrite(name: str, existing: list[HandleValue], new: list[HandleValue], bits: int) -> None:
    assert bits_for_create_overwrite(existing, new) == bits


ANONYMOUS_CASES = [
    ("public-write values", [(URL_PW, URL_PW2), (text_value(2, permissions=PUBLIC_WRITE), text_value(2))], True),
    ("no pairs", [], True),
    ("one value lacks public-write", [(URL_PW, URL_PW2), (URL, URL2)], False),
    ("old is HS_ADMIN", [(ADM_PW, URL_PW)], False),
    ("new is HS_ADMIN", [(URL_PW, ADM_AS_1)], False),
    ("new is an HS_ADMIN subtype", [(URL_PW, admin(1, "300:X/y", vtype=b"hs_admin.z"))], False),
]


@pytest.mark.parametrize(("name", "pairs", "allowed"), ANONYMOUS_CASES, ids=[c[0] for c in ANONYMOUS_CASES])
def test_modify_allowed_anonymously(name: str, pairs: list[tuple[HandleValue, HandleValue]], allowed: bool) -> None:
    assert modify_allowed_anonymously(pairs) is allowed


def test_list_handles_bit_is_just_another_bit() -> None:
    values = [admin(100, "300:0.NA/TEST", PERM_LIST_HANDLES)]
    assert find_admin(ref("300:0.NA/TEST"), PERM_LIST_HANDLES, values, no_lookup).allowed
    assert not find_admin(ref("300:0.NA/TEST"), PERM_ADD_HANDLE, values, FakeWorld().lookup).allowed

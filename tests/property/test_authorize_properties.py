"""find_admin/find_in_list against a simple reference model over random group graphs; no crash on bad bytes."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from hdlserver.auth.authorize import ValueLookup, find_admin, find_in_list, index_zero_allows, references_match
from hdlserver.wire.valuedata import (
    ALL_PERMISSIONS,
    PERM_ADD_ADMIN,
    PERM_ADD_VALUE,
    AdminRecord,
    encode_admin,
    encode_vlist,
)
from hdlserver.wire.values import HandleValue, ValueReference

# Handles that collide under prefix case folding, differ only in the suffix's case, or are global (0.).
HANDLES = [b"G/a", b"g/a", b"G/A", b"0.NA/x", b"0.na/X", b"U/u", b"u/U", b"plain", b"PLAIN"]
refs = st.builds(ValueReference, st.sampled_from(HANDLES), st.integers(0, 2))


def model_key(handle: bytes) -> tuple[str, str]:
    """Independent statement of values.md 1.5: (folded prefix part, exact rest)."""
    text = handle.decode("ascii")
    if text.startswith("0."):
        return text.upper(), ""
    prefix, slash, rest = text.partition("/")
    return prefix.upper(), slash + rest


def model_match(entry: ValueReference, identity: ValueReference) -> bool:
    return model_key(entry.handle) == model_key(identity.handle) and entry.index in (0, identity.index)


# A "world": for each (folded handle, index) what the lookup returns -- a member list, garbage or a failure.
vlist_content = st.lists(refs, min_size=1, max_size=4).map(lambda members: ("vlist", members))
group_content = st.one_of(*[vlist_content] * 4, st.just(("garbage", [])), st.just(("fail", [])))
worlds = st.dictionaries(st.tuples(st.sampled_from(HANDLES), st.integers(1, 2)), group_content, max_size=18)


World = dict[tuple[bytes, int], tuple[str, list[ValueReference]]]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[World, list[ValueReference], ValueReference]:
    """A world, entry references and an identity, biased so that entries name the world's groups and the
    identity is often some group's member (else reaching a match through groups would be rare)."""
    world = draw(worlds)
    groups = [ValueReference(h, i) for h, i in world]
    if groups:
        entries = draw(st.lists(st.one_of(refs, st.sampled_from(groups), st.sampled_from(groups)), max_size=4))
    else:
        entries = draw(st.lists(refs, max_size=4))
    members = reachable_members(world, entries)
    identity = draw(st.one_of(refs, *[st.sampled_from(members)] * 3) if members else refs)
    return world, entries, identity


def reachable_members(world: World, entries: Sequence[ValueReference]) -> list[ValueReference]:
    by_key = {(model_key(h), i): content for (h, i), content in world.items()}
    seen: set[tuple[tuple[str, str], int]] = set()
    members: list[ValueReference] = []
    stack = [r for r in entries if r.index != 0]
    while stack:
        group = stack.pop()
        key = (model_key(group.handle), group.index)
        if key in seen:
            continue
        seen.add(key)
        kind, found = by_key.get(key, ("fail", []))
        if kind == "vlist":
            members.extend(found)
            stack.extend(m for m in found if m.index != 0)
    return members


def make_lookup(world: World, calls: list[tuple[bytes, int]]) -> ValueLookup:
    by_key = {(model_key(h), i): content for (h, i), content in world.items()}

    def lookup(handle: bytes, index: int) -> Sequence[HandleValue] | None:
        calls.append((handle, index))
        kind, members = by_key.get((model_key(handle), index), ("fail", []))
        if kind == "fail":
            return None
        if kind == "garbage":
            return [HandleValue(index, b"HS_VLIST", b"\xff\xff")]
        return [HandleValue(index, b"HS_VLIST", encode_vlist(members))]

    return lookup


def model_reachable(world: World, starts: Sequence[ValueReference], identity: ValueReference) -> bool:
    """Is the identity a member of some group reachable from ``starts`` (a closure, no ordering)?"""
    return any(model_match(m, identity) for m in reachable_members(world, starts))


# Permission masks and required bits biased towards overlapping, so that both outcomes are common.
masks = st.one_of(st.just(ALL_PERMISSIONS), st.sampled_from([0, PERM_ADD_VALUE, PERM_ADD_VALUE | PERM_ADD_ADMIN]),
                  st.integers(0, 0xFFFF))
required_bits = st.one_of(st.sampled_from([0, PERM_ADD_VALUE, PERM_ADD_VALUE | PERM_ADD_ADMIN]),
                          st.integers(0, ALL_PERMISSIONS))


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios(), perms=st.lists(masks, min_size=4, max_size=4), required=required_bits)
def test_find_admin_agrees_with_model(scenario: tuple[World, list[ValueReference], ValueReference], perms: list[int],
                                      required: int) -> None:
    world, entries, identity = scenario
    admins = list(zip(entries, perms, strict=False))
    values = [HandleValue(100 + n, b"HS_ADMIN", encode_admin(AdminRecord(perms, r.handle, r.index)))
              for n, (r, perms) in enumerate(admins)]
    eligible = [r for r, perms in admins if perms & required == required]
    calls: list[tuple[bytes, int]] = []
    out = find_admin(identity, required, values, make_lookup(world, calls))
    direct = any(model_match(r, identity) for r in eligible)
    assert out.allowed == (direct or model_reachable(world, eligible, identity))
    assert out.matched_directly == direct
    assert not out.visit_limit_reached
    # Each distinct group (folded handle, index) is looked up at most once, and never an index-0 reference.
    keys = [(model_key(h), i) for h, i in calls]
    assert len(keys) == len(set(keys))
    assert all(i != 0 for _, i in calls)
    if not out.allowed:
        for r in eligible:  # every direct candidate is kept for the identity-index-0 rule
            assert index_zero_allows(out, r.handle, r.index)


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios())
def test_find_in_list_agrees_with_model(scenario: tuple[World, list[ValueReference], ValueReference]) -> None:
    world, entries, identity = scenario
    out = find_in_list(identity, entries, make_lookup(world, []))
    direct = any(model_match(r, identity) for r in entries)
    assert out.allowed == (direct or model_reachable(world, entries, identity))


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), server_full=st.booleans())
def test_server_admins_full_access_agrees_with_model(scenario: tuple[World, list[ValueReference], ValueReference],
                                                     server_full: bool) -> None:
    world, entries, identity = scenario
    out = find_admin(identity, ALL_PERMISSIONS, [], make_lookup(world, []), server_admins=entries,
                     server_admin_full_access=server_full)
    expected = server_full and (any(model_match(r, identity) for r in entries)
                                or model_reachable(world, entries, identity))
    assert out.allowed == expected


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), limit=st.integers(0, 5))
def test_visit_limit_is_respected(scenario: tuple[World, list[ValueReference], ValueReference], limit: int) -> None:
    world, entries, identity = scenario
    calls: list[tuple[bytes, int]] = []
    out = find_in_list(identity, entries, make_lookup(world, calls), max_visits=limit)
    assert len(calls) <= limit
    if out.allowed:  # the bound can only turn a yes into a no, never the reverse
        assert find_in_list(identity, entries, make_lookup(world, [])).allowed


@given(entry=refs, identity=refs)
def test_references_match_agrees_with_model(entry: ValueReference, identity: ValueReference) -> None:
    assert references_match(entry, identity) == model_match(entry, identity)


def mangled(encoded: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, and valid encodings cut short or with bytes appended (closer to the decoders' edges)."""
    return st.one_of(
        st.binary(max_size=60),
        st.tuples(encoded, st.integers(0, 60)).map(lambda t: t[0][: t[1]]),
        st.tuples(encoded, st.binary(min_size=1, max_size=4)).map(lambda t: t[0] + t[1]),
    )


admin_bytes = mangled(st.builds(lambda r, p: encode_admin(AdminRecord(p, r.handle, r.index)), refs,
                                st.integers(0, 0xFFFF)))
vlist_bytes = mangled(st.lists(refs, max_size=4).map(encode_vlist))
value_types = st.sampled_from([b"HS_ADMIN", b"hs_admin.x", b"HS_VLIST"])


@settings(max_examples=300, deadline=None)
@given(admin_data=st.lists(st.tuples(value_types, admin_bytes), max_size=5), group_data=vlist_bytes,
       identity=refs, required=st.integers(0, 0xFFFF))
def test_random_bytes_never_raise(admin_data: list[tuple[bytes, bytes]], group_data: bytes, identity: ValueReference,
                                  required: int) -> None:
    values = [HandleValue(n + 1, t, d) for n, (t, d) in enumerate(admin_data)]
    values.append(HandleValue(99, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, b"G/a", 1))))

    def lookup(handle: bytes, index: int) -> Sequence[HandleValue]:
        return [HandleValue(index, b"HS_VLIST", group_data), HandleValue(index, b"HS_ADMIN", group_data)]

    out = find_admin(identity, required, values, lookup, max_visits=20)
    assert isinstance(out.allowed, bool)

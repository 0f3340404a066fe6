"""LIST_HANDLES (105) and LIST_HOMED_NAS (302) (hdlserver.core.listing) over a real LMDB store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_fakes import AUTHENTICATE, Env, FakeAuthorizer, refused

from hdlserver.core.handler_api import AuthenticationNeeded, HandlerResult
from hdlserver.core.listing import (
    NAMES_PER_PART,
    list_handles,
    list_homed_nas,
    normalize_list_argument,
    split_into_parts,
)
from hdlserver.errors import StorageError
from hdlserver.store.lmdb_store import LmdbStore, open_store
from hdlserver.wire.bodies import ListHandlesRequest, ListHandlesResponse, ListHomedNAsRequest, ListHomedNAsResponse
from hdlserver.wire.valuedata import PERM_LIST_HANDLES


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    store = open_store(tmp_path, case_sensitive=False, sync=False)
    yield Env(store)
    store.close()


def names_of(result: HandlerResult) -> list[list[bytes]]:
    return [list(part.handles) for part in result.parts]  # type: ignore[attr-defined]


# --- parts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("count,sizes", [
    (0, [0]), (1, [1]), (49, [49]), (50, [50]), (51, [50, 1]), (100, [50, 50]), (101, [50, 50, 1]),
])
def test_parts_of_fifty(count: int, sizes: list[int]) -> None:
    names = [f"n{i:03d}".encode() for i in range(count)]
    parts = split_into_parts(iter(names), ListHandlesResponse)
    assert [len(p.handles) for p in parts] == sizes
    assert [n for p in parts for n in p.handles] == names
    assert NAMES_PER_PART == 50


# --- LIST_HANDLES (105) ---------------------------------------------------------------------------


@pytest.mark.parametrize("count,sizes", [(0, [0]), (1, [1]), (50, [50]), (51, [50, 1]), (100, [50, 50])])
def test_list_handles_in_parts(env: Env, count: int, sizes: list[int]) -> None:
    env.store.create_handles((f"test/h{i:03d}".encode(), ()) for i in range(count))
    env.store.create_handle(b"TESTX/other", ())  # another prefix that merely starts alike
    auth = FakeAuthorizer()
    result = list_handles(ListHandlesRequest(b"0.NA/TEST"), env.ctx(auth))
    assert result.response_code == 1
    assert all(isinstance(p, ListHandlesResponse) for p in result.parts)
    assert result.body == result.parts[0]
    assert [len(p) for p in names_of(result)] == sizes
    assert [n for p in names_of(result) for n in p] == [f"TEST/H{i:03d}".encode() for i in range(count)]
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_LIST_HANDLES, env.prefix_values)]


@pytest.mark.parametrize("argument", [b"test", b"TEST", b"0.na/test", b"0.NA/TEST"])
def test_list_argument_forms(env: Env, argument: bytes) -> None:
    env.store.create_handle(b"TEST/a", ())
    assert names_of(list_handles(ListHandlesRequest(argument), env.ctx())) == [[b"TEST/A"]]


@pytest.mark.parametrize("argument,case_sensitive,expected", [
    (b"test", False, b"0.NA/TEST"),
    (b"test", True, b"0.NA/TEST"),
    (b"0.na/test", False, b"0.NA/TEST"),
    (b"0.na/test", True, b"0.NA/TEST"),  # global 0. handles are folded entirely
    (b"0.na/0.na/abc", True, b"0.NA/0.NA/ABC"),
    (b"abc/Def", True, b"ABC/Def"),
    (b"abc/Def", False, b"ABC/DEF"),
])
def test_normalize_list_argument(argument: bytes, case_sensitive: bool, expected: bytes) -> None:
    assert normalize_list_argument(argument, case_sensitive) == expected


def test_list_handles_disabled_comes_first(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    refused(5, "This server does not support the list handles operation.",
            lambda: list_handles(ListHandlesRequest(b"0.NA/NOT-HERE"), env.ctx(auth, allow_list_hdls=False)))
    assert auth.calls == []


def test_list_handles_of_a_prefix_not_homed(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    refused(301, "That prefix doesn't live here", lambda: list_handles(ListHandlesRequest(b"OTHER"), env.ctx(auth)))
    refused(301, "That prefix doesn't live here",
            lambda: list_handles(ListHandlesRequest(b"0.NA/0.NA/TEST"), env.ctx(auth)))
    assert auth.calls == []


def test_list_handles_challenges_after_the_checks(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    with pytest.raises(AuthenticationNeeded):
        list_handles(ListHandlesRequest(b"TEST"), env.ctx(auth))
    assert auth.calls == [AUTHENTICATE]


def test_list_derived_prefix_handles(env: Env) -> None:
    env.homed.home(b"0.NA/0.NA")
    env.store.create_handles([(b"0.NA/TEST.B", ()), (b"0.NA/test.a", ()), (b"0.NA/TESTX", ()), (b"TEST/x", ())])
    auth = FakeAuthorizer()
    result = list_handles(ListHandlesRequest(b"0.na/0.na/test"), env.ctx(auth))
    assert names_of(result) == [[b"0.NA/TEST.A", b"0.NA/TEST.B"]]
    # Java asks the HS_ADMIN values of the argument itself, a handle that is normally not stored.
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_LIST_HANDLES, ())]


def test_list_handles_without_prefix_admins(env: Env) -> None:
    auth = FakeAuthorizer()
    list_handles(ListHandlesRequest(b"TEST"), env.ctx(auth, allow_na_admins=False))
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_LIST_HANDLES, ())]


def test_list_handles_refused(env: Env) -> None:
    refused(400, "", lambda: list_handles(ListHandlesRequest(b"TEST"), env.ctx(FakeAuthorizer(refuse_all=400))))


def test_list_handles_when_the_prefix_handle_is_not_stored(env: Env) -> None:
    env.homed.home(b"0.NA/BARE")
    auth = FakeAuthorizer(refuse_all=400)
    refused(400, "", lambda: list_handles(ListHandlesRequest(b"BARE"), env.ctx(auth)))
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_LIST_HANDLES, ())]


class FailingLookups:
    """The real store, except that reading values fails."""

    def __init__(self, store: LmdbStore) -> None:
        self.store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def get_values(self, handle: bytes) -> None:
        raise StorageError("disk on fire")


def test_list_handles_lookup_failure_is_406_unless_otherwise_granted(env: Env) -> None:
    failing = FailingLookups(env.store)
    auth = FakeAuthorizer(refuse_all=400)
    refused(406, "", lambda: list_handles(ListHandlesRequest(b"TEST"), env.ctx(auth, store=failing)))
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_LIST_HANDLES, ())]
    env.store.create_handle(b"TEST/a", ())
    granted = list_handles(ListHandlesRequest(b"TEST"), env.ctx(store=failing))  # e.g. a server admin
    assert names_of(granted) == [[b"TEST/A"]]


# --- LIST_HOMED_NAS (302) -------------------------------------------------------------------------


def test_list_homed_prefixes(env: Env) -> None:
    for i in range(50):
        env.homed.home(f"P{i:02d}".encode())
    auth = FakeAuthorizer()
    result = list_homed_nas(ListHomedNAsRequest(b"/"), env.ctx(auth))
    assert all(isinstance(p, ListHomedNAsResponse) for p in result.parts)
    assert names_of(result) == [[f"0.NA/P{i:02d}".encode() for i in range(50)], [b"0.NA/TEST"]]
    assert auth.calls == [AUTHENTICATE, ("check_server_list", ("server_admins", "home_only_admins"))]


def test_list_homed_prefixes_none(env: Env) -> None:
    env.homed.unhome(b"TEST")
    assert names_of(list_homed_nas(ListHomedNAsRequest(b"/"), env.ctx())) == [[]]


def test_list_homed_prefixes_needs_authentication_and_a_listed_admin(env: Env) -> None:
    with pytest.raises(AuthenticationNeeded):
        list_homed_nas(ListHomedNAsRequest(b"/"), env.ctx(FakeAuthorizer(authenticated=False)))
    refused(400, "", lambda: list_homed_nas(ListHomedNAsRequest(b"/"), env.ctx(FakeAuthorizer(refuse_all=400))))

"""Administrative operations 100-104 and 300/301 (hdlserver.core.admin_ops) over a real LMDB store.

The Authorizer is a fake that records its calls, so the tests see which permission bits each case asks
for and whether the challenge comes before or after each check.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from admin_fakes import AUTHENTICATE, NOW, OLD, Env, FakeAuthorizer, admin, refused

from hdlserver.core import admin_ops
from hdlserver.core.admin_ops import (
    OPERATION_HANDLERS,
    add_value,
    create_handle,
    delete_handle,
    home_na,
    is_java_valid_utf8,
    modify_value,
    remove_value,
    unhome_na,
)
from hdlserver.core.handler_api import AuthenticationNeeded, HandlerResult
from hdlserver.core.listing import list_handles, list_homed_nas
from hdlserver.store.base import TXN_ADD_HANDLE, TXN_HOME_NA, TXN_MODIFY_HANDLE, TXN_UNHOME_NA, ReadOnlyStoreError
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.bodies import (
    AddValueRequest,
    CreateHandleRequest,
    CreateHandleResponse,
    DeleteHandleRequest,
    GenericSuccessResponse,
    HomeNARequest,
    ModifyValueRequest,
    RemoveValueRequest,
    UnhomeNARequest,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.handles import HASH_BY_ALL, server_position
from hdlserver.wire.site import ServerInfo, SiteInfo
from hdlserver.wire.valuedata import (
    PERM_ADD_ADMIN,
    PERM_ADD_DERIVED_PREFIX,
    PERM_ADD_HANDLE,
    PERM_ADD_VALUE,
    PERM_DELETE_HANDLE,
    PERM_MODIFY_ADMIN,
    PERM_MODIFY_VALUE,
    PERM_REMOVE_ADMIN,
    PERM_REMOVE_VALUE,
)
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, PERM_PUBLIC_READ, PERM_PUBLIC_WRITE, HandleValue

HOME_ADMINS = ("check_server_list", ("server_admins", "home_only_admins"))


def url(index: int, text: str = "https://example.org/", *, ts: int = 0, perms: int = 0x0E) -> HandleValue:
    return HandleValue(index, b"URL", text.encode(), permissions=perms, timestamp=ts)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    store = open_store(tmp_path, case_sensitive=False, sync=False)
    yield Env(store)
    store.close()


class Unchanged:
    """Asserts that a rejected request left the record and the transaction log exactly as they were."""

    def __init__(self, env: Env, handle: bytes) -> None:
        self.env, self.handle = env, handle

    def __enter__(self) -> Unchanged:
        self.record = self.env.store.get_record(self.handle)
        self.txn = self.env.store.last_txn_id()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.env.store.get_record(self.handle) == self.record
        assert self.env.store.last_txn_id() == self.txn


def stored(env: Env, handle: bytes) -> tuple[HandleValue, ...]:
    values = env.store.get_values(handle)
    assert values is not None
    return values


# --- CREATE_HANDLE (100) --------------------------------------------------------------------------


def test_create_stores_request_order_with_timestamps_now(env: Env) -> None:
    auth = FakeAuthorizer()
    values = (url(5, ts=123), admin(100, ts=456), url(2))
    result = create_handle(CreateHandleRequest(b"test/Abc", values), env.ctx(auth))
    assert result == HandlerResult(ResponseCode.SUCCESS, CreateHandleResponse(b"test/Abc"), extra_flags=0)
    assert stored(env, b"TEST/ABC") == tuple(v.with_timestamp(NOW) for v in values)
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_ADD_HANDLE, env.prefix_values)]
    txn = list(env.store.transactions_since(0))[-1]
    assert (txn.action, txn.handle) == (TXN_ADD_HANDLE, b"TEST/ABC")


def test_create_with_zero_values(env: Env) -> None:
    create_handle(CreateHandleRequest(b"TEST/empty", ()), env.ctx())
    assert stored(env, b"TEST/EMPTY") == ()


def test_create_needs_a_homed_prefix(env: Env) -> None:
    auth = FakeAuthorizer()
    refused(301, "That prefix doesn't live here",
            lambda: create_handle(CreateHandleRequest(b"OTHER/x", (url(1),)), env.ctx(auth)))
    assert auth.calls == []
    assert not env.store.exists(b"OTHER/x")


def test_create_on_the_wrong_server_of_a_site(env: Env) -> None:
    env.site = SiteInfo(hash_option=HASH_BY_ALL, servers=(ServerInfo(1, bytes(16), b""), ServerInfo(2, bytes(16), b"")))
    handle = next(h for h in (f"TEST/{i}".encode() for i in range(100)) if server_position(h, HASH_BY_ALL, 2) == 1)
    refused(301, "Request was hashed incorrectly", lambda: create_handle(CreateHandleRequest(handle, ()), env.ctx()))
    env.position = 1
    create_handle(CreateHandleRequest(handle, ()), env.ctx())
    assert env.store.exists(handle)


@pytest.mark.parametrize("data,valid", [
    (b"TEST/plain", True),
    ("TEST/\u00e9\u4e2d\U0001f600".encode(), True),
    (b"TEST/\xed\xa0\x80", True),  # a UTF-8 encoded surrogate: Java's check accepts it
    (b"TEST/\xf4\x90\x80\x80", True),  # above U+10FFFF: accepted
    (b"TEST/\xf8\x88\x80\x80\x80", True),  # a five-byte form: accepted
    (b"TEST/\xfc\x84\x80\x80\x80\x80", True),  # a six-byte form: accepted
    (b"TEST/\xc0\x80", False),  # overlong two-byte NUL
    (b"TEST/\xc1\xbf", False),
    (b"TEST/\xe0\x80\x80", False),  # overlong three-byte form
    (b"TEST/\xf0\x80\x80\x80", False),  # overlong four-byte form
    (b"TEST/\xf8\x80\x80\x80\x80", False),
    (b"TEST/\xfc\x80\x80\x80\x80\x80", False),
    (b"TEST/\xe4\xb8", False),  # cut off at the end
    (b"TEST/\x80", False),  # a continuation byte without a lead
    (b"TEST/\xc3A", False),  # a lead byte without its continuation
    (b"TEST/\xfe", False),
    (b"TEST/\xff", False),
])
def test_java_permissive_utf8_check(data: bytes, valid: bool) -> None:
    assert is_java_valid_utf8(data) is valid


def test_create_rejects_invalid_utf8_before_the_challenge(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    refused(102, "Invalid UTF8 encoding",
            lambda: create_handle(CreateHandleRequest(b"TEST/\xc0\x80", (url(1),)), env.ctx(auth)))
    assert auth.calls == []


@pytest.mark.parametrize("indexes,code,message", [
    ((0,), 202, "Value indexes must be positive"),
    ((1, -5), 202, "Value indexes must be positive"),
    ((1, 1), 201, "Index conflict for 1"),
    ((1, 0, 1), 201, "Index conflict for 1"),  # value by value: index 1 has a later twin before 0 is seen
    ((0, 1, 1), 202, "Value indexes must be positive"),
    ((2, 3, 2, 3), 201, "Index conflict for 2"),
    ((3, 2, 2, 3), 201, "Index conflict for 3"),
])
def test_create_index_checks_in_java_order(env: Env, indexes: tuple[int, ...], code: int, message: str) -> None:
    auth = FakeAuthorizer(authenticated=False)
    refused(code, message,
            lambda: create_handle(CreateHandleRequest(b"TEST/idx", tuple(url(i) for i in indexes)), env.ctx(auth)))
    assert auth.calls == []
    assert not env.store.exists(b"TEST/idx")


def test_create_existing_without_overwrite_is_101_before_the_challenge(env: Env) -> None:
    env.store.create_handle(b"TEST/here", (url(1, ts=OLD),))
    auth = FakeAuthorizer(authenticated=False)
    with Unchanged(env, b"TEST/here"):
        refused(101, "", lambda: create_handle(CreateHandleRequest(b"test/HERE", (url(2),)), env.ctx(auth)))
    assert auth.calls == []


def test_create_challenges_after_the_checks(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    with pytest.raises(AuthenticationNeeded):
        create_handle(CreateHandleRequest(b"TEST/new", (url(1),)), env.ctx(auth))
    assert auth.calls == [AUTHENTICATE]
    assert not env.store.exists(b"TEST/new")


def test_create_refused_stores_nothing(env: Env) -> None:
    auth = FakeAuthorizer(refuse={PERM_ADD_HANDLE: 400})
    before = env.store.last_txn_id()
    refused(400, "", lambda: create_handle(CreateHandleRequest(b"TEST/new", (url(1),)), env.ctx(auth)))
    assert not env.store.exists(b"TEST/new")
    assert env.store.last_txn_id() == before


def test_create_without_prefix_admins(env: Env) -> None:
    auth = FakeAuthorizer()
    create_handle(CreateHandleRequest(b"TEST/x", ()), env.ctx(auth, allow_na_admins=False))
    assert auth.admin_checks() == [(PERM_ADD_HANDLE, ())]


def test_create_when_the_prefix_handle_is_not_stored(env: Env) -> None:
    env.homed.home(b"0.NA/NOPFX")
    auth = FakeAuthorizer()
    create_handle(CreateHandleRequest(b"NOPFX/x", ()), env.ctx(auth))
    assert auth.admin_checks() == [(PERM_ADD_HANDLE, ())]


def test_create_derived_prefix_needs_add_derived_prefix_on_the_parent(env: Env) -> None:
    env.homed.home(b"0.NA/0.NA/TEST")  # delegates the derived prefixes of TEST to this server
    parent_values = (admin(100, b"0.NA/TEST.A", 300, ts=OLD),)
    env.store.create_handle(b"0.NA/TEST.A", parent_values)
    auth = FakeAuthorizer()
    create_handle(CreateHandleRequest(b"0.NA/TEST.B", ()), env.ctx(auth))
    create_handle(CreateHandleRequest(b"0.na/test.a.b", ()), env.ctx(auth))
    assert auth.admin_checks() == [(PERM_ADD_DERIVED_PREFIX, env.prefix_values),
                                   (PERM_ADD_DERIVED_PREFIX, parent_values)]
    assert env.store.exists(b"0.NA/TEST.A.B")


def test_create_prefix_handle_without_dot_needs_add_handle_on_the_root(env: Env) -> None:
    env.homed.home(b"0.NA/0.NA")
    auth = FakeAuthorizer()
    create_handle(CreateHandleRequest(b"0.NA/NEW", ()), env.ctx(auth))
    assert auth.admin_checks() == [(PERM_ADD_HANDLE, ())]  # 0.NA/0.NA is not stored here


UUID_SUFFIX = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_mint_appends_a_lower_case_uuid4(env: Env) -> None:
    result = create_handle(CreateHandleRequest(b"TEST/doc-", (url(1),)), env.ctx(flags=OpFlag.MINT))
    assert isinstance(result.body, CreateHandleResponse) and result.body.handle is not None
    minted = result.body.handle
    assert minted.startswith(b"TEST/doc-") and UUID_SUFFIX.fullmatch(minted[len(b"TEST/doc-"):])
    assert result.extra_flags == OpFlag.MINT
    assert env.store.exists(minted)
    other = create_handle(CreateHandleRequest(b"TEST/doc-", ()), env.ctx(flags=OpFlag.MINT)).body
    assert isinstance(other, CreateHandleResponse) and other.handle != minted


def test_mint_retries_until_unused(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    taken, free = uuid.UUID(int=1, version=4), uuid.UUID(int=2, version=4)
    env.store.create_handle(f"TEST/{taken}".upper().encode(), ())  # case folding: upper-case stored form
    draws = iter([taken, taken, free])
    monkeypatch.setattr(admin_ops.uuid, "uuid4", lambda: next(draws))
    result = create_handle(CreateHandleRequest(b"TEST/", ()), env.ctx(flags=OpFlag.MINT))
    assert result.body == CreateHandleResponse(f"TEST/{free}".encode())


def test_mint_replaces_undecodable_bytes_and_checks_responsibility_on_the_result(env: Env) -> None:
    result = create_handle(CreateHandleRequest(b"TEST/\xff", ()), env.ctx(flags=OpFlag.MINT))
    assert isinstance(result.body, CreateHandleResponse) and result.body.handle is not None
    assert result.body.handle.startswith("TEST/\ufffd".encode())
    refused(301, "That prefix doesn't live here",
            lambda: create_handle(CreateHandleRequest(b"OTHER/", ()), env.ctx(flags=OpFlag.MINT)))


def test_mint_with_overwrite_echoes_mint_only(env: Env) -> None:
    result = create_handle(CreateHandleRequest(b"TEST/", ()), env.ctx(flags=OpFlag.MINT | OpFlag.OVRW))
    assert result.extra_flags == OpFlag.MINT


# CREATE with OVRW over an existing handle (auth.md 6.5)

EXISTING = (admin(100, ts=OLD), url(1, "https://old.example/", ts=OLD), url(2, "kept", ts=OLD))


def overwrite(env: Env, values: tuple[HandleValue, ...], auth: FakeAuthorizer, **config: object) -> HandlerResult:
    return create_handle(CreateHandleRequest(b"TEST/ovrw", values), env.ctx(auth, flags=OpFlag.OVRW, **config))


@pytest.fixture
def existing(env: Env) -> Env:
    env.store.create_handle(b"TEST/ovrw", EXISTING)
    return env


def test_overwrite_with_identical_values_keeps_timestamps_and_verifies_the_answer(existing: Env) -> None:
    auth = FakeAuthorizer()
    request = tuple(v.with_timestamp(0) for v in reversed(EXISTING))
    result = overwrite(existing, request, auth)
    assert result.extra_flags == OpFlag.OVRW
    assert result.body == CreateHandleResponse(b"TEST/ovrw")
    assert stored(existing, b"TEST/OVRW") == tuple(reversed(EXISTING))  # request order, old timestamps
    assert auth.calls == [AUTHENTICATE, ("verify_proof",)]
    txn = list(existing.store.transactions_since(0))[-1]
    assert txn.action == TXN_MODIFY_HANDLE


def test_overwrite_with_identical_values_and_anonymous_full_access(existing: Env) -> None:
    auth = FakeAuthorizer()
    overwrite(existing, EXISTING, auth, anonymous_admin_full_access=True)
    assert auth.calls == [AUTHENTICATE]


def test_overwrite_asks_the_changes_bits_over_the_existing_values(existing: Env) -> None:
    auth = FakeAuthorizer()
    request = (url(2, "kept"), url(1, "https://new.example/"), admin(100), url(3, "added"))
    overwrite(existing, request, auth)
    assert auth.admin_checks() == [(PERM_MODIFY_VALUE | PERM_ADD_VALUE, EXISTING)]
    assert stored(existing, b"TEST/OVRW") == (url(2, "kept", ts=OLD), url(1, "https://new.example/", ts=NOW),
                                            admin(100, ts=OLD), url(3, "added", ts=NOW))


def test_overwrite_removing_values_asks_remove_bits(existing: Env) -> None:
    auth = FakeAuthorizer()
    overwrite(existing, (url(2, "kept"),), auth)
    assert auth.admin_checks() == [(PERM_REMOVE_ADMIN | PERM_REMOVE_VALUE, EXISTING)]
    assert stored(existing, b"TEST/OVRW") == (url(2, "kept", ts=OLD),)


def test_overwrite_falls_back_to_add_admin(existing: Env) -> None:
    auth = FakeAuthorizer(refuse={PERM_REMOVE_VALUE: 400})
    overwrite(existing, EXISTING[:2], auth)
    assert auth.admin_checks() == [(PERM_REMOVE_VALUE, EXISTING), (PERM_ADD_ADMIN, EXISTING)]
    assert stored(existing, b"TEST/OVRW") == EXISTING[:2]


def test_overwrite_adding_an_admin_asks_add_admin_only(existing: Env) -> None:
    auth = FakeAuthorizer()
    overwrite(existing, (*EXISTING, admin(101)), auth)
    assert auth.admin_checks() == [(PERM_ADD_ADMIN, EXISTING)]


def test_overwrite_falls_back_to_delete_and_create(existing: Env) -> None:
    auth = FakeAuthorizer(refuse={PERM_MODIFY_VALUE: 400, PERM_ADD_ADMIN: 400})
    overwrite(existing, (admin(100), url(1, "changed"), url(2, "kept")), auth)
    assert auth.admin_checks() == [(PERM_MODIFY_VALUE, EXISTING), (PERM_ADD_ADMIN, EXISTING),
                                   (PERM_DELETE_HANDLE, EXISTING), (PERM_ADD_HANDLE, existing.prefix_values)]


@pytest.mark.parametrize("refuse,code", [
    ({PERM_MODIFY_VALUE: 400, PERM_ADD_ADMIN: 400, PERM_DELETE_HANDLE: 403}, 403),
    ({PERM_MODIFY_VALUE: 400, PERM_ADD_ADMIN: 400, PERM_ADD_HANDLE: 400}, 400),
])
def test_overwrite_refused_leaves_the_record(existing: Env, refuse: dict[int, int], code: int) -> None:
    auth = FakeAuthorizer(refuse=refuse)
    with Unchanged(existing, b"TEST/ovrw"):
        refused(code, "", lambda: overwrite(existing, (admin(100), url(1, "changed"), url(2, "kept")), auth))


def test_overwrite_of_a_missing_handle_is_a_plain_create(env: Env) -> None:
    auth = FakeAuthorizer()
    result = overwrite(env, (url(1),), auth)
    assert result.extra_flags == 0
    assert auth.admin_checks() == [(PERM_ADD_HANDLE, env.prefix_values)]


def test_create_on_a_read_only_store_is_rc_7(env: Env) -> None:
    class ReadOnly:
        def __getattr__(self, name: str) -> object:
            return getattr(env.store, name)

        def create_handle(self, *args: object, **kwargs: object) -> bool:
            raise ReadOnlyStoreError("read-only")

    ctx = dataclasses.replace(env.ctx(), store=ReadOnly())  # type: ignore[arg-type]
    refused(7, "Server can only resolve handles due to maintenance. Come back later",
            lambda: create_handle(CreateHandleRequest(b"TEST/ro", ()), ctx))


# --- DELETE_HANDLE (101) --------------------------------------------------------------------------


def test_delete(env: Env) -> None:
    values = (admin(100, ts=OLD), url(1, ts=OLD))
    env.store.create_handle(b"TEST/del", values)
    auth = FakeAuthorizer()
    assert delete_handle(DeleteHandleRequest(b"test/DEL"), env.ctx(auth)) == HandlerResult(1, GenericSuccessResponse())
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_DELETE_HANDLE, values)]
    assert not env.store.exists(b"TEST/DEL")


def test_delete_challenges_before_looking_up_the_handle(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    with pytest.raises(AuthenticationNeeded):
        delete_handle(DeleteHandleRequest(b"TEST/nothing"), env.ctx(auth))
    refused(100, "", lambda: delete_handle(DeleteHandleRequest(b"TEST/nothing"), env.ctx()))


def test_delete_of_a_stray_handle_under_an_unhomed_prefix(env: Env) -> None:
    env.store.create_handle(b"STRAY/x", (url(1),))
    delete_handle(DeleteHandleRequest(b"STRAY/x"), env.ctx())
    assert not env.store.exists(b"STRAY/x")


def test_delete_on_the_wrong_server_of_a_site(env: Env) -> None:
    env.site = SiteInfo(hash_option=HASH_BY_ALL, servers=(ServerInfo(1, bytes(16), b""), ServerInfo(2, bytes(16), b"")))
    handle = next(h for h in (f"TEST/{i}".encode() for i in range(100)) if server_position(h, HASH_BY_ALL, 2) == 1)
    env.store.create_handle(handle, ())
    auth = FakeAuthorizer()
    refused(301, "Request was hashed incorrectly", lambda: delete_handle(DeleteHandleRequest(handle), env.ctx(auth)))
    assert auth.calls == [] and env.store.exists(handle)


def test_delete_refused_keeps_the_handle(env: Env) -> None:
    env.store.create_handle(b"TEST/keep", (url(1),))
    with Unchanged(env, b"TEST/keep"):
        refused(400, "", lambda: delete_handle(DeleteHandleRequest(b"TEST/keep"),
                                               env.ctx(FakeAuthorizer(refuse={PERM_DELETE_HANDLE: 400}))))


# --- ADD_VALUE (102) ------------------------------------------------------------------------------


@pytest.fixture
def record(env: Env) -> Env:
    # Stored out of index order, to show that ADD merges by index while REMOVE/MODIFY keep positions.
    env.store.create_handle(b"TEST/rec", (url(3, "three", ts=OLD), admin(100, ts=OLD), url(1, "one", ts=OLD)))
    return env


def add(env: Env, values: tuple[HandleValue, ...], auth: FakeAuthorizer | None = None, flags: int = 0
        ) -> HandlerResult:
    return add_value(AddValueRequest(b"TEST/rec", values), env.ctx(auth, flags=flags))


def test_add_merges_by_index(record: Env) -> None:
    auth = FakeAuthorizer()
    result = add(record, (url(7, "seven", ts=5), url(2, "two")), auth)
    assert result == HandlerResult(1, GenericSuccessResponse(), extra_flags=0)
    assert [v.index for v in stored(record, b"TEST/REC")] == [1, 2, 3, 7, 100]
    assert {v.index: v.timestamp for v in stored(record, b"TEST/REC")} == {1: OLD, 2: NOW, 3: OLD, 7: NOW, 100: OLD}
    existing = (url(3, "three", ts=OLD), admin(100, ts=OLD), url(1, "one", ts=OLD))
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_ADD_VALUE, existing)]


@pytest.mark.parametrize("values,bits", [
    ((admin(101),), PERM_ADD_ADMIN),
    ((admin(101), url(2)), PERM_ADD_ADMIN | PERM_ADD_VALUE),
])
def test_add_bits(record: Env, values: tuple[HandleValue, ...], bits: int) -> None:
    auth = FakeAuthorizer()
    add(record, values, auth)
    assert [b for b, _ in auth.admin_checks()] == [bits]


@pytest.mark.parametrize("indexes,code,message", [
    ((), 202, "Value list was empty"),
    ((5, 0), 202, "Value indexes must be positive"),
    ((3, 3, -1), 202, "Value indexes must be positive"),  # sorted first, as Java: -1 comes first
    ((4, 2, 4, 2), 201, "Index conflict for 2"),
])
def test_add_format_checks_come_before_the_challenge(record: Env, indexes: tuple[int, ...], code: int,
                                                      message: str) -> None:
    auth = FakeAuthorizer(authenticated=False)
    with Unchanged(record, b"TEST/rec"):
        refused(code, message, lambda: add(record, tuple(url(i) for i in indexes), auth))
    assert auth.calls == []


def test_add_needs_a_homed_prefix_first(env: Env) -> None:
    refused(301, "That prefix doesn't live here", lambda: add_value(AddValueRequest(b"OTHER/x", ()), env.ctx()))


def test_add_challenges_before_looking_up_the_handle(env: Env) -> None:
    with pytest.raises(AuthenticationNeeded):
        add_value(AddValueRequest(b"TEST/missing", (url(1),)), env.ctx(FakeAuthorizer(authenticated=False)))
    refused(100, "", lambda: add_value(AddValueRequest(b"TEST/missing", (url(1),)), env.ctx()))


def test_add_existing_index_without_overwrite(record: Env) -> None:
    auth = FakeAuthorizer()
    with Unchanged(record, b"TEST/rec"):
        refused(201, "Index conflict for 3", lambda: add(record, (url(5), url(100), url(3)), auth))
    assert auth.calls == [AUTHENTICATE]


def test_add_with_overwrite_replaces_and_keeps_identical(record: Env) -> None:
    auth = FakeAuthorizer()
    result = add(record, (url(3, "changed"), url(1, "one", ts=99)), auth, OpFlag.OVRW)
    assert result.extra_flags == OpFlag.OVRW
    assert stored(record, b"TEST/REC") == (url(1, "one", ts=OLD), url(3, "changed", ts=NOW), admin(100, ts=OLD))
    assert [b for b, _ in auth.admin_checks()] == [PERM_MODIFY_VALUE]


def test_add_with_overwrite_and_nothing_changing_needs_no_permission(record: Env) -> None:
    auth = FakeAuthorizer(refuse={b: 400 for b in range(1 << 12)})
    result = add(record, (url(1, "one"),), auth, OpFlag.OVRW)
    assert result.extra_flags == OpFlag.OVRW
    assert auth.calls == [AUTHENTICATE]


def test_add_with_overwrite_flag_but_only_new_indexes(record: Env) -> None:
    assert add(record, (url(9),), None, OpFlag.OVRW).extra_flags == 0


def test_add_refused_leaves_the_record(record: Env) -> None:
    with Unchanged(record, b"TEST/rec"):
        refused(400, "", lambda: add(record, (url(9),), FakeAuthorizer(refuse={PERM_ADD_VALUE: 400})))


# --- REMOVE_VALUE (103) ---------------------------------------------------------------------------


def remove(env: Env, indexes: tuple[int, ...], auth: FakeAuthorizer | None = None) -> HandlerResult:
    return remove_value(RemoveValueRequest(b"TEST/rec", indexes), env.ctx(auth))


def test_remove_keeps_positions_and_timestamps(record: Env) -> None:
    auth = FakeAuthorizer()
    assert remove(record, (3,), auth) == HandlerResult(1, GenericSuccessResponse())
    assert stored(record, b"TEST/REC") == (admin(100, ts=OLD), url(1, "one", ts=OLD))
    assert auth.admin_checks() == [(PERM_REMOVE_VALUE, (url(3, "three", ts=OLD), admin(100, ts=OLD),
                                                        url(1, "one", ts=OLD)))]


@pytest.mark.parametrize("indexes,bits", [
    ((100,), PERM_REMOVE_ADMIN),
    ((1, 100), PERM_REMOVE_ADMIN | PERM_REMOVE_VALUE),
    ((1, 1), PERM_REMOVE_VALUE),
    ((), PERM_REMOVE_VALUE),  # Java asks REMOVE_VALUE even for an empty list
])
def test_remove_bits(record: Env, indexes: tuple[int, ...], bits: int) -> None:
    auth = FakeAuthorizer()
    remove(record, indexes, auth)
    assert [b for b, _ in auth.admin_checks()] == [bits]


def test_remove_challenges_first(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    with pytest.raises(AuthenticationNeeded):
        remove_value(RemoveValueRequest(b"TEST/missing", (1,)), env.ctx(auth))
    refused(100, "", lambda: remove_value(RemoveValueRequest(b"TEST/missing", (1,)), env.ctx()))


def test_remove_of_an_absent_index(record: Env) -> None:
    auth = FakeAuthorizer()
    with Unchanged(record, b"TEST/rec"):
        refused(200, "", lambda: remove(record, (1, 42), auth))
    assert auth.calls == [AUTHENTICATE]


def test_remove_needs_a_homed_prefix(env: Env) -> None:
    refused(301, "That prefix doesn't live here",
            lambda: remove_value(RemoveValueRequest(b"OTHER/x", (1,)), env.ctx()))


def test_remove_refused_leaves_the_record(record: Env) -> None:
    with Unchanged(record, b"TEST/rec"):
        refused(400, "", lambda: remove(record, (1,), FakeAuthorizer(refuse={PERM_REMOVE_VALUE: 400})))


# --- MODIFY_VALUE (104) ---------------------------------------------------------------------------


def modify(env: Env, values: tuple[HandleValue, ...], auth: FakeAuthorizer | None = None,
           handle: bytes = b"TEST/rec") -> HandlerResult:
    return modify_value(ModifyValueRequest(handle, values), env.ctx(auth))


def test_modify_replaces_in_place_with_timestamp_now(record: Env) -> None:
    auth = FakeAuthorizer()
    assert modify(record, (url(1, "uno", ts=7),), auth) == HandlerResult(1, GenericSuccessResponse())
    assert stored(record, b"TEST/REC") == (url(3, "three", ts=OLD), admin(100, ts=OLD), url(1, "uno", ts=NOW))
    assert auth.calls == [AUTHENTICATE, ("check_admin", PERM_MODIFY_VALUE, (
        url(3, "three", ts=OLD), admin(100, ts=OLD), url(1, "one", ts=OLD)))]


@pytest.mark.parametrize("new,bits", [
    (admin(100, ref=301), PERM_MODIFY_ADMIN),
    (url(100, "no longer an admin"), PERM_REMOVE_ADMIN | PERM_MODIFY_VALUE),
    (admin(1), PERM_MODIFY_VALUE | PERM_ADD_ADMIN),
])
def test_modify_bits(record: Env, new: HandleValue, bits: int) -> None:
    auth = FakeAuthorizer()
    modify(record, (new,), auth)
    assert [b for b, _ in auth.admin_checks()] == [bits]


def test_modify_of_a_missing_handle_is_100_without_challenge(env: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    refused(100, "", lambda: modify(env, (url(1),), auth, b"TEST/missing"))
    assert auth.calls == []


def test_modify_of_an_absent_index(record: Env) -> None:
    with Unchanged(record, b"TEST/rec"):
        refused(200, "", lambda: modify(record, (url(1), url(42))))


def test_modify_of_a_read_only_value(env: Env) -> None:
    env.store.create_handle(b"TEST/ro", (url(1, perms=PERM_PUBLIC_READ | PERM_ADMIN_READ),))
    auth = FakeAuthorizer()
    with Unchanged(env, b"TEST/ro"):
        refused(401, "Value is read-only", lambda: modify(env, (url(1, "x"),), auth, b"TEST/ro"))
    assert auth.calls == []


PUBLIC_WRITE = PERM_ADMIN_READ | PERM_ADMIN_WRITE | PERM_PUBLIC_READ | PERM_PUBLIC_WRITE


@pytest.fixture
def wiki(env: Env) -> Env:
    env.store.create_handle(b"TEST/wiki", (url(1, "open", perms=PUBLIC_WRITE, ts=OLD), url(2, "closed", ts=OLD),
                                          admin(100, ts=OLD)))
    return env


def test_anonymous_modify_of_a_public_write_value(wiki: Env) -> None:
    auth = FakeAuthorizer(authenticated=False)
    modify(wiki, (url(1, "edited", perms=PUBLIC_WRITE),), auth, b"TEST/wiki")
    assert auth.calls == []
    assert stored(wiki, b"TEST/WIKI")[0] == url(1, "edited", perms=PUBLIC_WRITE, ts=NOW)


@pytest.mark.parametrize("values", [
    (url(2, "edited"),),  # no public write
    (admin(1),),  # public write, but the new value is HS_ADMIN
    (url(1, "edited", perms=PUBLIC_WRITE), url(2, "edited")),
])
def test_anonymous_modify_needing_a_challenge(wiki: Env, values: tuple[HandleValue, ...]) -> None:
    auth = FakeAuthorizer(authenticated=False)
    with Unchanged(wiki, b"TEST/wiki"), pytest.raises(AuthenticationNeeded):
        modify(wiki, values, auth, b"TEST/wiki")


def test_anonymous_modify_of_an_admin_value_with_public_write(env: Env) -> None:
    env.store.create_handle(b"TEST/pa", (dataclasses.replace(admin(100), permissions=PUBLIC_WRITE),))
    with pytest.raises(AuthenticationNeeded):
        modify(env, (url(100, "x"),), FakeAuthorizer(authenticated=False), b"TEST/pa")


def test_modify_checks_value_by_value(wiki: Env) -> None:
    anonymous = FakeAuthorizer(authenticated=False)
    refused(200, "", lambda: modify(wiki, (url(1, "x", perms=PUBLIC_WRITE), url(42)), anonymous, b"TEST/wiki"))
    with pytest.raises(AuthenticationNeeded):
        modify(wiki, (url(2, "x"), url(42)), anonymous, b"TEST/wiki")


def test_authenticated_modify_of_public_write_values_needs_no_permission(wiki: Env) -> None:
    auth = FakeAuthorizer(refuse={b: 400 for b in range(1 << 12)})
    modify(wiki, (url(1, "edited"),), auth, b"TEST/wiki")
    assert auth.admin_checks() == []


def test_modify_repeated_index_last_one_wins(record: Env) -> None:
    modify(record, (url(1, "first"), url(1, "second")))
    assert stored(record, b"TEST/REC")[2] == url(1, "second", ts=NOW)


def test_modify_producing_duplicate_indexes(env: Env) -> None:
    env.store.create_handle(b"TEST/dup", (url(2, ts=OLD), url(1, "a", ts=OLD), url(1, "b", ts=OLD)))
    with Unchanged(env, b"TEST/dup"):
        refused(202, "Index conflict for 1", lambda: modify(env, (url(2, "x"),), None, b"TEST/dup"))


def test_modify_refused_leaves_the_record(record: Env) -> None:
    with Unchanged(record, b"TEST/rec"):
        refused(403, "", lambda: modify(record, (url(1, "x"),), FakeAuthorizer(refuse={PERM_MODIFY_VALUE: 403})))


# --- HOME_NA (300) / UNHOME_NA (301) --------------------------------------------------------------


@pytest.mark.parametrize("argument,prefix", [
    (b"new", b"0.NA/NEW"),
    (b"20.500", b"0.NA/20.500"),
    (b"0.na/Mixed", b"0.NA/MIXED"),
    (b"0.NA/NEW", b"0.NA/NEW"),
])
def test_home_and_unhome(env: Env, argument: bytes, prefix: bytes) -> None:
    auth = FakeAuthorizer()
    before = env.store.last_txn_id()
    assert home_na(HomeNARequest(argument), env.ctx(auth)) == HandlerResult(1, GenericSuccessResponse())
    assert auth.calls == [AUTHENTICATE, HOME_ADMINS]
    assert prefix in env.homed and env.store.is_homed(prefix)
    assert not env.store.exists(prefix)  # homing does not create the prefix handle
    unhome_na(UnhomeNARequest(argument), env.ctx(auth))
    assert prefix not in env.homed and not env.store.is_homed(prefix)
    txns = list(env.store.transactions_since(before))
    assert [(t.action, t.handle) for t in txns] == [(TXN_HOME_NA, prefix), (TXN_UNHOME_NA, prefix)]


def test_unhome_of_a_prefix_not_homed_succeeds(env: Env) -> None:
    assert unhome_na(UnhomeNARequest(b"NEVER"), env.ctx()).response_code == ResponseCode.SUCCESS


@pytest.mark.parametrize("handler", [home_na, unhome_na])
def test_home_argument_must_be_a_prefix_handle(env: Env, handler: object) -> None:
    auth = FakeAuthorizer(authenticated=False)
    refused(102, "Handle is not a prefix handle",
            lambda: handler(HomeNARequest(b"TEST/abc"), env.ctx(auth)))  # type: ignore[operator]
    assert auth.calls == []


def test_home_challenges_and_checks_the_server_lists(env: Env) -> None:
    with pytest.raises(AuthenticationNeeded):
        home_na(HomeNARequest(b"NEW"), env.ctx(FakeAuthorizer(authenticated=False)))
    refused(400, "", lambda: home_na(HomeNARequest(b"NEW"), env.ctx(FakeAuthorizer(refuse_lists=400))))
    assert b"0.NA/NEW" not in env.homed and not env.store.is_homed(b"0.NA/NEW")
    refused(400, "", lambda: unhome_na(UnhomeNARequest(b"TEST"), env.ctx(FakeAuthorizer(refuse_lists=400))))
    assert b"0.NA/TEST" in env.homed


def test_operation_table() -> None:
    table = OPERATION_HANDLERS
    assert table == {
        OpCode.CREATE_HANDLE: create_handle, OpCode.DELETE_HANDLE: delete_handle, OpCode.ADD_VALUE: add_value,
        OpCode.REMOVE_VALUE: remove_value, OpCode.MODIFY_VALUE: modify_value, OpCode.LIST_HANDLES: list_handles,
        OpCode.HOME_NA: home_na, OpCode.UNHOME_NA: unhome_na, OpCode.LIST_HOMED_NAS: list_homed_nas}

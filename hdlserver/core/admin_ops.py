"""The administrative operations 100-104 and 300/301 (server.md 9 and 11) as pure handlers.

Each handler takes (request body, AdminContext) and returns a HandlerResult, or raises ProtocolError
(with Java's response code and message) or, through ``ctx.auth.require_authentication()``,
AuthenticationNeeded -- the checks before and after that call are in the order the Java server makes
them, because the order decides which error a client sees. Each change is one store call, so it is
applied completely or not at all; the store writes its transaction-log record with it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Sequence

from hdlserver.auth.authorize import (
    bits_for_add,
    bits_for_create_overwrite,
    bits_for_modify,
    bits_for_remove,
    modify_allowed_anonymously,
)
from hdlserver.core.handler_api import AdminContext, HandlerResult
from hdlserver.core.homed import HASHED_WRONG, check_responsible
from hdlserver.core.listing import HOMED_PREFIX_ADMINS, list_handles, list_homed_nas
from hdlserver.errors import ProtocolError
from hdlserver.store.base import HandleExistsError, HandleNotFoundError, ReadOnlyStoreError
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
from hdlserver.wire.handles import NA_PREFIX, is_prefix_handle, normalize_slashless, prefix_handle_of, server_position
from hdlserver.wire.valuedata import (
    PERM_ADD_ADMIN,
    PERM_ADD_DERIVED_PREFIX,
    PERM_ADD_HANDLE,
    PERM_DELETE_HANDLE,
    PERM_REMOVE_VALUE,
)
from hdlserver.wire.values import HandleValue

INVALID_UTF8 = "Invalid UTF8 encoding"
INDEXES_MUST_BE_POSITIVE = "Value indexes must be positive"
EMPTY_VALUE_LIST = "Value list was empty"
READ_ONLY_VALUE = "Value is read-only"
NOT_A_PREFIX_HANDLE = "Handle is not a prefix handle"
READ_ONLY_STORE = "Server can only resolve handles due to maintenance. Come back later"


def index_conflict(index: int) -> str:
    return f"Index conflict for {index}"


def _success(extra_flags: int = 0) -> HandlerResult:
    return HandlerResult(ResponseCode.SUCCESS, GenericSuccessResponse(), extra_flags=extra_flags)


@contextlib.contextmanager
def _storing() -> Iterator[None]:
    """A read-only store answers RC 7 (server.md 9); other storage failures reach the dispatcher (RC 2)."""
    try:
        yield
    except ReadOnlyStoreError as e:
        raise ProtocolError(ResponseCode.SERVER_BACKUP, READ_ONLY_STORE) from e


# --- handle names -----------------------------------------------------------------------------------


def _utf8_sequence(lead: int) -> tuple[int, int] | None:
    """(continuation bytes, bits the first continuation byte must touch when the lead byte carries no
    payload bits -- else 0) for a lead byte, or None when it cannot start a sequence. Five- and six-byte
    forms, surrogates and code points above U+10FFFF are accepted, as Java's check accepts them."""
    if lead < 0x80:
        return 0, 0
    if lead & 0xE0 == 0xC0:
        return (1, 0) if lead & 0x1E else None  # C0/C1 would be an overlong 2-byte form
    for length, marker, payload, first_bits in ((2, 0xE0, 0x0F, 0x20), (3, 0xF0, 0x07, 0x30),
                                                (4, 0xF8, 0x03, 0x38), (5, 0xFC, 0x01, 0x3C)):
        if lead & ~payload & 0xFF == marker:
            return length, 0 if lead & payload else first_bits
    return None


def is_java_valid_utf8(data: bytes) -> bool:
    """Java's permissive UTF-8 test for created handles (server.md 9.1 step 3): well-formed lead and
    continuation bytes, no overlong forms, nothing cut off at the end."""
    pending = 0
    first_bits = 0
    for byte in data:
        if pending:
            if byte & 0xC0 != 0x80 or (first_bits and not byte & first_bits):
                return False
            first_bits = 0
            pending -= 1
            continue
        sequence = _utf8_sequence(byte)
        if sequence is None:
            return False
        pending, first_bits = sequence
    return pending == 0


def mint_handle(leading: bytes, exists: Callable[[bytes], bool]) -> bytes:
    """MINT (server.md 9.1 step 1): ``leading`` + a random lower-case version-4 UUID, until unused.
    Java appends to the decoded text, so undecodable bytes of ``leading`` become U+FFFD."""
    text = leading.decode("utf-8", "replace")
    while True:
        handle = (text + str(uuid.uuid4())).encode("utf-8")
        if not exists(handle):
            return handle


def is_derived_prefix_handle(handle: bytes) -> bool:
    """``0.NA/A.B``: a prefix handle with a '.' after ``0.NA/`` (Java ``isSubNAHandle``)."""
    return is_prefix_handle(handle) and b"." in handle[len(NA_PREFIX) :]


def parent_prefix_handle(handle: bytes) -> bytes:
    """``0.NA/A.B.C`` -> ``0.NA/A.B`` for a derived prefix handle."""
    rest = handle[len(NA_PREFIX) :]
    return NA_PREFIX + rest[: rest.rfind(b".")]


# --- value-list checks ------------------------------------------------------------------------------


def _check_create_indexes(values: Sequence[HandleValue]) -> None:
    """server.md 9.1 step 4, value by value in request order as Java checks them: a non-positive index,
    then a later value with the same index."""
    later = {}
    for v in values:
        later[v.index] = later.get(v.index, 0) + 1
    for v in values:
        later[v.index] -= 1
        if v.index <= 0:
            raise ProtocolError(ResponseCode.INVALID_VALUE, INDEXES_MUST_BE_POSITIVE)
        if later[v.index]:
            raise ProtocolError(ResponseCode.VALUE_ALREADY_EXISTS, index_conflict(v.index))


def _check_added_indexes(ordered: Sequence[HandleValue]) -> None:
    """server.md 9.3 step 1 over the values sorted by index, as Java checks them."""
    if not ordered:
        raise ProtocolError(ResponseCode.INVALID_VALUE, EMPTY_VALUE_LIST)
    for i, v in enumerate(ordered):
        if v.index <= 0:
            raise ProtocolError(ResponseCode.INVALID_VALUE, INDEXES_MUST_BE_POSITIVE)
        if i and ordered[i - 1].index == v.index:
            raise ProtocolError(ResponseCode.VALUE_ALREADY_EXISTS, index_conflict(v.index))


def _first_positions(values: Sequence[HandleValue]) -> dict[int, int]:
    """Index -> position of the first value with that index (Java ``getHVByIndex``)."""
    positions: dict[int, int] = {}
    for position, v in enumerate(values):
        positions.setdefault(v.index, position)
    return positions


def _first_duplicate_index(values: Sequence[HandleValue]) -> int | None:
    """The index of the first value that another value repeats."""
    counts: dict[int, int] = {}
    for v in values:
        counts[v.index] = counts.get(v.index, 0) + 1
    return next((v.index for v in values if counts[v.index] > 1), None)


def _keep_unchanged_timestamps(existing: Sequence[HandleValue], values: Sequence[HandleValue]
                               ) -> list[HandleValue]:
    """CREATE with OVRW (values.md 8): a value identical to the existing one at its index, ignoring the
    timestamp, keeps the old timestamp; the stored order stays the request's."""
    current: dict[int, HandleValue] = {}
    for v in existing:
        current.setdefault(v.index, v)
    out = []
    for v in values:
        old = current.get(v.index)
        out.append(old if old is not None and old.same_ignoring_timestamp(v) else v)
    return out


def _merge_added(existing: Sequence[HandleValue], added: Sequence[HandleValue], now: int) -> list[HandleValue]:
    """ADD_VALUE's new record (server.md 9.3 step 4): both lists sorted by index and merged; an index in
    both keeps the existing value when identical ignoring the timestamp, else takes the new one."""
    out: list[HandleValue] = []
    i = j = 0
    while i < len(existing) and j < len(added):
        old, new = existing[i], added[j]
        if old.index < new.index:
            out.append(old)
            i += 1
        elif old.index > new.index:
            out.append(new.with_timestamp(now))
            j += 1
        else:
            out.append(old if old.same_ignoring_timestamp(new) else new.with_timestamp(now))
            i += 1
            j += 1
    out.extend(existing[i:])
    out.extend(v.with_timestamp(now) for v in added[j:])
    return out


def _by_index(values: Sequence[HandleValue]) -> list[HandleValue]:
    return sorted(values, key=lambda v: v.index)  # stable: equal indexes keep their order, as in Java


def _existing_values(ctx: AdminContext, handle: bytes) -> tuple[HandleValue, ...]:
    values = ctx.store.get_values(handle)
    if values is None:
        raise HandleNotFoundError(handle)
    return values


# --- authorization ----------------------------------------------------------------------------------


def _granted(ctx: AdminContext, required: int, values: Sequence[HandleValue]) -> bool:
    """One attempt of auth.md 6.5 step 2: a refusal (any error of the check) lets the next one try."""
    try:
        ctx.auth.check_admin(required, values)
    except ProtocolError:
        return False
    return True


def _authorize_creation(handle: bytes, ctx: AdminContext) -> None:
    """auth.md 6.2: ADD_HANDLE on the prefix handle, or ADD_DERIVED_PREFIX on the parent prefix handle
    of a derived prefix handle; its HS_ADMIN values come from this server's store (none when
    ``allow_na_admins`` is off or it is not stored here: then only server admins can create)."""
    if is_derived_prefix_handle(handle):
        authority, required = parent_prefix_handle(handle), PERM_ADD_DERIVED_PREFIX
    else:
        authority, required = prefix_handle_of(handle), PERM_ADD_HANDLE
    values = (ctx.store.get_values(authority) or ()) if ctx.config.allow_na_admins else ()
    ctx.auth.check_admin(required, values)


def _authorize_overwrite(handle: bytes, existing: Sequence[HandleValue], values: Sequence[HandleValue],
                         ctx: AdminContext) -> None:
    """auth.md 6.5: CREATE with OVRW over an existing handle."""
    required = bits_for_create_overwrite(existing, values)
    if not required:
        # Java checks nothing more here; the product decision (server.md 15, item 4) is to verify the
        # answer all the same. With anonymous_admin_full_access there is no answer to verify.
        if not ctx.config.anonymous_admin_full_access:
            ctx.auth.verify_proof()  # type: ignore[attr-defined]
        return
    if not required & PERM_ADD_ADMIN and _granted(ctx, required, existing):
        return
    if _granted(ctx, PERM_ADD_ADMIN, existing):
        return
    ctx.auth.check_admin(PERM_DELETE_HANDLE, existing)
    _authorize_creation(handle, ctx)


# --- the operations ---------------------------------------------------------------------------------


def create_handle(body: CreateHandleRequest, ctx: AdminContext) -> HandlerResult:
    """CREATE_HANDLE (100), server.md 9.1."""
    mint = bool(ctx.flags & OpFlag.MINT)
    overwrite = bool(ctx.flags & OpFlag.OVRW)
    handle = mint_handle(body.handle, ctx.store.exists) if mint else body.handle
    check_responsible(ctx.site, ctx.this_server_position, ctx.homed, handle)
    if not is_java_valid_utf8(handle):
        raise ProtocolError(ResponseCode.INVALID_HANDLE, INVALID_UTF8)
    _check_create_indexes(body.values)
    values = [v.with_timestamp(ctx.now) for v in body.values]
    existing = ctx.store.get_values(handle) if overwrite else None
    if not overwrite and ctx.store.exists(handle):
        raise HandleExistsError(handle)  # before the challenge, as Java
    ctx.auth.require_authentication()
    if existing is None:
        _authorize_creation(handle, ctx)
    else:
        values = _keep_unchanged_timestamps(existing, values)
        _authorize_overwrite(handle, existing, values, ctx)
    with _storing():
        # overwrite only what was authorized as an overwrite: a handle created meanwhile gives RC 101
        replaced = ctx.store.create_handle(handle, values, overwrite=existing is not None,
                                           log=ctx.config.enable_txn_queue)
    flags = (OpFlag.OVRW if replaced else 0) | (OpFlag.MINT if mint else 0)
    return HandlerResult(ResponseCode.SUCCESS, CreateHandleResponse(handle), extra_flags=flags)


def delete_handle(body: DeleteHandleRequest, ctx: AdminContext) -> HandlerResult:
    """DELETE_HANDLE (101), server.md 9.2. Only the wrong server of a multi-server site refuses: a handle
    stored under a prefix not homed here may still be deleted (it is in the store by mistake)."""
    handle = body.handle
    site = ctx.site
    if len(site.servers) > 1 and server_position(handle, site.hash_option, len(site.servers)) \
            != ctx.this_server_position:
        raise ProtocolError(ResponseCode.SERVER_NOT_RESP, HASHED_WRONG)
    ctx.auth.require_authentication()
    existing = _existing_values(ctx, handle)
    ctx.auth.check_admin(PERM_DELETE_HANDLE, existing)
    with _storing():
        if not ctx.store.delete_handle(handle, log=ctx.config.enable_txn_queue):
            raise HandleNotFoundError(handle)
    return _success()


def add_value(body: AddValueRequest, ctx: AdminContext) -> HandlerResult:
    """ADD_VALUE (102), server.md 9.3."""
    handle = body.handle
    check_responsible(ctx.site, ctx.this_server_position, ctx.homed, handle)
    added = _by_index(body.values)
    _check_added_indexes(added)
    ctx.auth.require_authentication()
    existing = _existing_values(ctx, handle)
    present = {v.index for v in existing}
    shared = next((v.index for v in added if v.index in present), None)
    overwrite = bool(ctx.flags & OpFlag.OVRW)
    if shared is not None and not overwrite:
        raise ProtocolError(ResponseCode.VALUE_ALREADY_EXISTS, index_conflict(shared))
    merged = _merge_added(_by_index(existing), added, ctx.now)
    required = bits_for_add(existing, added, overwrite)
    if required:  # nothing changes (identical values under OVRW): no permission needed
        ctx.auth.check_admin(required, existing)
    with _storing():
        ctx.store.replace_values(handle, merged, log=ctx.config.enable_txn_queue)
    return _success(OpFlag.OVRW if shared is not None else 0)


def remove_value(body: RemoveValueRequest, ctx: AdminContext) -> HandlerResult:
    """REMOVE_VALUE (103), server.md 9.4: the other values keep their positions."""
    handle = body.handle
    check_responsible(ctx.site, ctx.this_server_position, ctx.homed, handle)
    ctx.auth.require_authentication()
    existing = _existing_values(ctx, handle)
    first = _first_positions(existing)
    removed: set[int] = set()
    for index in body.indexes:
        position = first.get(index)
        if position is None:
            raise ProtocolError(ResponseCode.VALUES_NOT_FOUND)
        removed.add(position)
    # Java asks REMOVE_VALUE even of a request that lists no index.
    required = bits_for_remove([existing[p] for p in sorted(removed)]) or PERM_REMOVE_VALUE
    ctx.auth.check_admin(required, existing)
    with _storing():
        kept = [v for p, v in enumerate(existing) if p not in removed]
        ctx.store.replace_values(handle, kept, log=ctx.config.enable_txn_queue)
    return _success()


def modify_value(body: ModifyValueRequest, ctx: AdminContext) -> HandlerResult:
    """MODIFY_VALUE (104), server.md 9.5: each value replaces the first existing value with its index, in
    place. A public-write value may be modified anonymously (no challenge, no permission)."""
    handle = body.handle
    check_responsible(ctx.site, ctx.this_server_position, ctx.homed, handle)
    existing = _existing_values(ctx, handle)
    first = _first_positions(existing)
    pairs: list[tuple[HandleValue, HandleValue]] = []
    replacements: dict[int, HandleValue] = {}
    for new in body.values:
        position = first.get(new.index)
        if position is None:
            raise ProtocolError(ResponseCode.VALUES_NOT_FOUND)
        old = existing[position]
        if not old.admin_write:
            raise ProtocolError(ResponseCode.INSUFFICIENT_PERMISSIONS, READ_ONLY_VALUE)
        if not modify_allowed_anonymously([(old, new)]):
            ctx.auth.require_authentication()
        pairs.append((old, new))
        replacements[position] = new.with_timestamp(ctx.now)  # a repeated index: the last one wins
    required = bits_for_modify(pairs)
    if required:
        ctx.auth.check_admin(required, existing)
    values = [replacements.get(p, v) for p, v in enumerate(existing)]
    duplicate = _first_duplicate_index(values)
    if duplicate is not None:
        raise ProtocolError(ResponseCode.INVALID_VALUE, index_conflict(duplicate))
    with _storing():
        ctx.store.replace_values(handle, values, log=ctx.config.enable_txn_queue)
    return _success()


def prefix_argument(handle: bytes) -> bytes:
    """HOME/UNHOME argument (server.md 11 step 1): slashless ``X`` -> ``0.NA/X`` upper-cased; the result
    must start with ``0.NA/`` (ignoring case)."""
    prefix = normalize_slashless(handle)
    if not is_prefix_handle(prefix):
        raise ProtocolError(ResponseCode.INVALID_HANDLE, NOT_A_PREFIX_HANDLE)
    return prefix


def home_na(body: HomeNARequest, ctx: AdminContext) -> HandlerResult:
    """HOME_NA (300), server.md 11: only records that this server serves the prefix."""
    prefix = prefix_argument(body.handle)
    ctx.auth.require_authentication()
    ctx.auth.check_server_list(*HOMED_PREFIX_ADMINS)
    with _storing():
        ctx.homed.home(prefix, log=ctx.config.enable_txn_queue)
    return _success()


def unhome_na(body: UnhomeNARequest, ctx: AdminContext) -> HandlerResult:
    """UNHOME_NA (301), server.md 11; unhoming a prefix that is not homed succeeds, as in Java."""
    prefix = prefix_argument(body.handle)
    ctx.auth.require_authentication()
    ctx.auth.check_server_list(*HOMED_PREFIX_ADMINS)
    with _storing():
        ctx.homed.unhome(prefix, log=ctx.config.enable_txn_queue)
    return _success()


OPERATION_HANDLERS: dict[int, Callable[[object, AdminContext], HandlerResult]] = {
    OpCode.CREATE_HANDLE: create_handle,  # type: ignore[dict-item]
    OpCode.DELETE_HANDLE: delete_handle,  # type: ignore[dict-item]
    OpCode.ADD_VALUE: add_value,  # type: ignore[dict-item]
    OpCode.REMOVE_VALUE: remove_value,  # type: ignore[dict-item]
    OpCode.MODIFY_VALUE: modify_value,  # type: ignore[dict-item]
    OpCode.LIST_HANDLES: list_handles,  # type: ignore[dict-item]
    OpCode.HOME_NA: home_na,  # type: ignore[dict-item]
    OpCode.UNHOME_NA: unhome_na,  # type: ignore[dict-item]
    OpCode.LIST_HOMED_NAS: list_homed_nas,  # type: ignore[dict-item]
}

"""LIST_HANDLES (105) and LIST_HOMED_NAS (302): server.md 10 and wire.md 9.8 / 9.12.

Both answer in parts of 50 names; the dispatcher sets CN on every part but the last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from hdlserver.core.handler_api import AdminContext, HandlerResult
from hdlserver.core.homed import NOT_HERE
from hdlserver.errors import ProtocolError, StorageError
from hdlserver.wire.bodies import ListHandlesRequest, ListHandlesResponse, ListHomedNAsRequest, ListHomedNAsResponse
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.handles import NA_PREFIX, ROOT_PREFIX_HANDLE, fold_case
from hdlserver.wire.valuedata import PERM_LIST_HANDLES
from hdlserver.wire.values import HandleValue

NAMES_PER_PART = 50  # Java's LIST_HANDLES_PER_MSG
LIST_HANDLES_DISABLED = "This server does not support the list handles operation."
DERIVED_PREFIX_MARKER = NA_PREFIX + NA_PREFIX  # "0.NA/0.NA/P" lists the derived prefix handles 0.NA/P.*
GLOBAL_HANDLE_START = b"0."
HOMED_PREFIX_ADMINS = ("server_admins", "home_only_admins")

T = TypeVar("T")


def split_into_parts(names: Iterable[bytes], make_part: Callable[[tuple[bytes, ...]], T]) -> tuple[T, ...]:
    """Parts of ``NAMES_PER_PART`` names (wire.md 9.8): no names is one empty part, and a total that is an
    exact multiple of the part size has no empty trailer."""
    parts: list[T] = []
    batch: list[bytes] = []
    for name in names:
        batch.append(name)
        if len(batch) == NAMES_PER_PART:
            parts.append(make_part(tuple(batch)))
            batch = []
    if batch or not parts:
        parts.append(make_part(tuple(batch)))
    return tuple(parts)


def normalize_list_argument(handle: bytes, case_sensitive: bool) -> bytes:
    """server.md 10.1 step 1: upper-case (only the prefix part on a case-sensitive server, except for the
    global ``0.`` handles, folded entirely), then a slashless argument becomes ``0.NA/<ARG>``."""
    if not case_sensitive or handle.startswith(GLOBAL_HANDLE_START):
        handle = handle.upper()
    else:
        handle = fold_case(handle, case_sensitive=True)
    return handle if b"/" in handle else NA_PREFIX + handle


def _homed_for_listing(prefix: bytes, ctx: AdminContext) -> bool:
    """server.md 10.1 step 3: the prefix is homed here, or a derived-prefix listing and 0.NA/0.NA is."""
    if prefix in ctx.homed:
        return True
    return prefix[: len(DERIVED_PREFIX_MARKER)].upper() == DERIVED_PREFIX_MARKER and ROOT_PREFIX_HANDLE in ctx.homed


def _authorize_listing(prefix: bytes, ctx: AdminContext) -> None:
    """LIST_HANDLES on the HS_ADMIN values of the (normalised) argument itself, as Java does: for a
    derived-prefix listing ``0.NA/0.NA/P`` that handle rarely exists, so only server admins may list.

    A prefix handle that is not stored means no HS_ADMIN values (RC 400 unless a server admin asks), as
    in Java, where only a failing lookup turns a refusal into RC 406.
    """
    values: Sequence[HandleValue] = ()
    lookup_failed: StorageError | None = None
    if ctx.config.allow_na_admins:
        try:
            values = ctx.store.get_values(prefix) or ()
        except StorageError as e:
            lookup_failed = e
    try:
        ctx.auth.check_admin(PERM_LIST_HANDLES, values)
    except ProtocolError:
        if lookup_failed is not None:
            raise ProtocolError(ResponseCode.AUTHEN_ERROR) from lookup_failed
        raise


def list_handles(body: ListHandlesRequest, ctx: AdminContext) -> HandlerResult:
    """LIST_HANDLES (105), server.md 10.1."""
    prefix = normalize_list_argument(body.handle, ctx.store.case_sensitive)
    if not ctx.config.allow_list_hdls:
        raise ProtocolError(ResponseCode.OPERATION_NOT_SUPPORTED, LIST_HANDLES_DISABLED)
    if not _homed_for_listing(prefix, ctx):
        raise ProtocolError(ResponseCode.SERVER_NOT_RESP, NOT_HERE)
    ctx.auth.require_authentication()
    _authorize_listing(prefix, ctx)
    # The store streams the names in sorted order; HandlerResult holds its parts as a tuple, so the whole
    # listing is materialised here (memory grows with the number of handles under the prefix).
    parts = split_into_parts(ctx.store.list_handles(prefix), ListHandlesResponse)
    return HandlerResult(ResponseCode.SUCCESS, parts[0], parts=parts)


def list_homed_nas(body: ListHomedNAsRequest, ctx: AdminContext) -> HandlerResult:
    """LIST_HOMED_NAS (302), server.md 10.2; the request's handle is ignored (Java clients send "/")."""
    ctx.auth.require_authentication()
    ctx.auth.check_server_list(*HOMED_PREFIX_ADMINS)
    parts = split_into_parts(ctx.homed.sorted(), ListHomedNAsResponse)
    return HandlerResult(ResponseCode.SUCCESS, parts[0], parts=parts)

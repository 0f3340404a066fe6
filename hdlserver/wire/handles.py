"""Handle names: prefix/suffix parts, 0.NA forms, case folding and the HS_SITE server hash.

Handles are bytes (their UTF-8 encoding, as on the wire).
"""

from __future__ import annotations

import hashlib

NA_PREFIX = b"0.NA/"
ROOT_PREFIX_HANDLE = b"0.NA/0.NA"

HASH_BY_PREFIX = 0
HASH_BY_SUFFIX = 1
HASH_BY_ALL = 2


def prefix_of(handle: bytes) -> bytes:
    """The part before the first '/'; the whole handle when it has none."""
    slash = handle.find(b"/")
    return handle if slash < 0 else handle[:slash]


def is_prefix_handle(handle: bytes) -> bool:
    return handle[:5].upper() == NA_PREFIX


def prefix_handle_of(handle: bytes) -> bytes:
    """``0.NA/<PREFIX>`` of the prefix that ``handle`` lives under (server.md 7.1 step 2)."""
    slash = handle.find(b"/")
    if slash < 0:
        return ROOT_PREFIX_HANDLE
    return NA_PREFIX + handle[:slash].upper()


def normalize_slashless(handle: bytes) -> bytes:
    """A handle without '/' means ``0.NA/<handle>``, upper-cased (server.md 8 step 2)."""
    if b"/" in handle:
        return handle
    return NA_PREFIX + handle.upper()


def to_prefix_handle(arg: bytes) -> bytes:
    """Home/unhome/list argument: ``1234`` -> ``0.NA/1234``, upper-cased (server.md 11 step 1)."""
    if b"/" not in arg:
        return NA_PREFIX + arg.upper()
    return arg.upper()


def fold_case(handle: bytes, case_sensitive: bool) -> bytes:
    """Storage key of a handle (server.md 6): all upper-case, or the prefix part only when case sensitive."""
    if not case_sensitive:
        return handle.upper()
    slash = handle.find(b"/")
    if slash < 0:
        return handle.upper()
    return handle[:slash].upper() + handle[slash:]


def site_hash(handle: bytes, hash_option: int) -> int:
    """The HS_SITE server-selection hash (values.md 3.2), before ``mod N``.

    abs(-2**31) stays negative in Java and breaks the Java server; we map that case to 0 (a documented
    product decision, server.md 15 item 9).
    """
    slash = handle.find(b"/")
    if hash_option == HASH_BY_PREFIX:
        part = b"0.NA" if slash < 0 else handle[:slash]
    elif hash_option == HASH_BY_SUFFIX:
        part = handle if slash < 0 else handle[slash + 1 :]
    else:
        part = handle
    digest = hashlib.md5(part.upper(), usedforsecurity=False).digest()
    h = int.from_bytes(digest[-4:], "big", signed=True)
    if h == -(2**31):
        return 0
    return abs(h)


def server_position(handle: bytes, hash_option: int, server_count: int) -> int:
    """Array position of the server responsible for ``handle`` in a site of ``server_count`` servers."""
    if server_count <= 1:
        return 0
    return site_hash(handle, hash_option) % server_count

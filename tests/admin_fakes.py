"""A recording fake Authorizer and an admin-op environment over a real LMDB store, for handler unit tests.

The fake records every call, so a test sees which permission bits a case asks for and whether the challenge
comes before or after each check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from hdlserver.config.settings import ServerConfig
from hdlserver.core.handler_api import AdminContext, AuthenticationNeeded
from hdlserver.core.homed import HomedPrefixes
from hdlserver.errors import ProtocolError
from hdlserver.store.lmdb_store import LmdbStore
from hdlserver.wire.site import ServerInfo, SiteInfo
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

NOW = 1_800_000_000
OLD = 1_600_000_000
SITE = SiteInfo(servers=(ServerInfo(1, bytes(16), b""),))
AUTHENTICATE = ("authenticate",)


def admin(index: int = 100, handle: bytes = b"0.NA/TEST", ref: int = 300, *, ts: int = 0) -> HandleValue:
    return HandleValue(index, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, handle, ref)), timestamp=ts)


class FakeAuthorizer:
    """Records every call. ``refuse`` maps required bits to the response code that check raises,
    ``refuse_lists`` is raised by server-list checks, ``refuse_all`` by every check."""

    def __init__(self, *, authenticated: bool = True, refuse: dict[int, int] | None = None,
                 refuse_lists: int | None = None, refuse_all: int | None = None) -> None:
        self.authenticated = authenticated
        self.refuse = refuse or {}
        self.refuse_lists = refuse_lists if refuse_all is None else refuse_all
        self.refuse_all = refuse_all
        self.calls: list[tuple[object, ...]] = []

    def require_authentication(self) -> None:
        self.calls.append(AUTHENTICATE)
        if not self.authenticated:
            raise AuthenticationNeeded

    def check_admin(self, required: int, values: Sequence[HandleValue]) -> None:
        self.calls.append(("check_admin", required, tuple(values)))
        code = self.refuse.get(required, self.refuse_all)
        if code is not None:
            raise ProtocolError(code)

    def check_server_list(self, *list_names: str) -> None:
        self.calls.append(("check_server_list", list_names))
        if self.refuse_lists is not None:
            raise ProtocolError(self.refuse_lists)

    def verify_proof(self) -> None:
        self.calls.append(("verify_proof",))

    @property
    def identity(self) -> tuple[bytes, int] | None:
        return (b"0.NA/TEST", 300) if self.authenticated else None

    def admin_checks(self) -> list[tuple[int, tuple[HandleValue, ...]]]:
        return [(c[1], c[2]) for c in self.calls if c[0] == "check_admin"]  # type: ignore[misc]


class Env:
    """Prefix TEST homed, ``0.NA/TEST`` stored with one HS_ADMIN (``prefix_values``); ``ctx`` builds contexts."""

    def __init__(self, store: LmdbStore) -> None:
        self.store = store
        self.homed = HomedPrefixes(store)
        self.homed.home(b"0.NA/TEST")
        self.prefix_values = (admin(100, b"0.NA/TEST", 300, ts=OLD),)
        store.create_handle(b"0.NA/TEST", self.prefix_values)
        self.config = ServerConfig(this_server_id=1)
        self.site = SITE
        self.position = 0

    def ctx(self, auth: FakeAuthorizer | None = None, *, flags: int = 0, store: object = None,
            **config: object) -> AdminContext:
        return AdminContext(store=store or self.store, homed=self.homed, site=self.site,  # type: ignore[arg-type]
                            this_server_position=self.position,
                            config=dataclasses.replace(self.config, **config), auth=auth or FakeAuthorizer(),
                            now=NOW, flags=flags, suggested_version=(2, 11))


def refused(code: int, message: str, call: object) -> None:
    with pytest.raises(ProtocolError) as err:
        call()  # type: ignore[operator]
    assert (err.value.response_code, err.value.message) == (code, message)

"""What operation handlers receive and return, so that op semantics stay separate from authentication.

Handlers are pure functions of (request body, AdminContext) returning a HandlerResult or raising
ProtocolError. Authentication and authorization are reached through the ``Authorizer`` the dispatcher
provides: it knows whether the request carries a verified challenge answer or an authenticated session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hdlserver.config.settings import ServerConfig
from hdlserver.core.homed import HomedPrefixes
from hdlserver.store.base import Store
from hdlserver.wire.site import SiteInfo
from hdlserver.wire.values import HandleValue


class AuthenticationNeeded(Exception):
    """Raised by a handler at the point where Java would challenge: the dispatcher answers RC 402."""


@dataclass(frozen=True, slots=True)
class HandlerResult:
    response_code: int
    body: object  # a body of hdlserver.wire.bodies; ignored when ``parts`` is given
    extra_flags: int = 0  # OVRW / MINT bits to set in the response header
    parts: tuple[object, ...] = ()  # multi-part answers (list operations): CN on all but the last


class Authorizer(Protocol):
    """Authentication and authorization of the request being handled (auth.md 2, 5, 6)."""

    def require_authentication(self) -> None:
        """Raise AuthenticationNeeded unless the request has an answer/authenticated session (or none is needed)."""
        ...

    def check_admin(self, required: int, values: Sequence[HandleValue]) -> None:
        """auth.md 6.3 for the HS_ADMIN values among ``values``: server_admin_full_access, HS_ADMIN records
        holding every bit of ``required``, HS_VLIST group expansion, identity index 0, then verification of
        the identity. Raises ProtocolError (400 INVALID_ADMIN, 403, 404, 405, 406, 500, 502...)."""
        ...

    def check_server_list(self, *list_names: str) -> None:
        """The list-based check against server_config lists such as ``"server_admins"``, ``"home_only_admins"``."""
        ...

    @property
    def identity(self) -> tuple[bytes, int] | None:
        """(handle, index) of the presented identity, for the access log; None when anonymous."""
        ...


@dataclass(frozen=True, slots=True)
class AdminContext:
    """Everything an operation handler may use besides its request body."""

    store: Store
    homed: HomedPrefixes
    site: SiteInfo
    this_server_position: int
    config: ServerConfig
    auth: Authorizer
    now: int  # seconds since 1970, for value timestamps
    flags: int  # request OpFlags (OVRW, MINT, ...)
    suggested_version: tuple[int, int]

"""Which server an administrative request for a handle goes to.

Like the Java client, a handle's requests go to the site of its prefix: the HS_SITE values of
``0.NA/<prefix>`` (or of the service handle its HS_SERV names), and within a multi-server site to the
server the HS_SITE hash picks (values.md 3.2), on that server's TCP admin interface. Three ways to say
where to start:

* ``FixedRouter``: one server (``--server host:port``) for everything;
* ``SiteRouter``: one site (``--siteinfo FILE``) for everything;
* ``PrefixRouter``: resolve the prefix handle's site through a resolver (``--resolver host:port``) or a
  Java client configuration directory (``resolver_site`` + ``local_nas``, ``--config-dir``).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.errors import ConfigError, DecodeError, HandleError
from hdlserver.wire.handles import prefix_handle_of
from hdlserver.wire.site import PROTO_TCP, ServerInfo, SiteInfo, decode_site
from hdlserver.wire.valuedata import HS_SERV, HS_SITE, decode_handle_ref
from hdlserver.wire.values import ascii_upper

Address = tuple[str, int]

RESOLVER_SITE = "resolver_site"
LOCAL_NAS = "local_nas"
ROOT_INFO = "root_info"
JAVA_CONFIG_DIR_PROPERTY = re.compile(r"-Dnet\.handle\.configDir=(.+)")
_MAX_SERVICE_HOPS = 3  # HS_SERV may point at another service handle; Java stops at a few hops too


class RoutingError(HandleError):
    """No server can be found for a handle's requests; the message says why."""


class Router(Protocol):
    def admin_server(self, handle: bytes) -> Address:
        """The (host, port) of the TCP admin interface responsible for ``handle``."""
        ...

    def site_servers(self, handle: bytes) -> list[Address]:
        """The admin interfaces of every server of ``handle``'s site (list handles asks each of them)."""
        ...

    def site_for(self, handle: bytes) -> SiteInfo | None:
        """The site ``handle`` belongs to; None when requests go to a fixed server whatever its site."""
        ...


def admin_interface(server: ServerInfo) -> Address:
    for iface in server.interfaces:
        if iface.protocol == PROTO_TCP and iface.admin:
            return server.address_text(), iface.port
    raise RoutingError(f"server {server.server_id} ({server.address_text()}) has no TCP admin interface")


class FixedRouter:
    def __init__(self, address: Address) -> None:
        self.address = address

    def admin_server(self, handle: bytes) -> Address:
        return self.address

    def site_servers(self, handle: bytes) -> list[Address]:
        return [self.address]

    def site_for(self, handle: bytes) -> SiteInfo | None:
        return None


class SiteRouter:
    def __init__(self, site: SiteInfo) -> None:
        if not site.servers:
            raise RoutingError("the site information lists no servers")
        self.site = site

    def admin_server(self, handle: bytes) -> Address:
        return admin_interface(self.site.responsible_server(handle))

    def site_servers(self, handle: bytes) -> list[Address]:
        return [admin_interface(server) for server in self.site.servers]

    def site_for(self, handle: bytes) -> SiteInfo | None:
        return self.site


def primary_site(sites: Sequence[SiteInfo]) -> SiteInfo:
    """Admin requests go to a primary site (mirrors refuse them); the first one when there are several."""
    return next((site for site in sites if site.primary), sites[0])


class PrefixRouter:
    """Resolves ``0.NA/<prefix>`` for its HS_SITE values, once per prefix. Prefixes in ``local_prefixes``
    (``*`` = all) use ``local_site`` directly, as the Java client does with ``local_nas``."""

    def __init__(self, resolver: Resolver, *, local_site: SiteInfo | None = None,
                 local_prefixes: frozenset[bytes] = frozenset()) -> None:
        self.resolver = resolver
        self.local_site = local_site
        self.local_prefixes = frozenset(ascii_upper(p) for p in local_prefixes)
        self._sites: dict[bytes, SiteRouter] = {}

    def _router(self, handle: bytes) -> SiteRouter:
        prefix_handle = ascii_upper(prefix_handle_of(handle))
        router = self._sites.get(prefix_handle)
        if router is None:
            router = SiteRouter(self._site_of(prefix_handle))
            self._sites[prefix_handle] = router
        return router

    def _site_of(self, prefix_handle: bytes) -> SiteInfo:
        if self.local_site is not None and (b"*" in self.local_prefixes or prefix_handle in self.local_prefixes):
            return self.local_site
        service = prefix_handle
        for _hop in range(_MAX_SERVICE_HOPS):
            try:
                values = self.resolver.resolve(service, types=(HS_SITE, HS_SERV)).values
            except HandleResponseError as exc:
                raise RoutingError(f"cannot find the site of {prefix_handle.decode('utf-8', 'replace')}: "
                                   f"{exc}") from None
            sites = []
            for value in values:
                if value.type == HS_SITE:
                    try:
                        sites.append(decode_site(value.data))
                    except DecodeError:
                        continue  # a damaged site value: the others may do
            if sites:
                return primary_site(sites)
            services = [decode_handle_ref(v.data) for v in values if v.type == HS_SERV]
            if not services:
                break
            service = services[0]
        raise RoutingError(f"{prefix_handle.decode('utf-8', 'replace')} has no HS_SITE value to send requests to")

    def admin_server(self, handle: bytes) -> Address:
        return self._router(handle).admin_server(handle)

    def site_servers(self, handle: bytes) -> list[Address]:
        return self._router(handle).site_servers(handle)

    def site_for(self, handle: bytes) -> SiteInfo | None:
        return self._router(handle).site


# --- Java client configuration directories ---------------------------------------------------------


def java_config_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path | None:
    """The directory Java tools would read: ``-Dnet.handle.configDir=`` in $JAVA_OPTS, else ~/.handle
    when it holds a resolver_site or a root_info."""
    for word in shlex.split(environ.get("JAVA_OPTS", "")):
        match = JAVA_CONFIG_DIR_PROPERTY.fullmatch(word)
        if match:
            return Path(match.group(1))
    home = Path(environ.get("HOME", "~")).expanduser() / ".handle"
    return home if (home / RESOLVER_SITE).is_file() or (home / ROOT_INFO).is_file() else None


def router_from_config_dir(directory: Path, resolver_factory: Callable[[SiteInfo], Resolver]) -> PrefixRouter:
    """A router for a Java client configuration directory: prefixes listed in local_nas go to resolver_site,
    the others are resolved at resolver_site, or without one at the root site of root_info (as Java's
    global resolution starts at the root)."""
    site_file = directory / RESOLVER_SITE
    if not site_file.is_file():
        root_file = directory / ROOT_INFO
        if root_file.is_file():
            return PrefixRouter(resolver_factory(read_site_info_file(root_file)))
        raise ConfigError(f"neither {RESOLVER_SITE} nor {ROOT_INFO}: this tool needs one to find servers",
                          str(directory))
    site = read_site_info_file(site_file)
    local: frozenset[bytes] = frozenset()
    nas_file = directory / LOCAL_NAS
    if nas_file.is_file():
        try:
            text = nas_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", str(nas_file)) from None
        local = frozenset(line.strip().encode("utf-8") for line in text.splitlines() if line.strip())
    return PrefixRouter(resolver_factory(site), local_site=site, local_prefixes=local)

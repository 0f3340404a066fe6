"""Where a replicating server pulls from: the file-based source site or the HS_SITE values of a handle
(replication.md 1, 3, 4.4, 8 step 1).

Three configurations, chosen by ``source_collection``:

* neither handle key: the site record in ``txnsrcsv.bin`` (wins) or ``txnsrcsv.json``, re-read when the
  file's modification time changes. Its name is ``sources`` and its conflict-rule priority 0; the site is
  returned whole (the mirror skips the one server that is itself).
* ``replication_sites_handle = H``: every HS_SITE / HS_SITE.6 value of H whose site has the primary bit,
  named ``<value index>:H`` with the value index as priority. The value whose site contains this server
  (a server at this server's address with any port equal to one of its interface ports, as Java matches)
  is left out; its name and index become this server's own name and replication priority. As in Java,
  non-primary values are dropped before that match, so a mirror listed in H has no own name.
* ``replication_site_handle_value = "index:H"``: only that value, primary or not (a mirror may pull from a
  mirror this way). When both keys are set, ``replication_sites_handle`` wins, as in Java.

A value whose site record does not decode is skipped with a log line; the others still count.

A refresh of a handle-based collection that fails (no answer, an unverifiable answer, the handle or the
value missing) keeps the sites of the last refresh that worked and logs the error every time: an
operator expects replication from known primaries to go on while the site holding the handle is
unreachable, and each source's stream is still checked against the key in its known site record. Java
instead fails the round. With no earlier success the error is raised (the mirror logs it and skips the
round). A refresh that works replaces the list at once, so a site removed from H is no longer pulled.

``values_resolver`` reads H from the local store when this server is responsible for it (it homes H's
prefix; usual: the prefix handle ``0.NA/X`` on a primary that homes ``0.NA/0.NA``, or on a mirror after a
dump), else by a certified resolution at H's site, found as core/remote_identity.py finds an identity's
site (prefix handle's HS_SITE locally, else the root site of ``~/.handle/root_info``). A copy of H in the
store of a server that does not home its prefix is not used: on a fresh mirror it is the bootstrap record
of hdl-setup-server, not the primary's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hdlserver.config.settings import ServerConfig
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.core.homed import HomedPrefixes
from hdlserver.core.remote_identity import REMOTE_TIMEOUT, SITE_TYPES, RemoteIdentities
from hdlserver.errors import ConfigError, DecodeError, HandleError
from hdlserver.store.base import Store
from hdlserver.store.lmdb_store import LmdbStore
from hdlserver.wire.site import ServerInfo, SiteInfo, decode_site
from hdlserver.wire.values import HandleValue

log = logging.getLogger("hdlserver.replication")

SOURCE_FILES = ("txnsrcsv.bin", "txnsrcsv.json")  # the binary one wins, as in Java
FILE_SOURCE_NAME = "sources"  # the site name of the file-based source (replication.md 3)
SITES_HANDLE_KEY = "replication_sites_handle"
SITE_VALUE_KEY = "replication_site_handle_value"

ResolveValues = Callable[[bytes, tuple[bytes, ...], tuple[int, ...]], Sequence[HandleValue]]

_VALUE_REFERENCE = re.compile(r"(\d+):(.+)", re.DOTALL)


@dataclass(frozen=True)
class SourceSite:
    name: str  # site name as in txnstat.dct and queue names: "sources" (file) or "<value index>:<handle>"
    priority: int  # conflict-rule priority: the HS_SITE value index; 0 for the file-based "sources"
    site: SiteInfo


@dataclass(frozen=True)
class Sources:
    sites: tuple[SourceSite, ...]  # this server's own site excluded
    own_name: str | None  # "<index>:<handle>" of the HS_SITE value that is this server's site; None if none
    own_priority: int  # that value's index; 0 when none


class SourceCollection(Protocol):
    def refresh(self) -> Sources:
        """The current sources (blocking); called at the start of every pull round and by dumpfromprimary."""
        ...


# -- file-based


class FileSources:
    """``txnsrcsv.bin`` / ``txnsrcsv.json``, read again whenever the file used or its mtime changes."""

    def __init__(self, server_dir: Path) -> None:
        self.server_dir = server_dir
        self._seen: tuple[str, int, Sources] | None = None  # file name, mtime_ns, what it said

    def refresh(self) -> Sources:
        for name in SOURCE_FILES:
            path = self.server_dir / name
            try:
                mtime = path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if self._seen is None or self._seen[:2] != (name, mtime):
                site = read_site_info_file(path)
                log.info("replication source: %s (%d servers)", name, len(site.servers))
                self._seen = (name, mtime, Sources((SourceSite(FILE_SOURCE_NAME, 0, site),), None, 0))
            return self._seen[2]
        raise ConfigError(f"no replication source: neither {' nor '.join(SOURCE_FILES)} exists", str(self.server_dir))


# -- handle-based


def parse_value_reference(text: str) -> tuple[int, str]:
    """``index:handle`` of ``replication_site_handle_value``; ConfigError when it is not that."""
    match = _VALUE_REFERENCE.fullmatch(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise ConfigError(f"{SITE_VALUE_KEY} must be <index>:<handle> with a positive index "
                          f"(e.g. 2:0.NA/1234), not {text!r}")
    return int(match.group(1)), match.group(2)


def is_own_site(site: SiteInfo, me: ServerInfo) -> bool:
    """A server of ``site`` at ``me``'s address that has any port of ``me``'s interfaces (Java's match)."""
    ports = {i.port for i in me.interfaces}
    return any(s.address == me.address and any(i.port in ports for i in s.interfaces) for s in site.servers)


def sources_from_values(handle: str, values: Sequence[HandleValue], me: ServerInfo,
                        single_index: int | None = None) -> Sources:
    """The sources a handle's HS_SITE values describe (see the module docstring); pure."""
    sites: list[SourceSite] = []
    own_name: str | None = None
    own_priority = 0
    for value in sorted(values, key=lambda v: v.index):
        if single_index is not None and value.index != single_index:
            continue
        name = f"{value.index}:{handle}"
        if value.type not in SITE_TYPES:
            if single_index is not None:
                log.warning("replication source %s is a %s value, not HS_SITE: skipped", name,
                            value.type.decode("ascii", "replace"))
            continue
        try:
            site = decode_site(value.data)
        except (DecodeError, ValueError) as e:
            log.warning("replication source %s: its HS_SITE data does not decode, value skipped: %s", name, e)
            continue
        if not site.primary and single_index is None:
            continue
        if own_name is None and is_own_site(site, me):
            own_name, own_priority = name, value.index
            continue
        sites.append(SourceSite(name, value.index, site))
    return Sources(tuple(sites), own_name, own_priority)


class HandleSources:
    """The HS_SITE values of ``handle`` (all primary ones, or the one at ``single_index``)."""

    def __init__(self, handle: str, me: ServerInfo, resolve: ResolveValues, single_index: int | None = None) -> None:
        self.handle = handle
        self.me = me
        self.resolve = resolve
        self.single_index = single_index
        self._last: Sources | None = None

    def _what(self) -> str:
        return self.handle if self.single_index is None else f"{self.single_index}:{self.handle}"

    def refresh(self) -> Sources:
        if self.single_index is None:
            types, indexes = SITE_TYPES, ()
        else:
            types, indexes = (), (self.single_index,)
        try:
            values = self.resolve(self.handle.encode("utf-8"), types, indexes)
            if self.single_index is not None and not any(v.index == self.single_index for v in values):
                raise HandleError(f"{self.handle} has no value at index {self.single_index}")
        except (HandleError, OSError) as e:
            if self._last is None:
                raise HandleError(f"cannot read the replication sources from {self._what()}: {e}") from e
            log.error("replication sources: cannot refresh them from %s, keeping the %d site(s) of the last "
                      "refresh: %s", self._what(), len(self._last.sites), e)
            return self._last
        sources = sources_from_values(self.handle, values, self.me, self.single_index)
        if sources != self._last:
            log.info("replication sources from %s: %s; own site: %s", self._what(),
                     ", ".join(s.name for s in sources.sites) or "none", sources.own_name or "none")
        self._last = sources
        return sources


def source_collection(server_dir: Path, config: ServerConfig, me: ServerInfo,
                      resolve: ResolveValues) -> SourceCollection:
    """The sources this configuration names (module docstring); ConfigError for a malformed key."""
    if config.replication_sites_handle:
        return HandleSources(config.replication_sites_handle.strip(), me, resolve)
    if config.replication_site_handle_value:
        index, handle = parse_value_reference(config.replication_site_handle_value)
        return HandleSources(handle, me, resolve, index)
    return FileSources(server_dir)


# -- reading the handle


def _matching(values: Sequence[HandleValue], types: tuple[bytes, ...], indexes: tuple[int, ...]) -> list[HandleValue]:
    """Resolution's selection: every value when both are empty, else those with a listed index or type."""
    if not types and not indexes:
        return list(values)
    return [v for v in values if v.index in indexes or v.type in types]


def values_resolver(store: Store, homed: HomedPrefixes | None = None, timeout: float = REMOTE_TIMEOUT) -> ResolveValues:
    """Read a handle's values here when this server is responsible for it, else at its site (module docstring)."""
    if homed is None:
        if not isinstance(store, LmdbStore):
            raise TypeError("values_resolver needs the homed prefixes of a store other than LmdbStore")
        homed = HomedPrefixes(store)
    prefixes = homed

    def resolve(handle: bytes, types: tuple[bytes, ...], indexes: tuple[int, ...]) -> Sequence[HandleValue]:
        if prefixes.serves(handle):
            local = store.get_values(handle)
            if local is None:
                raise HandleError(f"{handle.decode('utf-8', 'replace')} does not exist here, and this server "
                                  "is the one responsible for it")
            return _matching(local, types, indexes)
        remote = RemoteIdentities(store, prefixes, handle, indexes[0] if indexes else 0,
                                  what="replication sources handle", timeout=timeout)
        return remote.values(types, indexes)

    return resolve

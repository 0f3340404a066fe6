"""hdl-dumpfromprimary SERVER_DIR: fill a stopped mirror (or a new primary of a site) with a dump of its
replication source, like Java's DumpHandlesFromPrimary.

The sources are those the pull loop uses (replication/source_sites.py: ``txnsrcsv.bin``/``txnsrcsv.json``,
``replication_sites_handle`` or ``replication_site_handle_value``). Like Java, it times a GET_SITE_INFO to
each source site (replication/fastest.py), prints the timings and dumps from the fastest site that answered
with success; if that dump fails it goes on with the next site (silent sites last). The request is
authenticated with ``replication_authentication`` (``replpriv.bin``/``replsec.bin``). Every handle and homed
prefix of the source replaces the local store (all at once, only when the dump is complete), and
``txnstat.dct`` is set to the source's last transaction id under the dumped site's name, so the next pull
starts right after the dump.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hdlserver.cli.common import fail
from hdlserver.client.admin import Identity
from hdlserver.config.settings import ServerConfig, load_settings
from hdlserver.config.siteinfo import load_site_info
from hdlserver.errors import ConfigError, HandleError, StorageError
from hdlserver.replication.dump import DumpResult, dump_from, record_dump_state, refuse_if_running
from hdlserver.replication.fastest import Probe, SiteTiming, site_info_probe, time_sites
from hdlserver.replication.puller import open_stream, replication_identity
from hdlserver.replication.source_sites import Sources, SourceSite, source_collection, values_resolver
from hdlserver.store.lmdb_store import DEFAULT_PARTITIONS, open_store
from hdlserver.wire.bodies import DumpHandlesRequest
from hdlserver.wire.site import ServerInfo

PROG = "hdl-dumpfromprimary"
STOP_FILE = "delete_this_to_stop_server"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("server_dir", type=Path, help="the server directory to fill (its server must be stopped)")
    p.add_argument("--retry-wait", type=float, default=5.0, metavar="SECONDS",
                   help="pause before resuming a dump that was cut (default 5, as Java)")
    return p


def _partitions(server_dir: Path, db_directory: str, configured: int | None, case_sensitive: bool) -> int:
    try:
        with open_store(server_dir, case_sensitive=case_sensitive, db_directory=db_directory, readonly=True) as s:
            return s.partitions
    except StorageError:
        return configured or DEFAULT_PARTITIONS


def _sources(server_dir: Path, config: ServerConfig, me: ServerInfo, partitions: int) -> Sources:
    """The current sources; the local store is open only meanwhile (it may hold the sites handle)."""
    with open_store(server_dir, case_sensitive=config.case_sensitive, db_directory=config.db_directory,
                    partitions=partitions) as store:
        return source_collection(server_dir, config, me, values_resolver(store)).refresh()


def _print_timings(timings: list[SiteTiming]) -> None:
    print("dump site timings (GET_SITE_INFO):")
    for timing in timings:
        print("  " + timing.describe())


def dump_from_fastest(server_dir: Path, config: ServerConfig, sources: Sources, partitions: int,
                      request: DumpHandlesRequest, identity: Identity, retry_wait: float,
                      probe: Probe) -> tuple[SourceSite, DumpResult]:
    """Dump from the source sites in the order of their timings until one dump completes."""
    if not sources.sites:
        raise HandleError("no source sites to dump from" + (f" (the only one is this server's own, {sources.own_name})"
                                                             if sources.own_name else ""))
    timings = time_sites(sources.sites, probe)
    _print_timings(timings)
    errors: list[str] = []
    for timing in timings:
        source = timing.source
        try:
            result = dump_from(server_dir, config.db_directory, partitions, config.case_sensitive,
                               list(source.site.servers), request, identity, open_stream,
                               config.replication_timeout_ms / 1000.0, config.replication_accept_prefixes,
                               retry_wait)
        except (HandleError, OSError) as e:
            print(f"dump from {source.name} failed: {e}", file=sys.stderr)
            errors.append(f"{source.name}: {e}")
            continue
        return source, result
    raise HandleError("no source site completed a dump: " + "; ".join(errors))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    server_dir: Path = args.server_dir
    try:
        refuse_if_running(server_dir, STOP_FILE)
        settings = load_settings(server_dir)
        config = settings.server
        own_site = load_site_info(server_dir)
        position = next((i for i, s in enumerate(own_site.servers) if s.server_id == config.this_server_id), 0)
        identity = replication_identity(server_dir, config.replication_authentication)
        request = DumpHandlesRequest(own_site.hash_option, max(1, len(own_site.servers)), position)
        partitions = _partitions(server_dir, config.db_directory, config.storage_partitions, config.case_sensitive)
        if not own_site.servers:
            raise ConfigError("the site record lists no servers", str(server_dir))
        sources = _sources(server_dir, config, own_site.servers[position], partitions)
        source, result = dump_from_fastest(server_dir, config, sources, partitions, request, identity,
                                           args.retry_wait, site_info_probe())
        state = record_dump_state(server_dir, result, own_site_name=sources.own_name, source_site_name=source.name)
    except (ConfigError, HandleError, StorageError, OSError) as e:
        return fail(f"dump failed, the store is unchanged: {e}")
    p = result.progress
    last = p.this_server.last_txn_id if p.this_server is not None else "unknown"
    print(f"dump finished: {p.handles} handles, {p.prefixes} homed prefixes, {p.skipped} skipped; "
          f"source site {source.name}, txn id {last}; replication state in {state.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""hdl-dumpfromprimary SERVER_DIR: fill a stopped mirror (or a new primary of a site) with a dump of its
replication source, like Java's DumpHandlesFromPrimary.

The source is the site in ``txnsrcsv.bin``/``txnsrcsv.json``; the request is authenticated with
``replication_authentication`` (``replpriv.bin``/``replsec.bin``). Every handle and homed prefix of the
source replaces the local store (all at once, only when the dump is complete), and ``txnstat.dct`` is
set to the source's last transaction id, so the next pull starts right after the dump.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hdlserver.cli.common import fail
from hdlserver.config.settings import load_settings
from hdlserver.config.siteinfo import load_site_info, read_site_info_file
from hdlserver.errors import ConfigError, HandleError, StorageError
from hdlserver.replication.dump import dump_from, record_dump_state, refuse_if_running
from hdlserver.replication.mirror import SOURCE_FILES
from hdlserver.replication.puller import open_stream, replication_identity
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


def _source_servers(server_dir: Path) -> list[ServerInfo]:
    for name in SOURCE_FILES:
        if (server_dir / name).exists():
            return list(read_site_info_file(server_dir / name).servers)
    raise ConfigError(f"no replication source: neither {' nor '.join(SOURCE_FILES)} exists", str(server_dir))


def _partitions(server_dir: Path, db_directory: str, configured: int | None, case_sensitive: bool) -> int:
    try:
        with open_store(server_dir, case_sensitive=case_sensitive, db_directory=db_directory, readonly=True) as s:
            return s.partitions
    except StorageError:
        return configured or DEFAULT_PARTITIONS


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
        result = dump_from(server_dir, config.db_directory, partitions, config.case_sensitive,
                           _source_servers(server_dir), request, identity, open_stream,
                           config.replication_timeout_ms / 1000.0, config.replication_accept_prefixes,
                           args.retry_wait)
        state = record_dump_state(server_dir, result)
    except (ConfigError, HandleError, StorageError, OSError) as e:
        return fail(f"dump failed, the store is unchanged: {e}")
    p = result.progress
    last = p.this_server.last_txn_id if p.this_server is not None else "unknown"
    print(f"dump finished: {p.handles} handles, {p.prefixes} homed prefixes, {p.skipped} skipped; "
          f"source txn id {last}; replication state in {state.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

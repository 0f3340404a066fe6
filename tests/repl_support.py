"""Setting up replicating server directories for tests: an hdlserver primary and hdlserver mirrors.

A mirror is an ordinary server directory whose own site record is not primary, with the source's site
record as ``txnsrcsv.json``, the key of an identity the source accepts as ``replpriv.bin``, and
``replication_authentication`` in config.dct (the setup of ../shared/handle-java/REPLICATION.md).
Waits are bounded: ``wait_for`` polls at most ``timeout`` seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from servers import ServerProcess, run_cli, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.config.siteinfo import load_site_info
from hdlserver.errors import HandleError
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.site import encode_site
from hdlserver.wire.values import HandleValue

T = TypeVar("T")

TXN_QUEUE_LINE = '    "enable_txn_queue" = "yes"\n'


def add_server_config(directory: Path, *lines: str) -> None:
    """Add ``server_config`` entries (``"key" = "value"`` lines) after the enable_txn_queue line."""
    config = directory / "config.dct"
    text = config.read_text(encoding="utf-8")
    assert TXN_QUEUE_LINE in text, "setup wrote no enable_txn_queue line"
    config.write_text(text.replace(TXN_QUEUE_LINE, TXN_QUEUE_LINE + "".join(f"    {line}\n" for line in lines)),
                      encoding="utf-8")


def make_mirror(directory: Path, source_siteinfo: Path, replication_key: Path, *, interval_ms: int = 500,
                identity: str = "301:0.NA/TEST", extra: tuple[str, ...] = ()) -> int:
    """An hdlserver mirror of the site in ``source_siteinfo``; returns its port. Like hdl-local-server-setup,
    the prefix TEST is homed in its store before the first start (mirrors do not auto-home)."""
    port = setup_server_dir(directory, prefix="TEST", secret="mirror-secret")
    siteinfo = directory / "siteinfo.json"
    site = json.loads(siteinfo.read_text(encoding="utf-8"))
    site["primarySite"] = False
    siteinfo.write_text(json.dumps(site, indent=2), encoding="utf-8")
    shutil.copyfile(source_siteinfo, directory / "txnsrcsv.json")
    shutil.copyfile(replication_key, directory / "replpriv.bin")
    add_server_config(directory, f'"replication_authentication" = "privatekey:{identity}"',
                      f'"replication_interval" = "{interval_ms}"', *extra)
    with open_store(directory, case_sensitive=False) as store:
        store.home_prefix(b"0.NA/TEST", log=False)
    return port


def wait_for(check: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something other than None/False (at most ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def resolved_urls(address: tuple[str, int], handle: str) -> list[bytes] | None:
    """The URL values of ``handle`` at ``address``; None when it does not resolve (yet)."""
    try:
        resolution = Resolver([address], udp=False).resolve(handle)
    except (HandleResponseError, HandleError, OSError):
        return None
    return [v.data for v in resolution.values if v.type == b"URL"]


def txnstat_last_id(directory: Path) -> int | None:
    path = directory / "txnstat.dct"
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    marker = '"last_txn_id" = "'
    at = text.find(marker)
    return None if at < 0 else int(text[at + len(marker) : text.index('"', at + len(marker))])


def set_multi_primary(siteinfo: Path) -> None:
    """Set the multi-primary bit of a siteinfo.json (hdlserver's or Java's)."""
    site = json.loads(siteinfo.read_text(encoding="utf-8"))
    site["multiPrimary"] = True
    siteinfo.write_text(json.dumps(site, indent=2), encoding="utf-8")


SITES_HANDLE = "0.NA/TEST"


def start_primaries_of_sites_handle(root: Path, interval_ms: int = 300) -> tuple[ServerProcess, ServerProcess]:
    """Two running multi-primary hdlserver primaries, a and b, that are the HS_SITE values 1 and 2 of
    0.NA/TEST and replicate from each other through ``replication_sites_handle``. a homes 0.NA/0.NA and is
    b's root site (``~/.handle/root_info``); b joins with ``hdl-dumpfromprimary`` from a, so both hold a's
    0.NA/TEST and pull as 301:0.NA/TEST with a's key."""
    ports = {}
    for name in ("a", "b"):
        directory = root / name
        ports[name] = setup_server_dir(directory)
        set_multi_primary(directory / "siteinfo.json")
        shutil.copyfile(root / "a" / "admpriv.bin", directory / "replpriv.bin")
        add_server_config(directory, '"replication_authentication" = "privatekey:301:0.NA/TEST"',
                          f'"replication_interval" = "{interval_ms}"', f'"replication_sites_handle" = "{SITES_HANDLE}"')
    a = start_server(root / "a", ports["a"])
    try:
        with AdminClient(a.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")) as admin:
            admin.add_values(SITES_HANDLE, [HandleValue(1, b"HS_SITE", encode_site(load_site_info(root / "a"))),
                                            HandleValue(2, b"HS_SITE", encode_site(load_site_info(root / "b")))])
        home = root / "home-b"
        (home / ".handle").mkdir(parents=True)
        shutil.copyfile(root / "a" / "siteinfo.json", home / ".handle" / "root_info")
        env = {**os.environ, "HOME": str(home)}
        run_cli("hdlserver.cli.dumpfromprimary", root / "b", "--retry-wait", "0", env=env)
        return a, start_server(root / "b", ports["b"], env=env)
    except BaseException:
        a.stop()
        raise

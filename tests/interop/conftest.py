"""Interop fixtures: one hdlserver and one Java Handle.Net server per test session, holding the same handles.

Both servers get prefix TEST with admin secret "secret". The Java server is set up by
``hdl-local-server-setup``; its ``0.NA/TEST`` record (bootstrap.json) is loaded into hdlserver too, and
``INTEROP_RECORDS`` into both (Java: its offline JSON loader; hdlserver: hdl-loadjson), so the same
request must get the same answer from either. Every test here needs the Java tools and skips without them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from java import (
    AdminTarget,
    JavaServer,
    load_java_records,
    require_java,
    setup_java_server,
    start_java_server,
    write_client_config,
)
from servers import ServerProcess, free_port, run_cli, setup_server_dir, start_server

PREFIX_HANDLE = "0.NA/TEST"
ADMIN_SECRET = "secret"
MANY_VALUES = 40

_ADMIN_VALUE = {"index": 100, "type": "HS_ADMIN", "data": {
    "format": "admin", "value": {"handle": PREFIX_HANDLE, "index": 300, "permissions": "111111111111"}}}

INTEROP_RECORDS: list[dict[str, Any]] = [
    {"handle": "TEST/hello", "values": [
        _ADMIN_VALUE,
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://www.handle.net/"}},
        {"index": 2, "type": "DESC", "data": {"format": "string", "value": "A sample handle"}},
    ]},
    {"handle": "TEST/mixed", "values": [
        _ADMIN_VALUE,
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://example.org/public"}},
        {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "someone@example.org"}, "ttl": 3600},
        {"index": 3, "type": "SECRET", "data": {"format": "string", "value": "hidden"}, "permissions": "1100"},
        {"index": 4, "type": "URL.us", "data": {"format": "string", "value": "http://example.org/us"},
         "references": [{"handle": "TEST/hello", "index": 1}]},
        {"index": 5, "type": "BLOB", "data": {"format": "base64", "value": "AAECAwT/"},
         "ttl": "2030-01-01T00:00:00Z"},
        {"index": 6, "type": "HS_VLIST", "data": {"format": "vlist",
                                                  "value": [{"handle": PREFIX_HANDLE, "index": 300}]}},
    ]},
    {"handle": "TEST/many", "values": [_ADMIN_VALUE] + [
        {"index": i, "type": "URL", "data": {"format": "string", "value": f"http://example.org/a/long/path/{i:03d}"}}
        for i in range(1, MANY_VALUES + 1)]},
]


@pytest.fixture(autouse=True)
def _java_tools_present() -> None:
    """Skip every interop test, naming what is missing, when ../shared/handle-java cannot run."""
    require_java()


@pytest.fixture(scope="session")
def interop_records() -> list[dict[str, Any]]:
    return INTEROP_RECORDS


@pytest.fixture(scope="session")
def java_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaServer]:
    """A running Java Handle.Net 9.2 server on 127.0.0.1 (prefix TEST) holding ``INTEROP_RECORDS``."""
    require_java()
    directory = tmp_path_factory.mktemp("java") / "srv"
    port = free_port()
    setup_java_server(directory, port, "TEST", ADMIN_SECRET)
    load_java_records(directory, INTEROP_RECORDS)
    server = start_java_server(directory, port)
    yield server
    server.stop()


def java_prefix_record(java_dir: Path) -> dict[str, Any]:
    """The 0.NA/TEST record hdl-local-server-setup loaded into the Java server."""
    bootstrap = json.loads((java_dir / "bootstrap.json").read_text(encoding="utf-8"))
    return bootstrap["handleRecords"][PREFIX_HANDLE]


@pytest.fixture(scope="session")
def hdl_server(tmp_path_factory: pytest.TempPathFactory, java_server: JavaServer) -> Iterator[ServerProcess]:
    """A running hdlserver (prefix TEST, secret "secret") with the Java server's 0.NA/TEST record and
    ``INTEROP_RECORDS``."""
    directory = tmp_path_factory.mktemp("hdlserver") / "srv"
    port = setup_server_dir(directory, prefix="TEST", secret=ADMIN_SECRET)
    records = [java_prefix_record(java_server.directory), *INTEROP_RECORDS]
    records_file = directory.parent / "records.json"
    records_file.write_text(json.dumps(records, indent=1), encoding="utf-8")
    run_cli("hdlserver.cli.loadjson", directory, records_file, "--overwrite")
    for name in ("admpriv.bin", "admpub.bin"):  # the key pair that now matches 301:0.NA/TEST
        shutil.copyfile(java_server.directory / name, directory / name)
    server = start_server(directory, port)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hdl_clients(tmp_path_factory: pytest.TempPathFactory, hdl_server: ServerProcess) -> dict[str, Path]:
    """Java client configurations for hdlserver: "udp" (UDP first, as Java does) and "tcp" (TCP only)."""
    base = tmp_path_factory.mktemp("java-clients-hdl")
    siteinfo = hdl_server.directory / "siteinfo.json"
    return {"udp": write_client_config(base / "udp", siteinfo, udp=True),
            "tcp": write_client_config(base / "tcp", siteinfo, udp=False)}


@pytest.fixture(scope="session")
def java_clients(tmp_path_factory: pytest.TempPathFactory, java_server: JavaServer) -> dict[str, Path]:
    """The same two Java client configurations for the Java server."""
    base = tmp_path_factory.mktemp("java-clients-java")
    return {"udp": write_client_config(base / "udp", java_server.siteinfo, udp=True),
            "tcp": write_client_config(base / "tcp", java_server.siteinfo, udp=False)}


@pytest.fixture(scope="session")
def admin_targets(hdl_server: ServerProcess, java_server: JavaServer, hdl_clients: dict[str, Path],
                  java_clients: dict[str, Path]) -> dict[str, AdminTarget]:
    """Both servers, "ours" and "java", for tests that run the same admin work against each."""
    secret = ADMIN_SECRET.encode()
    return {"ours": AdminTarget("ours", hdl_server.address, hdl_clients["tcp"], hdl_server.directory / "admpriv.bin",
                                secret),
            "java": AdminTarget("java", java_server.address, java_clients["tcp"],
                                java_server.directory / "admpriv.bin", secret)}

"""Replication over the HTTP interface with the Java Handle.Net 9.2 replication build (bin/hdl-repl).

* A Java mirror whose source record lists only our primary's HTTP interface pulls creates, value changes
  and deletes. Java's resolver (``sendRequestToInterface``) sends 1001 from version 2.8 on over TLS to
  that HTTP port when the server key is not DSA, pins the HS_SITE key in the handshake, and reads the
  unsigned stream our tunnel then sends; the session setup and the challenge answer are POSTs of their own.
* The other direction needs a Java primary that serves HTTP. This build leaves Jetty and the servlets out
  (REPLICATION.md: ``patches/nojetty_noje.py``), so a Java server ignores ``hdl_http``: one test shows that,
  and the pull from a Java primary over HTTP is skipped, naming why, unless the jar has the native servlet.
"""

from __future__ import annotations

import json
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from java import HANDLE_JAVA, require_java
from repl_support import make_mirror, resolved_urls, txnstat_last_id, wait_for
from servers import ServerProcess, free_port, setup_server_dir, start_server
from test_repl_java import (
    HS_ADMIN_LINE,
    java_batch,
    java_resolves,
    make_java_mirror,
    newest_txn_id,
    set_java_server_config,
    setup_java,
    start_java_repl_server,
)

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.wire.values import HandleValue

REPL_JAR = HANDLE_JAVA / "lib-repl" / "handle-9.2.0-repl.jar"
NATIVE_SERVLET = "net/handle/server/servletcontainer/servlets/NativeServlet.class"
ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


@pytest.fixture(autouse=True)
def _replication_build_present() -> None:
    require_java()
    if not (REPL_JAR.is_file() and Path("/usr/share/java/db-je.jar").is_file()):
        pytest.skip("the Java replication build is missing: run ../shared/handle-java/install.sh --repl")


def url(text: str) -> HandleValue:
    return HandleValue(1, b"URL", text.encode())


def http_only_record(siteinfo: Path, out: Path, port: int | None = None) -> Path:
    """``siteinfo`` with the HTTP interface as its only one (at ``port`` when given)."""
    site = json.loads(siteinfo.read_text(encoding="utf-8"))
    for server in site["servers"]:
        server["interfaces"] = [{"query": True, "admin": True, "protocol": "HTTP", "port": port}] if port else [
            i for i in server["interfaces"] if i["protocol"] == "HTTP"]
        assert server["interfaces"], "no HTTP interface to keep"
    out.write_text(json.dumps(site, indent=2), encoding="utf-8")
    return out


def java_has_http() -> bool:
    with zipfile.ZipFile(REPL_JAR) as jar:
        return NATIVE_SERVLET in jar.namelist()


# ---------------------------------------------------------------------------------------------------
# hdlserver primary (HTTP interface only), Java mirror


@pytest.fixture(scope="module")
def our_http_primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("repl-http-ours") / "primary"
    port = setup_server_dir(directory, extra=("--http-port", str(free_port())))
    server = start_server(directory, port)
    yield server
    server.stop()


def test_java_mirror_pulls_from_hdlserver_over_http(tmp_path: Path, our_http_primary: ServerProcess) -> None:
    record = http_only_record(our_http_primary.directory / "siteinfo.json", tmp_path / "source.json")
    directory = tmp_path / "mirror"
    port = make_java_mirror(directory, record, our_http_primary.directory / "admpriv.bin")
    mirror = start_java_repl_server(directory, port)
    try:
        with AdminClient(our_http_primary.address, ADMIN) as admin:
            admin.create_handle("TEST/h1", [url("http://example.org/h1")])
            admin.create_handle("TEST/h2", [url("http://example.org/h2")])
            admin.modify_values("TEST/h1", [url("http://example.org/h1-modified")])
        newest = newest_txn_id(our_http_primary.directory)
        wait_for(lambda: txnstat_last_id(directory) == newest, 40, "the Java mirror's txnstat.dct")
        assert java_resolves(mirror.client_dir, "TEST/h1", "h1-modified")
        with AdminClient(our_http_primary.address, ADMIN) as admin:
            admin.delete_handle("TEST/h2")
        wait_for(lambda: txnstat_last_id(directory) == newest + 1, 40, "the delete on the Java mirror")
        assert java_resolves(mirror.client_dir, "TEST/h2", "HANDLE NOT FOUND")
    finally:
        mirror.stop()
    access = (our_http_primary.directory / "logs" / "access.log").read_text(encoding="utf-8").splitlines()
    pulls = [line for line in access if " 1001 1 " in line]
    assert pulls and all("HTTP:HDL" in line for line in pulls), pulls[-3:]
    assert any(" 400 1 " in line and "HTTP:HDL" in line for line in access)  # Java's session setup, over HTTP


# ---------------------------------------------------------------------------------------------------
# Java primary over HTTP: not in this build


def _java_primary_with_http(directory: Path) -> tuple[int, int]:
    port = setup_java(directory, "secret")
    http = free_port()
    set_java_server_config(directory, '"enable_txn_queue" = "yes"')
    config = directory / "config.dct"
    text = config.read_text(encoding="utf-8")
    text = text.replace('    "hdl_tcp"\n  )', '    "hdl_tcp"\n    "hdl_http"\n  )', 1)
    text = text.replace('  "log_save_config" = {', '  "hdl_http_config" = {\n    "bind_address" = "127.0.0.1"\n'
                        f'    "bind_port" = "{http}"\n    "num_threads" = "15"\n    "log_accesses" = "yes"\n  }}\n'
                        '  "log_save_config" = {', 1)
    assert '"hdl_http"' in text and f'"{http}"' in text
    config.write_text(text, encoding="utf-8")
    return port, http


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_java_replication_build_does_not_serve_http(tmp_path: Path) -> None:
    """Why the Java-primary direction is skipped: no native servlet in the jar, hdl_http is ignored."""
    assert not java_has_http()
    port, http = _java_primary_with_http(tmp_path / "primary")
    server = start_java_repl_server(tmp_path / "primary", port)
    error_log = tmp_path / "primary" / "logs" / "error.log"  # the server's stderr, once it has started
    warning = "interface hdl_http ignored: HTTP interface (Jetty) is not included in this build"
    try:
        wait_for(lambda: error_log.is_file() and warning in error_log.read_text(encoding="utf-8"), 10,
                 "the Java server's warning about hdl_http")
        assert not _listening(http)
    finally:
        server.stop()


def test_hdlserver_mirror_pulls_from_java_over_http(tmp_path: Path) -> None:
    if not java_has_http():
        pytest.skip("the Java replication build has no HTTP interface (Jetty and the native servlet are left out, "
                    "see ../shared/handle-java/REPLICATION.md), so a Java primary cannot serve 1001 over HTTP")
    port, http = _java_primary_with_http(tmp_path / "primary")
    primary = start_java_repl_server(tmp_path / "primary", port)
    try:
        record = http_only_record(primary.siteinfo, tmp_path / "source.json", port=http)
        directory = tmp_path / "mirror"
        mirror = start_server(directory, make_mirror(directory, record, primary.directory / "admpriv.bin"))
        try:
            log = java_batch(primary.client_dir, tmp_path, "create",
                             f"CREATE TEST/jh\n{HS_ADMIN_LINE}\n1 URL 86400 1110 UTF8 http://example.org/jh\n")
            assert "==>SUCCESS[" in log, log
            assert wait_for(lambda: resolved_urls(mirror.address, "TEST/jh"), 40, "the pull from Java over HTTP")
        finally:
            mirror.stop()
    finally:
        primary.stop()

"""A Java mirror (replication build) whose sources are a replication sites handle, pulling from two
hdlserver multi-primaries that are the HS_SITE values 1 and 2 of 0.NA/TEST.

Java resolves 0.NA/TEST through its resolver (here pointed at primary a, which homes 0.NA/0.NA), finds
both primary sites, names their queues ``0:1:0.NA/TEST`` and ``0:2:0.NA/TEST``, and replicates changes
made on either primary.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from java import JavaServer, write_client_config
from repl_support import SITES_HANDLE, start_primaries_of_sites_handle, wait_for
from servers import ServerProcess
from test_repl_java import (
    _replication_build_present,  # noqa: F401 -- the autouse skip when the replication build is missing
    java_resolves,
    make_java_mirror,
    start_java_repl_server,
)

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess, JavaServer, Path]]:
    root = tmp_path_factory.mktemp("sites-handle-java")
    a, b = start_primaries_of_sites_handle(root)
    started: list[ServerProcess | JavaServer] = [a, b]
    try:
        java_dir = root / "java-mirror"
        port = make_java_mirror(java_dir, None, a.directory / "admpriv.bin",
                                f'"replication_sites_handle" = "{SITES_HANDLE}"')
        shutil.rmtree(java_dir / "client")
        write_client_config(java_dir / "client", a.directory / "siteinfo.json")  # its resolver asks a
        java = start_java_repl_server(java_dir, port)
        started.append(java)
        ask_mirror = write_client_config(root / "ask-mirror", java_dir / "siteinfo.json")
        yield a, b, java, ask_mirror
    finally:
        for server in reversed(started):
            server.stop()


def test_a_java_mirror_replicates_both_primaries_of_the_sites_handle(
        group: tuple[ServerProcess, ServerProcess, JavaServer, Path]) -> None:
    a, b, java, ask_mirror = group
    with AdminClient(a.address, ADMIN) as admin:
        admin.create_handle("TEST/made-on-a", [HandleValue(1, b"URL", b"http://example.org/made-on-a")])
    with AdminClient(b.address, ADMIN) as admin:
        admin.create_handle("TEST/made-on-b", [HandleValue(1, b"URL", b"http://example.org/made-on-b")])
    wait_for(lambda: java_resolves(ask_mirror, "TEST/made-on-a", "made-on-a"), 45, "a's create on the Java mirror")
    wait_for(lambda: java_resolves(ask_mirror, "TEST/made-on-b", "made-on-b"), 45, "b's create on the Java mirror")

    def both_queues_named() -> bool:  # Java saves txnstat.dct after each round
        path = java.directory / "txnstat.dct"
        state = path.read_text(encoding="utf-8") if path.exists() else ""
        return f'"1:{SITES_HANDLE}"' in state and f'"2:{SITES_HANDLE}"' in state

    wait_for(both_queues_named, 30, "the two queues in the Java mirror's txnstat.dct")

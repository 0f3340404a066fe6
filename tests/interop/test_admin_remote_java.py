"""Identities homed on the real Java 9.2 server, verified by hdlserver through it (auth.md 5): the HS_SECKEY
answer by Java's VERIFY_CHALLENGE (201), the HS_PUBKEY keys by a certified resolution; both Java answers are
accepted only with the request digest and an HS_SIGNED that verifies with the key in Java's HS_SITE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ADMIN_SECRET
from java import JavaServer
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.admin import AdminClient, Identity, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import encode_site
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

KEYS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "keys"
JAVA_IDENTITY = b"TEST/hdl-remote-admin"
JAVA_SECRET = b"java-side-pass"
TARGET = b"LOCAL/target"


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory, java_server: JavaServer) -> Iterator[ServerProcess]:
    """hdlserver (prefix LOCAL) whose 0.NA/TEST names the Java server's site; TEST/hdl-remote-admin lives on Java."""
    with AdminClient(java_server.address, SecretKeyIdentity(b"0.NA/TEST", 300, ADMIN_SECRET.encode()),
                     timeout=30) as java_admin:
        java_admin.create_handle(JAVA_IDENTITY, [
            HandleValue(300, b"HS_SECKEY", JAVA_SECRET, permissions=0x0C),
            HandleValue(301, b"HS_PUBKEY", (KEYS / "rsa2048_pub.bin").read_bytes()),
            HandleValue(100, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)))])
    directory = tmp_path_factory.mktemp("remote-java") / "srv"
    port = setup_server_dir(directory, prefix="LOCAL")
    store = open_store(directory, case_sensitive=False, sync=False)
    try:
        java_site = encode_site(read_site_info_file(java_server.siteinfo))
        store.create_handles([
            (b"0.NA/TEST", [HandleValue(1, b"HS_SITE", java_site)]),
            (TARGET, [HandleValue(100 + i, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, JAVA_IDENTITY, i)))
                      for i in (300, 301)] + [HandleValue(1, b"URL", b"https://example.org/local")]),
        ], log=False)
    finally:
        store.close()
    server = start_server(directory, port)
    yield server
    server.stop()


def target_indexes(server: ServerProcess) -> list[int]:
    store = open_store(server.directory, case_sensitive=False, readonly=True)
    try:
        return sorted(v.index for v in store.get_values(TARGET) or ())
    finally:
        store.close()


def add_email(server: ServerProcess, identity: Identity, index: int) -> None:
    with AdminClient(server.address, identity, timeout=30) as client:
        client.add_values(TARGET, [HandleValue(index, b"EMAIL", b"java@example.org")])


@pytest.mark.parametrize("identity,index", [
    (SecretKeyIdentity(JAVA_IDENTITY, 300, JAVA_SECRET), 10),
    (PublicKeyIdentity(JAVA_IDENTITY, 301, keys.load_private_key(KEYS / "rsa2048_priv_plain.bin")), 11),
], ids=["seckey-by-java-201", "pubkey-from-java-resolution"])
def test_identity_on_the_java_server_is_verified_there(local_server: ServerProcess, identity: Identity,
                                                       index: int) -> None:
    add_email(local_server, identity, index)
    assert index in target_indexes(local_server)


def test_wrong_secret_rejected_by_java_is_403(local_server: ServerProcess) -> None:
    before = target_indexes(local_server)
    with pytest.raises(HandleResponseError) as err:
        add_email(local_server, SecretKeyIdentity(JAVA_IDENTITY, 300, b"wrong"), 12)
    assert err.value.response_code == ResponseCode.AUTHENTICATION_FAILED
    assert target_indexes(local_server) == before

"""Remote identities found through the root site (auth.md 5; server.md 1 ``~/.handle/root_info``).

Server R plays the root: it homes 0.NA/0.NA and ROOTED, and holds 0.NA/ROOTADM (an identity that is a prefix
handle, as prefix administrators usually are) and ROOTED/sec. Server C does not home 0.NA/0.NA; its
internal client's root_info names R. For 300:0.NA/ROOTADM, C sends the 201 to the root; for 300:ROOTED/sec
it first resolves 0.NA/ROOTED's HS_SITE at the root (certified), then sends the 201 to that site.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import encode_site
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

TARGET = b"TEST/root-target"
ROOT_ADMIN = SecretKeyIdentity(b"0.NA/ROOTADM", 300, b"root-admin-pass")
ROOTED = SecretKeyIdentity(b"ROOTED/sec", 300, b"rooted-pass")
UNKNOWN = SecretKeyIdentity(b"UNKNOWN/sec", 300, b"unknown-pass")


def secret_value(identity: SecretKeyIdentity) -> HandleValue:
    return HandleValue(identity.index, b"HS_SECKEY", identity.secret, permissions=0x0C)


def admin(index: int, identity: SecretKeyIdentity) -> HandleValue:
    return HandleValue(index, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, identity.handle, 300)))


@pytest.fixture(scope="module")
def client_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root_dir = tmp_path_factory.mktemp("remote-root")
    r_dir, c_dir, home = root_dir / "r", root_dir / "c", root_dir / "home"
    r_port = setup_server_dir(r_dir, prefix="ROOTED")
    c_port = setup_server_dir(c_dir)
    r_site = read_site_info_file(r_dir / "siteinfo.json")
    store = open_store(r_dir, case_sensitive=False, sync=False)
    try:
        rooted_values = [v for v in store.get_values(b"0.NA/ROOTED") or () if v.index != 1]
        store.create_handle(b"0.NA/ROOTED", [HandleValue(1, b"HS_SITE", encode_site(r_site)), *rooted_values],
                            overwrite=True, log=False)
        store.create_handles([(ROOT_ADMIN.handle, [secret_value(ROOT_ADMIN)]),
                              (ROOTED.handle, [secret_value(ROOTED)])], log=False)
    finally:
        store.close()
    config = c_dir / "config.dct"
    config.write_text(config.read_text().replace('      "0.NA/0.NA"\n', ""))
    store = open_store(c_dir, case_sensitive=False, sync=False)
    try:
        store.unhome_prefix(b"0.NA/0.NA", log=False)
        store.create_handle(TARGET, [admin(100, ROOT_ADMIN), admin(101, ROOTED), admin(102, UNKNOWN),
                                     HandleValue(1, b"URL", b"https://example.org/root")], log=False)
    finally:
        store.close()
    (home / ".handle").mkdir(parents=True)
    shutil.copy(r_dir / "siteinfo.json", home / ".handle" / "root_info")
    r = start_server(r_dir, r_port)
    try:
        c = start_server(c_dir, c_port, env={"HOME": str(home)})
    except BaseException:
        r.stop()
        raise
    yield c
    c.stop()
    r.stop()


def add_email(server: ServerProcess, identity: SecretKeyIdentity, index: int) -> None:
    with AdminClient(server.address, identity, timeout=30) as client:
        client.add_values(TARGET, [HandleValue(index, b"EMAIL", b"root@example.org")])


def target_indexes(server: ServerProcess) -> list[int]:
    store = open_store(server.directory, case_sensitive=False, readonly=True)
    try:
        return sorted(v.index for v in store.get_values(TARGET) or ())
    finally:
        store.close()


def test_prefix_handle_identity_is_verified_at_the_root(client_server: ServerProcess) -> None:
    add_email(client_server, ROOT_ADMIN, 10)
    assert 10 in target_indexes(client_server)


def test_identity_site_is_resolved_at_the_root(client_server: ServerProcess) -> None:
    add_email(client_server, ROOTED, 11)
    assert 11 in target_indexes(client_server)


def test_wrong_secret_checked_at_the_root_is_403(client_server: ServerProcess) -> None:
    before = target_indexes(client_server)
    with pytest.raises(HandleResponseError) as err:
        add_email(client_server, SecretKeyIdentity(ROOT_ADMIN.handle, 300, b"wrong"), 12)
    assert err.value.response_code == ResponseCode.AUTHENTICATION_FAILED
    assert target_indexes(client_server) == before


def test_prefix_unknown_at_the_root_is_406(client_server: ServerProcess) -> None:
    before = target_indexes(client_server)
    with pytest.raises(HandleResponseError) as err:
        add_email(client_server, UNKNOWN, 13)
    assert err.value.response_code == ResponseCode.AUTHEN_ERROR
    assert "Cannot verify identity 300:UNKNOWN/sec" in err.value.message
    assert "the root server" in err.value.message and "RC 100 HANDLE_NOT_FOUND" in err.value.message
    assert target_indexes(client_server) == before

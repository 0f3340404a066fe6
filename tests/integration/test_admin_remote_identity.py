"""Identities homed on another server (auth.md 5): HS_SECKEY answers checked by op 201 there, HS_PUBKEY keys
fetched from there by certified resolution; unreachable or untrustworthy servers give a clear RC 406.

Server B homes REMOTE and FAKE and holds the identities. Server A (the one administered) holds the prefix
handles: 0.NA/REMOTE with B's HS_SITE, 0.NA/FAKE with B's address but another server's key, 0.NA/DEAD with
the site of a server that is not running.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.admin import AdminClient, Identity, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.core.remote_identity import REMOTE_TIMEOUT
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import encode_site
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin, encode_vlist
from hdlserver.wire.values import HandleValue, ValueReference

KEYS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "keys"
TARGET = b"TEST/remote-target"
REMOTE_SEC = SecretKeyIdentity(b"REMOTE/sec", 300, b"remote-pass")
FAKE_SEC = SecretKeyIdentity(b"FAKE/sec", 300, b"fake-pass")
DEAD_SEC = SecretKeyIdentity(b"DEAD/sec", 300, b"dead-pass")
NOSITE_SEC = SecretKeyIdentity(b"NOSITE/sec", 300, b"nosite-pass")
MEMBER = SecretKeyIdentity(b"REMOTE/member", 300, b"member-pass")  # only in the group REMOTE/group, on B

pytestmark = pytest.mark.skipif(not KEYS.is_dir(), reason=f"key vectors not found at {KEYS}")


def rsa_key() -> keys.PrivateKey:
    return keys.load_private_key(KEYS / "rsa2048_priv_plain.bin")


def admin(index: int, handle: bytes) -> HandleValue:
    return HandleValue(index, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, handle, 300)))


def group_admin(index: int, group: bytes) -> HandleValue:
    return HandleValue(index, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, group, 200)))


def site_value(data: bytes) -> HandleValue:
    return HandleValue(1, b"HS_SITE", data)


def seed(directory: Path, records: list[tuple[bytes, list[HandleValue]]], homed: tuple[bytes, ...] = ()) -> None:
    store = open_store(directory, case_sensitive=False, sync=False)
    try:
        store.create_handles(records, log=False)
        for prefix in homed:
            store.home_prefix(prefix, log=False)
    finally:
        store.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    root = tmp_path_factory.mktemp("remote")
    b_dir, a_dir, dead_dir = root / "b", root / "a", root / "dead"
    b_port = setup_server_dir(b_dir, prefix="REMOTE")
    setup_server_dir(dead_dir, prefix="DEAD")  # never started: its port stays closed
    a_port = setup_server_dir(a_dir)
    secret = HandleValue(300, b"HS_SECKEY", b"", permissions=0x0C)
    seed(b_dir, [(REMOTE_SEC.handle, [dataclasses.replace(secret, data=REMOTE_SEC.secret)]),
                 (FAKE_SEC.handle, [dataclasses.replace(secret, data=FAKE_SEC.secret)]),
                 (b"REMOTE/rsa", [HandleValue(300, b"HS_PUBKEY", (KEYS / "rsa2048_pub.bin").read_bytes())]),
                 (MEMBER.handle, [dataclasses.replace(secret, data=MEMBER.secret)]),
                 (b"REMOTE/group", [HandleValue(200, b"HS_VLIST", encode_vlist((ValueReference(MEMBER.handle,
                                                                                             300),)))])],
         homed=(b"0.NA/FAKE",))
    b_site = read_site_info_file(b_dir / "siteinfo.json")
    dead_site = read_site_info_file(dead_dir / "siteinfo.json")
    wrong_key = dataclasses.replace(b_site, servers=tuple(
        dataclasses.replace(s, public_key=dead_site.servers[0].public_key) for s in b_site.servers))
    seed(a_dir, [(b"0.NA/REMOTE", [site_value(encode_site(b_site))]),
                 (b"0.NA/FAKE", [site_value(encode_site(wrong_key))]),
                 (b"0.NA/DEAD", [site_value(encode_site(dead_site))]),
                 (TARGET, [admin(100, REMOTE_SEC.handle), admin(101, b"REMOTE/rsa"), admin(102, FAKE_SEC.handle),
                           admin(103, DEAD_SEC.handle), admin(104, NOSITE_SEC.handle),
                           group_admin(105, b"REMOTE/group"), group_admin(106, b"DEAD/group"),
                           HandleValue(1, b"URL", b"https://example.org/remote")])])
    b = start_server(b_dir, b_port)
    try:
        a = start_server(a_dir, a_port)
    except BaseException:
        b.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


def stored(a: ServerProcess) -> tuple[HandleValue, ...] | None:
    store = open_store(a.directory, case_sensitive=False, readonly=True)
    try:
        return store.get_values(TARGET)
    finally:
        store.close()


def add_value(a: ServerProcess, identity: Identity, index: int) -> None:
    with AdminClient(a.address, identity, timeout=30) as client:
        client.add_values(TARGET, [HandleValue(index, b"EMAIL", b"remote@example.org")])


@pytest.mark.parametrize("identity,index", [
    (REMOTE_SEC, 10),
    (PublicKeyIdentity(b"REMOTE/rsa", 300, rsa_key()), 11),
    (PublicKeyIdentity(b"REMOTE/rsa", 0, rsa_key()), 12),  # index 0: every HS_PUBKEY of the handle is tried
], ids=["seckey-201", "pubkey-resolution", "pubkey-index-0"])
def test_remote_identity_is_verified_by_its_server(servers: tuple[ServerProcess, ServerProcess],
                                                   identity: Identity, index: int) -> None:
    a, _b = servers
    add_value(a, identity, index)
    assert any(v.index == index for v in stored(a) or ())


@pytest.mark.parametrize("identity", [
    SecretKeyIdentity(REMOTE_SEC.handle, 300, b"wrong-pass"),
    PublicKeyIdentity(b"REMOTE/rsa", 300, keys.generate_key_pair("RSA", 1024)),
], ids=["seckey", "pubkey"])
def test_wrong_remote_proof_is_403(servers: tuple[ServerProcess, ServerProcess], identity: Identity) -> None:
    a, _b = servers
    before = stored(a)
    with pytest.raises(HandleResponseError) as err:
        add_value(a, identity, 20)
    assert err.value.response_code == ResponseCode.AUTHENTICATION_FAILED
    assert stored(a) == before


@pytest.mark.parametrize("identity,reason", [
    (DEAD_SEC, "did not answer within"),
    (NOSITE_SEC, "0.NA/NOSITE has no usable HS_SITE value"),
    (FAKE_SEC, "does not verify with its HS_SITE key"),
], ids=["unreachable", "no-site", "wrong-site-key"])
def test_unverifiable_remote_identity_is_406(servers: tuple[ServerProcess, ServerProcess], identity: Identity,
                                            reason: str) -> None:
    a, _b = servers
    before = stored(a)
    started = time.monotonic()
    with pytest.raises(HandleResponseError) as err:
        add_value(a, identity, 30)
    assert time.monotonic() - started < REMOTE_TIMEOUT + 5
    assert err.value.response_code == ResponseCode.AUTHEN_ERROR
    assert reason in err.value.message
    assert f"Cannot verify identity 300:{identity.handle.decode()}" in err.value.message
    assert stored(a) == before
    assert Resolver([a.address], udp=False).resolve(TARGET).values  # the server keeps serving


def test_remote_index_0_identity_named_nowhere_is_400_without_a_round_trip(
        servers: tuple[ServerProcess, ServerProcess]) -> None:
    """auth.md 6.6 could only allow 0:DEAD/other if some visited reference named DEAD/other; none does, so the
    server answers 400 at once instead of trying DEAD's (unreachable) server."""
    a, _b = servers
    before = stored(a)
    with pytest.raises(HandleResponseError) as err:
        add_value(a, PublicKeyIdentity(b"DEAD/other", 0, rsa_key()), 40)
    assert err.value.response_code == ResponseCode.INVALID_ADMIN
    assert "DEAD/other" not in a.error_log()
    assert stored(a) == before


def test_member_of_a_group_homed_elsewhere_is_admin(servers: tuple[ServerProcess, ServerProcess]) -> None:
    """auth.md 6.4 step 3: 200:REMOTE/group is resolved (certified) on B; its member's answer is checked by B."""
    a, _b = servers
    add_value(a, MEMBER, 50)
    assert any(v.index == 50 for v in stored(a) or ())


def test_unreachable_group_contributes_nothing(servers: tuple[ServerProcess, ServerProcess]) -> None:
    """200:DEAD/group cannot be fetched: that branch is skipped (as in Java) and a non-member gets 400."""
    a, _b = servers
    before = stored(a)
    with pytest.raises(HandleResponseError) as err:
        add_value(a, SecretKeyIdentity(b"REMOTE/stranger", 300, b"x"), 51)
    assert err.value.response_code == ResponseCode.INVALID_ADMIN
    assert "group 200:DEAD/group" in a.error_log()
    assert stored(a) == before

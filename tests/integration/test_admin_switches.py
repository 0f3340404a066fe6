"""server_config switches on one real server: ``enable_txn_queue = no`` (changes stored, no transaction-log
records, replication.md 2), ``allow_list_hdls = no`` (RC 5), ``allow_na_admins = no`` (the prefix handle's
HS_ADMIN values are not consulted for creation) and ``server_admin_full_access = yes`` (auth.md 6.3 step 4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import ServerProcess, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

SERVER_ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")
PREFIX_ADMIN = SecretKeyIdentity(b"TEST/prefix-admin", 300, b"prefix-pass")  # in 0.NA/TEST's HS_ADMIN only
SWITCHES = {"enable_txn_queue": "no", "allow_list_hdls": "no", "allow_na_admins": "no"}


def admin(index: int, identity: SecretKeyIdentity) -> HandleValue:
    return HandleValue(index, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, identity.handle, identity.index)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("switches") / "srv"
    port = setup_server_dir(directory)
    config = directory / "config.dct"
    text = config.read_text()
    for key, value in SWITCHES.items():
        assert f'"{key}" = "yes"' in text  # hdl-setup-server writes all three
        text = text.replace(f'"{key}" = "yes"', f'"{key}" = "{value}"')
    config.write_text(text)
    store = open_store(directory, case_sensitive=False, sync=False)
    try:
        prefix_values = list(store.get_values(b"0.NA/TEST") or ())
        store.create_handle(b"0.NA/TEST", [*prefix_values, admin(190, PREFIX_ADMIN)], overwrite=True, log=False)
        store.create_handle(PREFIX_ADMIN.handle, [HandleValue(300, b"HS_SECKEY", PREFIX_ADMIN.secret,
                                                              permissions=0x0C)], log=False)
        store.create_handle(b"TEST/not-mine", [HandleValue(1, b"URL", b"https://example.org/n")], log=False)
    finally:
        store.close()
    proc = start_server(directory, port)
    yield proc
    proc.stop()


def test_no_txn_records_when_the_queue_is_off(server: ServerProcess) -> None:
    store = open_store(server.directory, case_sensitive=False, readonly=True)
    try:
        before = store.last_txn_id()
        own = admin(100, SERVER_ADMIN)
        with AdminClient(server.address, SERVER_ADMIN, timeout=15) as client:
            client.create_handle("TEST/no-txn", [own, HandleValue(1, b"URL", b"https://example.org/a")])
            client.add_values("TEST/no-txn", [HandleValue(2, b"URL", b"https://example.org/b")])
            client.modify_values("TEST/no-txn", [HandleValue(2, b"URL", b"https://example.org/c")])
            client.remove_values("TEST/no-txn", [1])
            client.home_prefix("NOTXN")
            client.unhome_prefix("NOTXN")
            stored = Resolver([server.address], udp=False).resolve("TEST/no-txn").values
            assert {v.index: v.data for v in stored} == {100: own.data, 2: b"https://example.org/c"}
            client.delete_handle("TEST/no-txn")
        assert store.get_values(b"TEST/no-txn") is None
        assert store.last_txn_id() == before
        assert list(store.transactions_since(before)) == []
    finally:
        store.close()


def test_list_handles_disabled_is_rc_5(server: ServerProcess) -> None:
    with AdminClient(server.address, SERVER_ADMIN, timeout=15) as client, pytest.raises(HandleResponseError) as err:
        client.list_handles("0.NA/TEST")
    assert err.value.response_code == ResponseCode.OPERATION_NOT_SUPPORTED
    assert err.value.message == "This server does not support the list handles operation."


def test_prefix_admins_cannot_create_without_allow_na_admins(server: ServerProcess) -> None:
    with AdminClient(server.address, PREFIX_ADMIN, timeout=15) as client, pytest.raises(HandleResponseError) as err:
        client.create_handle("TEST/by-prefix-admin", [HandleValue(1, b"URL", b"https://example.org/p")])
    assert err.value.response_code == ResponseCode.INVALID_ADMIN
    assert Resolver([server.address], udp=False).resolve("TEST/hello").values
    with AdminClient(server.address, SERVER_ADMIN, timeout=15) as client:  # full access still creates
        client.create_handle("TEST/by-server-admin", [HandleValue(1, b"URL", b"https://example.org/s")])


def test_server_admin_full_access_reaches_handles_without_its_hs_admin(server: ServerProcess) -> None:
    with AdminClient(server.address, SERVER_ADMIN, timeout=15) as client:
        client.add_values("TEST/not-mine", [HandleValue(2, b"EMAIL", b"admin@example.org")])
    with AdminClient(server.address, PREFIX_ADMIN, timeout=15) as client, pytest.raises(HandleResponseError) as err:
        client.add_values("TEST/not-mine", [HandleValue(3, b"EMAIL", b"nope@example.org")])
    assert err.value.response_code == ResponseCode.INVALID_ADMIN
    values = Resolver([server.address], udp=False).resolve("TEST/not-mine").values
    assert sorted(v.index for v in values) == [1, 2]

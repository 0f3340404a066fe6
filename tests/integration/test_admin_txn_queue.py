"""``enable_txn_queue = no``: admin changes are stored but leave no transaction-log records (replication.md 2)."""

from __future__ import annotations

from pathlib import Path

from servers import setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import Resolver
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue


def test_no_txn_records_when_the_queue_is_off(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    config = directory / "config.dct"
    config.write_text(config.read_text().replace('"enable_txn_queue" = "yes"', '"enable_txn_queue" = "no"'))
    proc = start_server(directory, port)
    store = open_store(directory, case_sensitive=False, readonly=True)
    try:
        before = store.last_txn_id()
        admin = HandleValue(100, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)))
        with AdminClient(proc.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"secret"), timeout=15) as client:
            client.create_handle("TEST/no-txn", [admin, HandleValue(1, b"URL", b"https://example.org/a")])
            client.add_values("TEST/no-txn", [HandleValue(2, b"URL", b"https://example.org/b")])
            client.modify_values("TEST/no-txn", [HandleValue(2, b"URL", b"https://example.org/c")])
            client.remove_values("TEST/no-txn", [1])
            client.home_prefix("NOTXN")
            client.unhome_prefix("NOTXN")
            stored = Resolver([proc.address], udp=False).resolve("TEST/no-txn").values
            assert {v.index: v.data for v in stored} == {100: admin.data, 2: b"https://example.org/c"}
            client.delete_handle("TEST/no-txn")
        assert store.get_values(b"TEST/no-txn") is None
        assert store.last_txn_id() == before
        assert list(store.transactions_since(before)) == []
    finally:
        store.close()
        proc.stop()

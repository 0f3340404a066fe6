"""``read_only_txn_queue = yes``: the server still resolves and serves its log, but every change it would
log fails with RC 2 (Java cannot append to its read-only queue) and nothing is stored."""

from __future__ import annotations

import pytest
from repl_support import add_server_config, resolved_urls
from servers import setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.store.lmdb_store import open_store
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.values import HandleValue

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def test_changes_fail_with_rc_2_and_nothing_is_stored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    add_server_config(directory, '"read_only_txn_queue" = "yes"')
    with open_store(directory, case_sensitive=False, readonly=True) as store:
        logged = store.last_txn_id()
    server = start_server(directory, port)
    try:
        with AdminClient(server.address, ADMIN) as admin:
            with pytest.raises(HandleResponseError) as refused:
                admin.create_handle("TEST/new", [HandleValue(1, b"URL", b"http://example.org/")])
            assert refused.value.response_code == ResponseCode.ERROR
            with pytest.raises(HandleResponseError) as refused:
                admin.delete_handle("TEST/hello")
            assert refused.value.response_code == ResponseCode.ERROR
        assert resolved_urls(server.address, "TEST/new") is None
        assert resolved_urls(server.address, "TEST/hello")  # still there, still resolving
    finally:
        server.stop()
    with open_store(directory, case_sensitive=False, readonly=True) as store:
        assert store.last_txn_id() == logged

"""A running server's cached answers follow offline writers: real server process, UDP and TCP, real LMDB.

hdl-loadjson and hdl-dbremove change the store of the server directory from their own processes while
the server runs; the server has answered (and so cached) the handle before each change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, run_cli, setup_server_dir, start_server

from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.wire.codes import ResponseCode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("answer-cache-server") / "srv"
    port = setup_server_dir(directory)
    server = start_server(directory, port)
    yield server
    server.stop()


def urls(server: ServerProcess, transport: str, handle: str) -> list[bytes]:
    result = Resolver([server.address], udp=transport == "udp", tcp=transport == "tcp").resolve(handle)
    return [v.data for v in result.values if v.type == b"URL"]


def assert_missing(server: ServerProcess, transport: str, handle: str) -> None:
    with pytest.raises(HandleResponseError) as err:
        urls(server, transport, handle)
    assert err.value.response_code == ResponseCode.HANDLE_NOT_FOUND


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_offline_writers_are_seen_by_the_next_resolution(server: ServerProcess, transport: str,
                                                         tmp_path: Path) -> None:
    handle = f"TEST/offline-{transport}"
    records = tmp_path / "records.json"
    for _ in range(2):  # twice: the second answer is the cached one
        assert_missing(server, transport, handle)
    for n in (1, 2):
        records.write_text(json.dumps([{"handle": handle, "values": [
            {"index": 1, "type": "URL", "data": f"http://example.org/{n}"}]}]), encoding="utf-8")
        run_cli("hdlserver.cli.loadjson", server.directory, records, "--overwrite")
        for _ in range(2):
            assert urls(server, transport, handle) == [f"http://example.org/{n}".encode()]
    run_cli("hdlserver.cli.dbremove", server.directory, handle)
    assert_missing(server, transport, handle)
    assert urls(server, transport, "TEST/hello") == [b"https://www.handle.net/"]

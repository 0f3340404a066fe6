"""Reverse lookup (``/hrls/handles``, issue 7 item 6) against a real hdl-server process over HTTPS on loopback,
and pyhandle's ``RESTHandleClient.search_handle``, unmodified, end to end."""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from http_support import Reply, http_server_dir, request
from servers import ServerProcess, start_server

from hdlserver.serverdir import open_server_state
from hdlserver.store import reverse_index
from hdlserver.wire.values import PERM_ADMIN_READ, PERM_ADMIN_WRITE, HandleValue

SECRET = b"secret"
ADMIN = "0.NA/TEST"
SEEDED = 30  # TEST/SEED-00 .. TEST/SEED-29: URL https://seed.example/<i>, CHECKSUM even/odd


@dataclass
class Server:
    process: ServerProcess
    http_port: int

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.http_port)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(quote(user, safe="").encode() + b":" + password).decode()


GOOD = basic(f"300:{ADMIN}", SECRET)


def get(srv: Server, target: str, *, method: str = "GET", authorization: str | None = GOOD,
        secure: bool = True) -> Reply:
    headers = {} if authorization is None else {"Authorization": authorization}
    return request(srv.address, method, target, headers=headers, context=tls() if secure else None)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("hrls") / "srv"
    port, http_port = http_server_dir(directory)
    state = open_server_state(directory)
    try:
        hidden = HandleValue(3, b"URL", b"https://hidden.example/", permissions=PERM_ADMIN_READ | PERM_ADMIN_WRITE)
        state.store.create_handles(
            [(f"TEST/SEED-{i:02}".encode(), [HandleValue(1, b"URL", f"https://seed.example/{i}".encode()),
                                             HandleValue(2, b"CHECKSUM", b"even" if i % 2 == 0 else b"odd")])
             for i in range(SEEDED)] + [(b"TEST/HIDDEN", [hidden])])
        for part in state.store._parts:  # as a store written before the index existed: the server builds it
            part.write(lambda txn, part=part: txn.drop(part.revidx, delete=True))
            part.write(lambda txn, part=part: txn.delete(reverse_index.META_VERSION, db=part.meta))
    finally:
        state.store.close()
    process = start_server(directory, port)
    try:
        yield Server(process, http_port)
    finally:
        process.stop()


def test_search_answers_a_json_list_of_handles(server: Server) -> None:
    """The seeded handles were stored without an index: the server built it at startup."""
    reply = get(server, "/hrls/handles?URL=https://seed.example/7")
    assert reply.status == 200 and reply.header("Content-Type").startswith("application/json")
    assert reply.json() == ["TEST/SEED-07"]
    assert get(server, "/hrls/handles/?URL=https://seed.example/1*").json() == \
        ["TEST/SEED-01"] + [f"TEST/SEED-{i}" for i in range(10, 20)]
    assert get(server, "/hrls/handles?URL=*example/2*&CHECKSUM=odd").json() == \
        [f"TEST/SEED-{i}" for i in range(21, 30, 2)]
    anonymous = get(server, "/hrls/handles?url=https%3A%2F%2Fseed.example%2F3", authorization=None)
    assert anonymous.json() == ["TEST/SEED-03"]
    assert get(server, "/hrls/ping").body == b"OK\n"


def test_limit_page_and_prefix(server: Server) -> None:
    everything = get(server, "/hrls/handles?URL=https://seed.example/*").json()
    assert len(everything) == SEEDED
    assert get(server, "/hrls/handles?URL=https://seed.example/*&limit=4&page=8").json() == everything[8:12]
    assert get(server, "/hrls/handles?URL=https://seed.example/*&prefix=OTHER").json() == []


def test_values_without_public_read_are_not_searchable(server: Server) -> None:
    assert get(server, "/hrls/handles?URL=https://hidden.example/").json() == []
    assert get(server, "/hrls/handles?URL=*hidden*").json() == []


@pytest.mark.parametrize(("target", "message"), [
    ("/hrls/handles", "no search terms"),
    ("/hrls/handles?limit=5", "no search terms"),
    ("/hrls/handles?URL=", "empty value"),
    ("/hrls/handles?URL=***", "only '*'"),
    ("/hrls/handles?URL=" + "x" * 1025, "longer than 1024"),
    ("/hrls/handles?URL=a&retrieverecords=true", "not supported"),
    ("/hrls/handles?URL=a&limit=0", "limit must be between"),
    ("/hrls/handles?URL=a&limit=ten", "Invalid integer"),
    ("/hrls/handles?URL=a&page=-1", "page"),
    ("/hrls/handles?URL=%zz", "%-encoding"),
])
def test_bad_queries_are_400_with_a_message(server: Server, target: str, message: str) -> None:
    reply = get(server, target)
    assert reply.status == 400
    assert message in reply.json()["message"] and reply.json()["responseCode"] == 4
    assert get(server, "/api/handles/TEST/hello").status == 200  # still serving


def test_wrong_credentials_methods_paths_and_plain_http(server: Server) -> None:
    wrong = get(server, "/hrls/handles?URL=https://seed.example/1", authorization=basic(f"300:{ADMIN}", b"nope"))
    assert wrong.status == 401 and "Authentication failed" in wrong.json()["message"]
    plain = get(server, "/hrls/handles?URL=https://seed.example/1", secure=False)
    assert plain.status == 403 and "only over HTTPS" in plain.json()["message"]
    assert get(server, "/hrls/handles?URL=https://seed.example/1", secure=False, authorization=None).json() == \
        ["TEST/SEED-01"]
    assert get(server, "/hrls/handles?URL=x", method="DELETE").status == 405
    assert get(server, "/hrls/other?URL=x").status == 404
    assert get(server, "/hrls/handles?URL=https://seed.example/*").json()[0] == "TEST/SEED-00"  # nothing changed


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")  # the test server's certificate is self-signed
def test_pyhandle_search_handle_end_to_end(server: Server) -> None:
    rest_client = pytest.importorskip("pyhandle.client.resthandleclient",
                                      reason="pyhandle (PyPI) is not installed; pip install pyhandle")
    from pyhandle.handleexceptions import ReverseLookupException

    client = rest_client.RESTHandleClient.instantiate_with_username_and_password(
        server.url, f"300:{ADMIN}", SECRET.decode(), HTTPS_verify=False)
    token = uuid.uuid4().hex[:8]
    handle = f"TEST/PYSEARCH-{token}".upper()
    location = f"https://pyhandle.example/{token}"
    assert client.register_handle(handle, location, checksum="c1") == handle
    assert client.search_handle(URL=location) == [handle]
    assert client.search_handle(URL="https://pyhandle.example/*", CHECKSUM="c1") == [handle]
    assert client.search_handle(URL=location, prefix="TEST") == [handle]
    assert client.search_handle(URL=location, CHECKSUM="other") == []
    client.modify_handle_value(handle, URL=location + "/moved")
    assert client.search_handle(URL=location) == []
    assert client.search_handle(URL=location + "/moved") == [handle]
    client.delete_handle(handle)
    assert client.search_handle(URL=location + "/moved") == []
    searcher = rest_client.RESTHandleClient.instantiate_for_read_and_search(
        server.url, f"300:{ADMIN}", "wrong", HTTPS_verify=False)
    with pytest.raises(ReverseLookupException, match="Authentication failed"):
        searcher.search_handle(URL="https://seed.example/1")

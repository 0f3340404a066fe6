"""Resolution for people on the HTTP interface: redirects, value pages, 404 pages, robots.txt and favicon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import InProcessHttp, http_server_dir, in_process_http, request

from hdlserver.http.messages import TEXT_CONTENT_TYPE
from hdlserver.http.proxy import ProxyPages
from hdlserver.wire.values import HandleValue

HTML = "text/html;charset=UTF-8"
ROBOTS = b"User-agent: *\nDisallow: /private/\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHttp]:
    directory = tmp_path_factory.mktemp("proxy") / "srv"
    http_server_dir(directory, http_config={"robots_txt": "robots.txt",
                                            "favicon": "redirect:https://static.example/icon.png"})
    (directory / "robots.txt").write_bytes(ROBOTS)
    with in_process_http(directory) as srv:
        records = [
            (b"TEST/multi", [HandleValue(5, b"URL", b"http://five.example/"),
                             HandleValue(2, b"URL", b"http://two.example/"),
                             HandleValue(1, b"DESC", b"<script>alert(1)</script>")]),
            (b"TEST/nourl", [HandleValue(1, b"EMAIL", b"someone@example.org")]),
            (b"TEST/unsafe", [HandleValue(1, b"URL", b"http://x.example/\r\nSet-Cookie: a=b")]),
            (b"TEST/private", [HandleValue(1, b"URL", b"http://hidden.example/", permissions=0x0C)]),
        ]
        srv.call(lambda: srv.state.store.create_handles(records))
        yield srv



def test_redirect_to_the_url_value(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/TEST/hello")
    assert reply.status == 302
    assert reply.header("Location") == "https://www.handle.net/"
    assert b"https://www.handle.net/" in reply.body


def test_encoded_slash_and_lowest_index_url(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/TEST%2Fmulti")
    assert reply.status == 302
    assert reply.header("Location") == "http://two.example/"


def test_noredirect_shows_the_values_escaped(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/TEST/multi?noredirect")
    assert reply.status == 200
    assert reply.header("Content-Type") == HTML
    page = reply.body.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert page.index("http://two.example/") < page.index("http://five.example/")


def test_no_url_shows_the_values(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/TEST/nourl")
    assert reply.status == 200
    assert b"someone@example.org" in reply.body


def test_url_that_cannot_be_a_location_is_shown_not_followed(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/TEST/unsafe")
    assert reply.status == 200
    assert reply.header("Set-Cookie") is None


def test_unknown_handle_is_a_404_page(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/TEST/does-not-exist")
    assert reply.status == 404
    assert reply.header("Content-Type") == HTML
    assert b"TEST/does-not-exist" in reply.body


def test_handle_without_public_values(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/TEST/private")
    assert reply.status == 200
    assert b"no public values" in reply.body and b"hidden.example" not in reply.body


def test_handle_of_another_prefix(server: InProcessHttp) -> None:
    reply = request(server.address, "GET", "/ELSEWHERE/x")
    assert reply.status == 404
    assert b"301" in reply.body


def test_home_page_and_its_form(server: InProcessHttp) -> None:
    home = request(server.address, "GET", "/")
    assert home.status == 200 and b'name="hdl"' in home.body
    resolved = request(server.address, "GET", "/?hdl=TEST%2Fhello")
    assert resolved.status == 302 and resolved.header("Location") == "https://www.handle.net/"
    shown = request(server.address, "GET", "/?hdl=TEST/hello&noredirect=on")
    assert shown.status == 200 and b"https://www.handle.net/" in shown.body


def test_head_and_other_methods(server: InProcessHttp) -> None:
    head = request(server.address, "HEAD", "/TEST/nourl")
    assert head.status == 200 and head.body == b"" and int(head.header("Content-Length") or 0) > 0
    put = request(server.address, "PUT", "/TEST/nourl", body=b"x")
    assert put.status == 405 and put.header("Allow") == "GET, HEAD, POST, TRACE, OPTIONS"


def test_robots_txt_and_favicon_from_the_configuration(server: InProcessHttp) -> None:
    robots = request(server.address, "GET", "/robots.txt")
    assert robots.status == 200 and robots.body == ROBOTS
    assert robots.header("Content-Type") == TEXT_CONTENT_TYPE
    icon = request(server.address, "GET", "/favicon.ico")
    assert icon.status == 302 and icon.header("Location") == "https://static.example/icon.png"


def test_files_not_configured_or_unreadable(tmp_path: Path) -> None:
    assert ProxyPages._configured_file(tmp_path, None, None) is None
    assert ProxyPages._configured_file(tmp_path, "missing.ico", None) is None
    (tmp_path / "icon.png").write_bytes(b"\x89PNG")
    found = ProxyPages._configured_file(tmp_path, " icon.png ", None)
    assert found is not None and found.header("Content-Type") == "image/png" and found.body == b"\x89PNG"


def test_root_web_app_disabled_serves_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    http_server_dir(directory, http_config={"enable_root_web_app": "no"})
    with in_process_http(directory) as srv:
        for path in ("/", "/TEST/hello", "/api/site", "/robots.txt"):
            assert request(srv.address, "GET", path).status == 404

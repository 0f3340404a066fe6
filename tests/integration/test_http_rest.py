"""The REST JSON API (server.md 14) against the HTTP listener on real loopback sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from http_support import InProcessHttp, Reply, add_http_interface, http_server_dir, in_process_http, request
from servers import ServerProcess, free_port, setup_server_dir, start_server

from hdlserver.http.rest import Authenticator
from hdlserver.http.rest_auth import Authentication
from hdlserver.jsonform.site_json import site_to_json
from hdlserver.jsonform.values_json import values_from_json
from hdlserver.net.logs import ACCESS_LOGGER
from hdlserver.wire.values import HandleValue

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
RECORD_VECTOR = VECTORS / "values" / "record_gson.json"
JSON = "application/json;charset=UTF-8"
ITEMS = 120
SECRET = b"secret"


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def get(srv: InProcessHttp, path: str, secure: bool = False, **headers: str) -> Reply:
    return request(srv.address, "GET", path, headers=headers, context=tls() if secure else None)


def send(srv: InProcessHttp, method: str, path: str, body: object = None, secure: bool = False,
         content_type: str = "application/json", **headers: str) -> Reply:
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    return request(srv.address, method, path, body=data, headers={"Content-Type": content_type, **headers},
                   context=tls() if secure else None)


def record_vector() -> list[dict]:
    if not RECORD_VECTOR.exists():
        pytest.skip(f"test vectors not available at {RECORD_VECTOR}")
    return json.loads(RECORD_VECTOR.read_text(encoding="utf-8"))


MIXED = [HandleValue(1, b"URL", b"http://example.org/public"),
         HandleValue(2, b"SECRET", b"hidden", permissions=0x0C)]


class RecordingAuthenticator:
    """Stands in for the authentication layer: every TLS request is 300:0.NA/TEST; records the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: object) -> Authentication:
        self.calls += 1
        return Authentication((b"0.NA/TEST", 300))


@pytest.fixture(scope="module")
def authenticator() -> RecordingAuthenticator:
    return RecordingAuthenticator()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, authenticator: Authenticator) -> Iterator[InProcessHttp]:
    """A normal server: anonymous requests; over TLS the stand-in authenticator names 300:0.NA/TEST."""
    directory = tmp_path_factory.mktemp("rest") / "srv"
    http_server_dir(directory, http_config={"headers": {"X-Extra": "extra-value"},
                                            "remote_address_header": "X-Forwarded-For",
                                            "remote_address_internal_proxies": "127.0.0.0/8, 10.0.0.0/8"},
                    server_config={"allow_list_hdls": "no"})
    with in_process_http(directory, authenticate=authenticator) as srv:
        records = [(b"TEST/mixed", MIXED)]
        if RECORD_VECTOR.exists():
            records.append((b"TEST/vectors", list(values_from_json(json.loads(RECORD_VECTOR.read_text()),
                                                                    resolve_host_names=False))))
        srv.call(lambda: srv.state.store.create_handles(records))
        yield srv


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHttp]:
    """``anonymous_admin_full_access``: administration works without authentication, even on plain HTTP."""
    directory = tmp_path_factory.mktemp("rest-open") / "srv"
    http_server_dir(directory, server_config={"anonymous_admin_full_access": "yes"})
    with in_process_http(directory) as srv:
        items = [(f"TEST/item-{i:03d}".encode(), [HandleValue(1, b"URL", f"http://example.org/{i}".encode())])
                 for i in range(ITEMS)]
        srv.call(lambda: srv.state.store.create_handles(items))
        yield srv


# --- resolution --------------------------------------------------------------------------------------


def test_resolution_json(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles/TEST/hello")
    assert reply.status == 200
    assert reply.header("Content-Type") == JSON
    doc = reply.json()
    assert list(doc) == ["responseCode", "handle", "values"]
    assert doc["responseCode"] == 1 and doc["handle"] == "TEST/hello"
    url = next(v for v in doc["values"] if v["type"] == "URL")
    assert url["data"] == {"format": "string", "value": "https://www.handle.net/"}


def test_java_value_json_for_the_public_values_of_the_record_vector(server: InProcessHttp) -> None:
    vector = record_vector()
    public = [v for v in vector if v.get("permissions", "1110")[2] == "1"]
    doc = get(server, "/api/handles/TEST/vectors").json()
    assert doc["values"] == public


def test_authenticated_tls_request_reads_every_value(server: InProcessHttp,
                                                     authenticator: RecordingAuthenticator) -> None:
    vector = record_vector()
    calls = authenticator.calls
    doc = get(server, "/api/handles/TEST/vectors", secure=True).json()
    assert doc["values"] == vector  # publicOnly defaults to false once authenticated
    assert authenticator.calls == calls + 1


def test_type_and_index_filters_are_repeatable(server: InProcessHttp) -> None:
    doc = get(server, "/api/handles/TEST/hello?type=URL&type=DESC").json()
    assert sorted(v["type"] for v in doc["values"]) == ["DESC", "URL"]
    doc = get(server, "/api/handles/TEST/hello?index=1").json()
    assert [v["index"] for v in doc["values"]] == [1]


def test_values_not_found_is_200_with_empty_values(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles/TEST/hello?type=NOTHING")
    assert reply.status == 200
    assert reply.body == b'{"responseCode":200,"values":[],"handle":"TEST/hello"}'


def test_handle_not_found_is_404(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles/TEST/missing")
    assert reply.status == 404
    assert reply.body == b'{"responseCode":100,"handle":"TEST/missing"}'


def test_post_takes_parameters_from_a_json_body(server: InProcessHttp) -> None:
    reply = send(server, "POST", "/api/handles/TEST/hello", {"type": ["URL"], "pretty": True})
    assert reply.status == 200
    doc = reply.json()
    assert [v["type"] for v in doc["values"]] == ["URL"]
    assert reply.body.startswith(b'{\n  "responseCode": 1,')


def test_head_has_the_headers_of_get_and_no_body(server: InProcessHttp) -> None:
    full = get(server, "/api/handles/TEST/hello")
    head = request(server.address, "HEAD", "/api/handles/TEST/hello")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == full.header("Content-Length")


def test_restricted_values_need_authentication_and_plain_http_never_authenticates(
        server: InProcessHttp, authenticator: RecordingAuthenticator) -> None:
    calls = authenticator.calls
    plain = get(server, "/api/handles/TEST/mixed?publicOnly=false",
                Authorization="Basic " + base64.b64encode(b"300%3A0.NA%2FTEST:secret").decode())
    assert plain.status == 403  # a 401 on plain HTTP becomes 403 (auth.md 10)
    assert plain.json() == {"responseCode": 402, "handle": "TEST/mixed"}
    assert plain.header("WWW-Authenticate") is None
    assert authenticator.calls == calls  # credentials are not even looked at without TLS


def test_public_only_keeps_public_values(server: InProcessHttp) -> None:
    doc = get(server, "/api/handles/TEST/mixed").json()
    assert [v["index"] for v in doc["values"]] == [1]


def test_site(server: InProcessHttp) -> None:
    reply = get(server, "/api/site")
    assert reply.status == 200
    assert reply.json() == {"responseCode": 1, "site": site_to_json(server.state.site)}
    assert send(server, "POST", "/api/site", b"").json() == reply.json()


# --- formats: JSONP, pretty, CORS, extra headers --------------------------------------------------------


def test_jsonp(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles/TEST/missing?callback=my.cb%28%29")
    assert reply.header("Content-Type") == "application/javascript;charset=UTF-8"
    assert reply.body == b'my_cb__({"responseCode":100,"handle":"TEST/missing"});'


def test_pretty(server: InProcessHttp) -> None:
    assert get(server, "/api/handles/TEST/missing?pretty").body == \
        b'{\n  "responseCode": 100,\n  "handle": "TEST/missing"\n}'


def test_cors_preflight(server: InProcessHttp) -> None:
    reply = request(server.address, "OPTIONS", "/api/handles/TEST/x", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert reply.status == 200
    assert reply.header("Allow") == "GET, HEAD, POST, PUT, DELETE, TRACE, OPTIONS"
    assert reply.header("Access-Control-Allow-Origin") == "https://app.example"
    assert reply.header("Access-Control-Allow-Credentials") == "true"
    assert set(reply.header("Access-Control-Allow-Methods").split(",")) == {"GET", "POST", "HEAD", "PUT", "DELETE"}
    assert "Authorization" in reply.header("Access-Control-Allow-Headers").split(",")
    assert reply.header("Access-Control-Max-Age") == "1800"


def test_cors_preflight_for_a_method_not_allowed_gets_no_cors_headers(server: InProcessHttp) -> None:
    reply = request(server.address, "OPTIONS", "/api/handles/TEST/x", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"})
    assert reply.header("Access-Control-Allow-Origin") is None


def test_cors_on_a_simple_request(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles/TEST/hello", Origin="https://app.example")
    assert reply.header("Access-Control-Allow-Origin") == "https://app.example"
    assert "X-Extra" in reply.header("Access-Control-Expose-Headers").split(",")
    assert get(server, "/api/handles/TEST/hello").header("Access-Control-Allow-Origin") is None


def test_configured_extra_headers(server: InProcessHttp) -> None:
    assert get(server, "/api/site").header("X-Extra") == "extra-value"
    assert get(server, "/").header("X-Extra") == "extra-value"


# --- endpoint and method rules ---------------------------------------------------------------------------


def test_unknown_endpoint_is_404(server: InProcessHttp) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        reply = send(server, method, "/api/nothing/here", b"")
        assert reply.status == 404
        assert reply.json() == {"responseCode": 4, "message": f"Unknown HTTP API endpoint {method} /api/nothing/here"}


def test_unsupported_method_on_an_endpoint_is_405(server: InProcessHttp) -> None:
    reply = send(server, "PUT", "/api/site", b"{}")
    assert reply.status == 405
    assert reply.json() == {"responseCode": 4, "message": "Unknown HTTP API endpoint PUT /api/site"}
    assert send(server, "DELETE", "/api/verifications/300:0.NA/TEST", b"").status == 405


def test_unknown_method_is_501(server: InProcessHttp) -> None:
    reply = request(server.address, "FROB", "/api/handles/TEST/hello")
    assert reply.status == 501
    assert reply.json() == {"responseCode": 4, "message": "Unknown method FROB"}


def test_options_lists_the_methods_of_each_endpoint(server: InProcessHttp) -> None:
    assert request(server.address, "OPTIONS", "/api/site").header("Allow") == "GET, HEAD, TRACE, OPTIONS"
    assert request(server.address, "OPTIONS", "/api/prefixes").header("Allow") == \
        "GET, HEAD, POST, DELETE, TRACE, OPTIONS"
    assert request(server.address, "OPTIONS", "/api/prefixes/0.NA%2FX").header("Allow") == \
        "POST, DELETE, TRACE, OPTIONS"
    assert request(server.address, "OPTIONS", "/api/unknown").header("Allow") == "TRACE, OPTIONS"


def test_trace_echoes_the_request_without_credentials(server: InProcessHttp) -> None:
    reply = request(server.address, "TRACE", "/api/x", headers={"X-Probe": "1", "Authorization": "Basic eA=="})
    assert reply.status == 200 and reply.header("Content-Type") == "message/http"
    assert reply.body.startswith(b"TRACE /api/x HTTP/1.1\r\n")
    assert b"x-probe: 1" in reply.body and b"authorization" not in reply.body.lower()


def test_empty_handle_is_invalid(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles")
    assert reply.status == 400
    assert reply.json() == {"responseCode": 102, "message": "Empty handle invalid"}


def test_bad_parameter_is_rc_4(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles/TEST/hello?index=first")
    assert reply.status == 400
    doc = reply.json()
    assert doc["responseCode"] == 4 and "index" in doc["message"] and "handle" not in doc


def test_bad_json_parameter_body_is_rc_4(server: InProcessHttp) -> None:
    reply = send(server, "POST", "/api/handles/TEST/hello", b"{not json")
    assert reply.status == 400
    assert reply.json()["responseCode"] == 4
    assert reply.json()["message"].startswith("Invalid JSON in request body")


def test_list_disabled_is_501(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles?prefix=TEST")
    assert reply.status == 501
    assert reply.json()["responseCode"] == 5


def test_handle_of_another_prefix_is_400(server: InProcessHttp) -> None:
    reply = get(server, "/api/handles/ELSEWHERE/x")
    assert reply.status == 400
    assert reply.json()["responseCode"] == 301


def test_writes_over_tls_without_authenticator_get_401_with_basic_challenge(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    http_server_dir(directory)
    with in_process_http(directory) as srv:
        reply = send(srv, "PUT", "/api/handles/TEST/x", [{"index": 1, "type": "URL", "data": "http://x/"}],
                     secure=True)
        assert reply.status == 401
        assert reply.headers.get_all("WWW-Authenticate")[0] == 'Basic realm="handle"'
        ajax = send(srv, "DELETE", "/api/handles/TEST/hello", secure=True, **{"X-Requested-With": "XMLHttpRequest"})
        assert ajax.status == 401 and ajax.header("WWW-Authenticate").startswith("Handle sessionId=")
        assert send(srv, "PUT", "/api/handles/TEST/x", [], secure=False).status == 403


def test_verified_identity_administers_over_tls(server: InProcessHttp) -> None:
    reply = send(server, "PUT", "/api/handles/TEST/by-identity", [{"index": 1, "type": "URL", "data": "http://i/"}],
                 secure=True)
    assert reply.status == 201
    assert reply.json() == {"responseCode": 1, "handle": "TEST/by-identity"}
    assert send(server, "DELETE", "/api/handles/TEST/by-identity", secure=True).status == 200


def test_sessions_exist_only_over_tls(server: InProcessHttp) -> None:
    plain = send(server, "POST", "/api/sessions", b"")
    assert plain.status == 403 and plain.body == b""
    secure = send(server, "POST", "/api/sessions", b"", secure=True)
    assert secure.status == 201 and set(secure.json()) == {"sessionId", "nonce"}


def test_rest_access_log_line(server: InProcessHttp, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        get(server, "/api/handles/TEST/missing")
    lines = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    line = re.compile(r'127\.0\.0\.1 HTTP:HDLApi "[^"]+" 1 100 \d+ms  TEST/missing')
    assert any(line.fullmatch(text) for text in lines), lines


def test_client_address_behind_a_trusted_proxy(server: InProcessHttp, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        get(server, "/api/handles/TEST/forwarded", **{"X-Forwarded-For": "203.0.113.9, 10.1.2.3"})
    lines = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert any(text.startswith("203.0.113.9 HTTP:HDLApi ") for text in lines), lines


# --- verifications (auth.md 10.3) -----------------------------------------------------------------------


def verification_query(secret: bytes, alg: str = "HMAC-SHA256", **extra: str) -> str:
    nonce, cnonce = b"server-nonce-123", b"client-nonce-456"
    digest = hashlib.sha1 if alg.lower().replace("-", "_") == "hmac_sha1" else hashlib.sha256
    mac = hmac.new(secret, nonce + cnonce, digest).digest()
    params = {"nonce": base64.b64encode(nonce).decode(), "cnonce": base64.b64encode(cnonce).decode(), "alg": alg,
              "signature": base64.b64encode(mac).decode(), **extra}
    return urlencode(params)


def test_verification_of_a_secret_key_mac(server: InProcessHttp) -> None:
    path = "/api/verifications/" + quote("300:0.NA/TEST", safe="")
    good = get(server, f"{path}?{verification_query(SECRET)}")
    assert good.status == 200
    assert good.json() == {"responseCode": 1, "isValid": True, "handle": "0.NA/TEST"}
    assert get(server, f"{path}?{verification_query(b'wrong')}").json()["isValid"] is False
    assert get(server, f"/api/verifications/0.NA%2FTEST?index=300&{verification_query(SECRET, 'hmac_sha1')}"
               ).json()["isValid"] is True


def test_verification_with_pbkdf2(server: InProcessHttp) -> None:
    nonce, cnonce, salt = b"n" * 16, b"c" * 20, b"s" * 16
    key = hashlib.pbkdf2_hmac("sha1", SECRET, salt, 1000, 20)
    mac = hmac.new(key, nonce + cnonce, hashlib.sha1).digest()
    query = urlencode({"nonce": base64.b64encode(nonce).decode(), "cnonce": base64.b64encode(cnonce).decode(),
                       "alg": "PBKDF2-HMAC-SHA1", "signature": base64.b64encode(mac).decode(),
                       "salt": base64.b64encode(salt).decode(), "iterations": "1000", "length": "160"})
    assert get(server, f"/api/verifications/300:0.NA%2FTEST?{query}").json()["isValid"] is True


@pytest.mark.parametrize(("path", "message"), [
    ("/api/verifications/0.NA%2FTEST?nonce=a&cnonce=b&alg=SHA1&signature=c", "No index provided"),
    ("/api/verifications/300:0.NA%2FTEST?index=1&nonce=a&cnonce=b&alg=SHA1&signature=c",
     "Too many indexes specified in verification request"),
    ("/api/verifications/300:0.NA%2FTEST?nonce=a", "Missing parameters in verification request"),
    ("/api/verifications/300:0.NA%2FTEST?nonce=a&cnonce=b&alg=ROT13&signature=c", "Unknown algorithm"),
    ("/api/verifications", "Handle not specified in verification request"),
])
def test_verification_parameter_errors(server: InProcessHttp, path: str, message: str) -> None:
    reply = get(server, path)
    assert reply.status == 400
    assert reply.json() == {"responseCode": 4, "message": message}


# --- administration (anonymous_admin_full_access) ------------------------------------------------------


def test_create_read_overwrite_and_delete(open_server: InProcessHttp) -> None:
    values = [{"index": 1, "type": "URL", "data": {"format": "string", "value": "http://one/"}},
              {"index": 2, "type": "EMAIL", "data": "a@example.org"}]
    created = send(open_server, "PUT", "/api/handles/TEST/crud", values)
    assert created.status == 201
    assert created.json() == {"responseCode": 1, "handle": "TEST/crud"}
    doc = get(open_server, "/api/handles/TEST/crud").json()
    assert [(v["index"], v["data"]["value"]) for v in doc["values"]] == [(1, "http://one/"), (2, "a@example.org")]
    again = send(open_server, "PUT", "/api/handles/TEST/crud", {"handle": "test/CRUD", "values": values[:1]})
    assert again.status == 200  # PUT overwrites by default; an overwrite is not a creation
    conflict = send(open_server, "PUT", "/api/handles/TEST/crud?overwrite=false", values)
    assert conflict.status == 409 and conflict.json()["responseCode"] == 101
    deleted = send(open_server, "DELETE", "/api/handles/TEST/crud")
    assert deleted.status == 200 and deleted.json() == {"responseCode": 1, "handle": "TEST/crud"}
    assert get(open_server, "/api/handles/TEST/crud").status == 404


def test_add_and_remove_values(open_server: InProcessHttp) -> None:
    send(open_server, "PUT", "/api/handles/TEST/values", [{"index": 1, "type": "URL", "data": "http://1/"}])
    added = send(open_server, "PUT", "/api/handles/TEST/values?index=2&overwrite=false",
                 {"index": 2, "type": "DESC", "data": "two"})
    assert added.status == 201 and added.json() == {"responseCode": 1, "handle": "TEST/values"}
    various = send(open_server, "PUT", "/api/handles/TEST/values?index=various",
                   [{"index": 3, "type": "DESC", "data": "three"}, {"index": 4, "type": "DESC", "data": "four"}])
    assert various.status == 201  # OVRW is only reported when an existing index was replaced
    removed = send(open_server, "DELETE", "/api/handles/TEST/values?index=2&index=3")
    assert removed.status == 200
    doc = get(open_server, "/api/handles/TEST/values").json()
    assert [v["index"] for v in doc["values"]] == [1, 4]
    missing = send(open_server, "DELETE", "/api/handles/TEST/values?index=99")
    assert missing.status == 400 and missing.json()["responseCode"] == 200


def test_mint_new_suffix(open_server: InProcessHttp) -> None:
    reply = send(open_server, "PUT", "/api/handles/TEST/minted-?mintNewSuffix=true",
                 [{"index": 1, "type": "URL", "data": "http://m/"}])
    assert reply.status == 201
    handle = reply.json()["handle"]
    assert handle.startswith("TEST/minted-") and len(handle) == len("TEST/minted-") + 36
    assert get(open_server, "/api/handles/" + handle).status == 200


@pytest.mark.parametrize(("path", "body", "content_type", "message"), [
    ("/api/handles/TEST/bad", "[{]", "application/json", "Invalid JSON in PUT request"),
    ("/api/handles/TEST/bad", "[]", "text/plain", "Unsupported media type text/plain"),
    ("/api/handles/TEST/bad", '{"something": 1}', "application/json", "Invalid JSON in PUT request"),
    ("/api/handles/TEST/bad", '{"handle": "TEST/other", "values": []}', "application/json",
     "Mismatched handle in PUT request"),
    ("/api/handles/TEST/bad?index=1", '[{"index": 2, "type": "URL", "data": "x"}]', "application/json",
     "Mismatched indexes in PUT request"),
    ("/api/handles/TEST/bad", '[{"index": 1, "type": "URL"}]', "application/json", "values[0].data: missing"),
    ("/api/handles/TEST/bad", '[{"index": "x", "type": "URL", "data": "d"}]', "application/json",
     "values[0].index"),
])
def test_bad_put_bodies_are_rc_4(open_server: InProcessHttp, path: str, body: str, content_type: str,
                                 message: str) -> None:
    reply = send(open_server, "PUT", path, body, content_type=content_type)
    assert reply.status == 400
    doc = reply.json()
    assert doc["responseCode"] == 4 and message in doc["message"] and "handle" not in doc


def test_list_handles_with_paging(open_server: InProcessHttp) -> None:
    everything = get(open_server, "/api/handles?prefix=TEST").json()
    assert everything["responseCode"] == 1 and everything["prefix"] == "TEST"
    total = len(everything["handles"])
    assert total >= ITEMS + 1
    assert everything["totalCount"] == str(total)  # a string, as Java writes it
    assert "page" not in everything
    page = get(open_server, "/api/handles?prefix=TEST&page=1&pageSize=50").json()
    assert list(page) == ["responseCode", "prefix", "totalCount", "page", "pageSize", "handles"]
    assert page["totalCount"] == str(total) and page["page"] == 1 and page["pageSize"] == 50
    assert page["handles"] == everything["handles"][50:100]
    beyond = get(open_server, f"/api/handles?prefix=TEST&page=9&pageSize={total}").json()
    assert beyond["handles"] == [] and beyond["totalCount"] == str(total)
    assert get(open_server, "/api/handles?prefix=TEST&page=0&pageSize=0").json()["handles"] == []
    assert get(open_server, "/api/handles?prefix=TEST&page=x").status == 400


def test_home_list_and_unhome_prefixes(open_server: InProcessHttp) -> None:
    homed = send(open_server, "POST", "/api/prefixes/0.NA%2FNEWPFX", b"")
    assert homed.status == 200 and homed.json() == {"responseCode": 1, "handle": "0.NA/NEWPFX"}
    listed = get(open_server, "/api/prefixes").json()
    assert list(listed) == ["responseCode", "totalCount", "prefixes"]
    assert "0.NA/NEWPFX" in listed["prefixes"] and listed["totalCount"] == str(len(listed["prefixes"]))
    unhomed = send(open_server, "DELETE", "/api/prefixes", {"prefix": "0.NA/NEWPFX"})
    assert unhomed.status == 200
    assert "0.NA/NEWPFX" not in get(open_server, "/api/prefixes").json()["prefixes"]
    empty = send(open_server, "POST", "/api/prefixes", b"")
    assert empty.status == 400 and empty.json() == {"responseCode": 4,
                                                    "message": "Prefix not specified in homing request"}
    named = get(open_server, "/api/prefixes/0.NA%2FTEST")
    assert named.status == 405 and named.body == b"" and named.header("Allow") == "POST, DELETE, TRACE, OPTIONS"


# --- the real server process -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    directory = tmp_path_factory.mktemp("rest-process") / "srv"
    port = setup_server_dir(directory)
    http_port = free_port()
    add_http_interface(directory, http_port)
    proc = start_server(directory, port)
    yield proc, http_port
    proc.stop()


def test_rest_on_the_server_process(process: tuple[ServerProcess, int]) -> None:
    _proc, http_port = process
    reply = request(("127.0.0.1", http_port), "GET", "/api/handles/TEST/hello")
    assert reply.status == 200 and reply.json()["handle"] == "TEST/hello"

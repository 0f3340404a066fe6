"""Sans-IO parts of the HTTP interface: Authorization headers, REST parameters, JSON of responses and the
status mapping, JSONP, routing helpers, TLS first-byte detection and the server certificate files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from hdlserver.auth import keys
from hdlserver.config.settings import InterfaceConfig
from hdlserver.errors import ConfigError
from hdlserver.http.api_json import error_json, http_status, render_json, response_json, scrub_callback
from hdlserver.http.api_params import ParameterError, Params, parse_java_int, parse_json_parameters
from hdlserver.http.auth_header import (
    BasicCredentials,
    HandleAuthorization,
    parse_authorization,
    parse_basic,
    parse_handle,
    split_index_colon_handle,
)
from hdlserver.http.certificate import (
    CERTIFICATE_FILE,
    CERTIFICATE_KEY_FILE,
    load_or_create_certificate,
    self_signed_certificate,
)
from hdlserver.http.messages import HttpRequest, decode_path
from hdlserver.http.protocol import DEFAULT_TIMEOUT, HttpLimits
from hdlserver.http.proxy import redirect_target
from hdlserver.http.rest import is_api_path, path_argument, route
from hdlserver.http.tls import is_tls_first_byte
from hdlserver.http.tunnel import is_native_request
from hdlserver.jsonform.values_json import values_from_json
from hdlserver.wire.bodies import (
    ChallengeBody,
    CreateHandleResponse,
    ErrorBody,
    GenericSuccessResponse,
    ReferralBody,
    ResolutionResponse,
    SiteInfoResponse,
    VerifyChallengeResponse,
)
from hdlserver.wire.codes import OpCode, OpFlag
from hdlserver.wire.message import Header, Message
from hdlserver.wire.site import Interface, ServerInfo, SiteInfo, encode_site
from hdlserver.wire.values import HandleValue

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def http_request(method: str = "GET", target: str = "/", headers: tuple[tuple[str, str], ...] = (),
                 body: bytes = b"") -> HttpRequest:
    return HttpRequest(method, target, headers, body, "127.0.0.1", False, 0.0)


# --- Authorization headers (auth.md 10.1-10.2) -----------------------------------------------------------


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(user.encode() + b":" + password).decode()


def test_basic_credentials_with_encoded_identity_and_colon_in_password() -> None:
    creds = parse_basic(basic("300%3A0.NA%2FTEST", b"se:cret"))
    assert creds == BasicCredentials(b"0.NA/TEST", 300, b"se:cret")


def test_basic_user_without_index_is_index_zero_and_plus_stays() -> None:
    assert parse_basic(basic("TEST/a+b", b"x")) == BasicCredentials(b"TEST/a+b", 0, b"x")
    assert parse_basic(basic("abc%3ATEST/x", b"x")) == BasicCredentials(b"abc:TEST/x", 0, b"x")


@pytest.mark.parametrize("value", ["Basic", "Basic a b", "Bearer abc",
                                   "Basic " + base64.b64encode(b"nocolon").decode()])
def test_basic_rejects_malformed(value: str) -> None:
    assert parse_basic(value) is None


def test_basic_scheme_is_case_insensitive_and_base64_lenient() -> None:
    encoded = base64.urlsafe_b64encode(b"1%3AH/x:\xfe\xff").decode().rstrip("=")
    assert parse_basic("basic " + encoded) == BasicCredentials(b"H/x", 1, b"\xfe\xff")


def test_handle_authorization_parameters() -> None:
    header = ('Handle version="0", sessionId="abc123", id="300%3A0.NA%2FTEST", type="HS_SECKEY", '
              'cnonce="Y25vbmNl", alg=HMAC-SHA256, signature="c2ln", salt="c2FsdA==", iterations=1000, length=160')
    auth = parse_handle(header)
    assert auth == HandleAuthorization(version="0", session_id="abc123", id="300:0.NA/TEST", cnonce="Y25vbmNl",
                                       type="HS_SECKEY", alg="HMAC-SHA256", signature="c2ln", salt="c2FsdA==",
                                       iterations="1000", length="160")
    assert auth.identity() == (b"0.NA/TEST", 300)
    assert auth.is_authenticating and auth.requires_session and not auth.is_incomplete
    assert not auth.is_requesting_server_signature


def test_handle_authorization_quoting_and_case() -> None:
    auth = parse_handle('HANDLE SESSIONID = "a\\"b\\\\c" ,  ClientCert=true,,')
    assert auth == HandleAuthorization(session_id='a"b\\c', client_cert="true")
    assert auth.requires_session and not auth.is_authenticating


def test_handle_authorization_session_only_and_server_signature() -> None:
    assert parse_handle('Handle sessionId="s1"') == HandleAuthorization(session_id="s1")
    auth = parse_handle('Handle sessionId="s1", cnonce="abc"')
    assert auth is not None and auth.is_requesting_server_signature and auth.is_incomplete


@pytest.mark.parametrize("value", ["Handle", "Handle ", "Handle a=b c=d", "Handle a=b, junk", 'Handle a="open',
                                   "Handlex a=b", "Handle =b"])
def test_handle_authorization_rejects_malformed(value: str) -> None:
    assert parse_handle(value) is None


def test_unknown_handle_parameters_are_ignored() -> None:
    assert parse_handle("Handle foo=bar, id=1%3AX%2Fy") == HandleAuthorization(id="1:X/y")


def test_parameters_fill_what_the_header_lacks() -> None:
    auth = HandleAuthorization(session_id="s").with_parameters(
        [("sessionId", "other"), ("ID", "300:0.NA/T"), ("renegotiate", ""), ("pretty", "")])
    assert auth == HandleAuthorization(session_id="s", id="300:0.NA/T", renegotiate="true")


def test_parse_authorization_dispatches_on_scheme() -> None:
    assert isinstance(parse_authorization(basic("1:A/b", b"k")), BasicCredentials)
    assert isinstance(parse_authorization('Handle sessionId="x"'), HandleAuthorization)
    assert parse_authorization(None) is None
    assert parse_authorization("Digest x=y") is None


def test_split_index_colon_handle() -> None:
    assert split_index_colon_handle("300:0.NA/TEST") == (b"0.NA/TEST", 300)
    assert split_index_colon_handle("0.NA/TEST") == (b"0.NA/TEST", 0)
    assert split_index_colon_handle("99999999999:X/y") == (b"99999999999:X/y", 0)


# --- REST parameters ---------------------------------------------------------------------------------


def test_query_parameters_decode_like_a_servlet() -> None:
    params = Params(http_request(target="/api/handles/X?type=URL&type=EMAIL&index=1&a+b=c%20d&flag").query_pairs())
    assert params.values("type") == ["URL", "EMAIL"]
    assert params.get("a b") == "c d"
    assert params.indexes() == (1,)
    assert params.flag("flag") and not params.flag("missing")


@pytest.mark.parametrize(("value", "expected"), [("", True), ("yes", True), ("TRUE", True), ("no", False),
                                                 ("1", False), ("false", False)])
def test_boolean_parameters(value: str, expected: bool) -> None:
    assert Params([("p", value)]).flag("p") is expected


def test_json_body_parameters_merge_after_the_query() -> None:
    body = b'{"index": [2, "3"], "type": "URL", "pretty": true, "page": 1.50}'
    request = http_request("POST", "/api/handles/X?index=1", (("content-type", "application/json; charset=utf-8"),),
                           body)
    params = Params.from_request(request, json_body=True)
    assert params.indexes() == (1, 2, 3)
    assert params.get("index") == "1"
    assert params.get("type") == "URL"
    assert params.flag("pretty")
    assert params.get("page") == "1.50"  # a JSON number keeps its literal text


def test_form_body_parameters_of_a_post() -> None:
    request = http_request("POST", "/api/handles/X", (("content-type", "application/x-www-form-urlencoded"),),
                           b"type=URL&index=7")
    assert Params.from_request(request).values("type") == ["URL"]
    assert Params.from_request(request).indexes() == (7,)


@pytest.mark.parametrize("body", [b"[1]", b"{bad", b"\xff", b'"x"'])
def test_json_parameter_body_must_be_an_object(body: bytes) -> None:
    with pytest.raises(ParameterError):
        parse_json_parameters(body)


def test_json_parameter_values_must_be_scalars() -> None:
    params = Params([], {"type": {"a": 1}, "index": [None]})
    with pytest.raises(ParameterError):
        params.get("type")
    with pytest.raises(ParameterError):
        params.indexes()


@pytest.mark.parametrize("text", ["", "1.0", " 1", "x", "2147483648", "-2147483649", "1_0"])
def test_java_integers_are_strict(text: str) -> None:
    with pytest.raises(ParameterError):
        parse_java_int(text, "page")


def test_java_integers() -> None:
    assert parse_java_int("+12", "p") == 12
    assert parse_java_int("-2147483648", "p") == -(2**31)


# --- JSON of responses and the HTTP status mapping (server.md 14) ------------------------------------


@pytest.mark.parametrize(("opcode", "code", "flags", "status"), [
    (OpCode.RESOLUTION, 1, 0, 200),
    (OpCode.CREATE_HANDLE, 1, 0, 201),
    (OpCode.CREATE_HANDLE, 1, OpFlag.OVRW, 200),
    (OpCode.ADD_VALUE, 1, 0, 201),
    (OpCode.ADD_VALUE, 1, OpFlag.OVRW, 200),
    (OpCode.DELETE_HANDLE, 1, 0, 200),
    (OpCode.RESOLUTION, 200, 0, 200),
    (OpCode.REMOVE_VALUE, 200, 0, 400),
    (OpCode.RESOLUTION, 302, 0, 300),
    (OpCode.RESOLUTION, 303, 0, 300),
    (OpCode.RESOLUTION, 100, 0, 404),
    (OpCode.CREATE_HANDLE, 101, 0, 409),
    (OpCode.ADD_VALUE, 201, 0, 409),
    (OpCode.RESERVED, 4, 0, 400),
    (OpCode.CREATE_HANDLE, 102, 0, 400),
    (OpCode.ADD_VALUE, 202, 0, 400),
    (OpCode.HOME_NA, 301, 0, 400),
    (OpCode.LIST_HANDLES, 5, 0, 501),
    (OpCode.RESOLUTION, 3, 0, 503),
    (OpCode.RESOLUTION, 7, 0, 503),
    (OpCode.CREATE_HANDLE, 402, 0, 401),
    (OpCode.CREATE_HANDLE, 400, 0, 403),
    (OpCode.CREATE_HANDLE, 401, 0, 403),
    (OpCode.CREATE_HANDLE, 403, 0, 403),
    (OpCode.CREATE_HANDLE, 404, 0, 403),
    (OpCode.RESOLUTION, 2, 0, 500),
    (OpCode.RESOLUTION, 6, 0, 500),
    (OpCode.CREATE_HANDLE, 405, 0, 500),
    (OpCode.CREATE_HANDLE, 406, 0, 500),
    (OpCode.CREATE_HANDLE, 500, 0, 500),
    (OpCode.CREATE_HANDLE, 505, 0, 500),
    (OpCode.RESOLUTION, 300, 0, 500),
])
def test_status_mapping(opcode: int, code: int, flags: int, status: int) -> None:
    assert http_status(opcode, code, flags) == status


def message(opcode: int, code: int, body: object) -> Message:
    return Message(Header(opcode=opcode, response_code=code), body)  # type: ignore[arg-type]


URL_VALUE = HandleValue(1, b"URL", b"http://example.org/", timestamp=1_700_000_000)


def test_resolution_json() -> None:
    msg = message(OpCode.RESOLUTION, 1, ResolutionResponse(b"TEST/a", (URL_VALUE,)))
    assert response_json(msg, b"TEST/a") == {
        "responseCode": 1, "handle": "TEST/a",
        "values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": "http://example.org/"},
                    "ttl": 86400, "timestamp": "2023-11-14T22:13:20Z"}]}


def test_errors_add_message_then_the_request_handle() -> None:
    msg = message(OpCode.DELETE_HANDLE, 301, ErrorBody(b"That prefix doesn't live here"))
    assert json.dumps(response_json(msg, b"X/y")) == \
        '{"responseCode": 301, "message": "That prefix doesn\'t live here", "handle": "X/y"}'
    assert response_json(message(OpCode.RESOLUTION, 100, ErrorBody(b"")), b"X/y") == \
        {"responseCode": 100, "handle": "X/y"}


def test_values_not_found_on_resolution_has_empty_values() -> None:
    assert list(response_json(message(OpCode.RESOLUTION, 200, ErrorBody(b"")), b"X/y").items()) == \
        [("responseCode", 200), ("values", []), ("handle", "X/y")]
    assert response_json(message(OpCode.REMOVE_VALUE, 200, ErrorBody(b"")), b"X/y") == \
        {"responseCode": 200, "handle": "X/y"}


def test_referral_json() -> None:
    msg = message(OpCode.RESOLUTION, 302, ReferralBody(b"0.NA/SERV", (URL_VALUE,)))
    out = response_json(msg, b"X/y")
    assert list(out) == ["responseCode", "referralHandle", "values", "handle"]
    assert out["referralHandle"] == "0.NA/SERV"


def test_site_verify_create_challenge_and_generic_json() -> None:
    site = SiteInfo(serial=3, primary=True, multi_primary=False, hash_option=2, attributes=(),
                    servers=(ServerInfo(1, b"\x00" * 12 + b"\x7f\x00\x00\x01", b"", (Interface(3, 1, 2641),)),))
    out = response_json(message(OpCode.GET_SITE_INFO, 1, SiteInfoResponse(encode_site(site))), b"/")
    assert list(out) == ["responseCode", "site"] and out["site"]["serialNumber"] == 3  # type: ignore[index]
    assert response_json(message(OpCode.VERIFY_CHALLENGE, 1, VerifyChallengeResponse(True)), b"0.NA/T") == \
        {"responseCode": 1, "isValid": True, "handle": "0.NA/T"}
    assert response_json(message(OpCode.CREATE_HANDLE, 1, CreateHandleResponse(b"T/minted")), b"T/") == \
        {"responseCode": 1, "handle": "T/minted"}
    assert response_json(message(OpCode.CREATE_HANDLE, 402, ChallengeBody(b"n" * 16)), b"T/x") == \
        {"responseCode": 402, "handle": "T/x"}
    assert response_json(message(OpCode.HOME_NA, 1, GenericSuccessResponse()), None) == {"responseCode": 1}


def test_error_json_has_no_handle() -> None:
    assert error_json("Unknown method FOO") == {"responseCode": 4, "message": "Unknown method FOO"}


def test_jsonp_scrubs_the_callback() -> None:
    assert scrub_callback("cb") == "cb"
    assert scrub_callback("a-b.c();alert(1)") == "a_b_c___alert_1_"
    assert scrub_callback("1x$_é") == "_x$_é"
    response = render_json(200, {"responseCode": 1}, callback="my.cb")
    assert response.body == b'my_cb({"responseCode":1});'
    assert response.header("content-type") == "application/javascript;charset=UTF-8"


def test_pretty_json_is_gson_pretty() -> None:
    response = render_json(404, {"responseCode": 100, "handle": "X/é"}, pretty=True)
    assert response.body.decode() == '{\n  "responseCode": 100,\n  "handle": "X/é"\n}'
    assert response.header("content-type") == "application/json;charset=UTF-8"


def test_record_vector_round_trips_through_the_json_of_a_resolution() -> None:
    """The values of Java's record_gson.json, served in a resolution, give back Java's JSON exactly."""
    path = VECTORS / "values" / "record_gson.json"
    if not path.exists():
        pytest.skip(f"test vectors not available at {path}")
    vector = json.loads(path.read_text(encoding="utf-8"))
    values = values_from_json(vector, resolve_host_names=False)
    out = response_json(message(OpCode.RESOLUTION, 1, ResolutionResponse(b"TEST/v", values)), b"TEST/v")
    assert out["values"] == vector


# --- routing helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/handles", ("handles", "")),
    ("/api/handles/", ("handles", "/")),
    ("/api/handles/TEST/a%20b", ("handles", "/TEST/a%20b")),
    ("/api/handlesX", (None, "/api/handlesX")),
    ("/api/site", ("site", "")),
    ("/api/prefixes/0.NA%2FX", ("prefixes", "/0.NA%2FX")),
    ("/api/verifications/300:X/y", ("verifications", "/300:X/y")),
    ("/api/sessions/this", ("sessions", "/this")),
    ("/api/other", (None, "/api/other")),
])
def test_route(path: str, expected: tuple[str | None, str]) -> None:
    assert route(path) == expected


def test_api_paths_and_path_arguments() -> None:
    assert is_api_path("/api") and is_api_path("/api/x") and not is_api_path("/apix") and not is_api_path("/")
    assert path_argument("/TEST/a%2Bb+c") == "TEST/a+b+c"
    assert path_argument("//x") == "/x"
    assert decode_path("%E2%82%AC%zz") == "€%zz"


def test_native_requests_need_both_headers() -> None:
    both = (("accept", "application/x-hdl-message"), ("content-type", "Application/X-HDL-Message"))
    assert is_native_request(http_request("POST", "/", both))
    assert not is_native_request(http_request("GET", "/", both))
    assert not is_native_request(http_request("POST", "/", both[:1]))
    assert not is_native_request(http_request("POST", "/", both[1:]))


def test_redirect_target_is_the_lowest_index_usable_url() -> None:
    values = (HandleValue(5, b"URL", b"http://five/"), HandleValue(2, b"url.extra", b"http://two/"),
              HandleValue(1, b"URL", b"http://bad/\r\nX-Injected: 1"), HandleValue(0, b"EMAIL", b"a@b"))
    assert redirect_target(values) == "http://two/"
    assert redirect_target((HandleValue(1, b"DESC", b"x"),)) is None


def test_tls_first_byte_detection() -> None:
    assert is_tls_first_byte(0x16)
    assert all(is_tls_first_byte(b) for b in range(0x80, 0x100))
    assert not any(is_tls_first_byte(b) for b in range(0x00, 0x80) if b != 0x16)


def test_limits_follow_max_idle_time() -> None:
    iface = InterfaceConfig(label="hdl_http", kind="http", bind_port=8000, max_idle_time_ms=1500)
    assert HttpLimits.for_interface(iface) == HttpLimits(idle_timeout=1.5, header_timeout=1.5)
    long = InterfaceConfig(label="hdl_http", kind="http", bind_port=8000, max_idle_time_ms=300_000)
    assert HttpLimits.for_interface(long).header_timeout == DEFAULT_TIMEOUT
    assert HttpLimits.for_interface(InterfaceConfig("hdl_http", "http", 8000, max_idle_time_ms=0)).idle_timeout \
        == DEFAULT_TIMEOUT


# --- the server certificate (server.md 1) ------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> keys.PrivateKey:
    return keys.generate_key_pair("RSA", 2048)


def test_self_signed_certificate_has_javas_form(rsa_key: keys.PrivateKey) -> None:
    cert = self_signed_certificate(rsa_key)
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "anonymous"
    assert cert.not_valid_before_utc.year == 2000 and cert.not_valid_after_utc.year == 9999
    assert 0 < cert.serial_number < 2**159
    assert cert.public_key().public_numbers() == rsa_key.public_key().public_numbers()  # type: ignore[union-attr]


def test_rsa_server_key_certifies_itself_and_writes_no_key_file(tmp_path: Path, rsa_key: keys.PrivateKey) -> None:
    site_key = keys.public_key_to_bytes(rsa_key.public_key())
    first = load_or_create_certificate(tmp_path, rsa_key, site_key)
    assert first.public_key_bytes() == site_key
    assert first.private_key is rsa_key
    assert not (tmp_path / CERTIFICATE_KEY_FILE).exists()
    pem = (tmp_path / CERTIFICATE_FILE).read_bytes()
    again = load_or_create_certificate(tmp_path, rsa_key, site_key)
    assert (tmp_path / CERTIFICATE_FILE).read_bytes() == pem
    assert again.chain_pem == pem


def test_dsa_server_key_gets_a_fresh_rsa_certificate_key(tmp_path: Path) -> None:
    dsa_key = keys.generate_key_pair("DSA", 1024)
    site_key = keys.public_key_to_bytes(dsa_key.public_key())
    cert = load_or_create_certificate(tmp_path, dsa_key, site_key)
    assert isinstance(cert.private_key, rsa.RSAPrivateKey) and cert.private_key.key_size == 2048
    key_file = (tmp_path / CERTIFICATE_KEY_FILE).read_bytes()
    assert key_file[:4] == b"\x00\x00\x00\x01"  # unencrypted Java key file
    assert keys.read_private_key_file(key_file, None).private_numbers() == cert.private_key.private_numbers()
    assert not isinstance(x509.load_pem_x509_certificate(cert.chain_pem).public_key(), dsa.DSAPublicKey)
    reloaded = load_or_create_certificate(tmp_path, dsa_key, site_key)
    assert reloaded.private_key.private_numbers() == cert.private_key.private_numbers()  # type: ignore[union-attr]


def test_a_certificate_for_another_key_is_refused(tmp_path: Path, rsa_key: keys.PrivateKey) -> None:
    other = keys.generate_key_pair("RSA", 1024)
    (tmp_path / CERTIFICATE_FILE).write_bytes(self_signed_certificate(other).public_bytes(Encoding.PEM))
    with pytest.raises(ConfigError, match="does not match"):
        load_or_create_certificate(tmp_path, rsa_key, keys.public_key_to_bytes(rsa_key.public_key()))


def test_an_unreadable_certificate_is_a_config_error(tmp_path: Path, rsa_key: keys.PrivateKey) -> None:
    (tmp_path / CERTIFICATE_FILE).write_text("not a certificate")
    with pytest.raises(ConfigError):
        load_or_create_certificate(tmp_path, rsa_key, b"")

"""REST authentication (auth.md 10) without sockets: the authenticator over a real server directory's store,
with an injected clock, and the bounded HTTP session table.

Answers are computed here independently of hdlserver (hashlib, hmac, cryptography), as a client would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import setup_server_dir

from hdlserver.auth import keys
from hdlserver.core.context import ServerState
from hdlserver.core.signing import ResponseSigner
from hdlserver.http.auth_answers import algorithm_code, lenient_base64, signed_response
from hdlserver.http.auth_header import parse_handle
from hdlserver.http.messages import HttpRequest
from hdlserver.http.rest_auth import (
    IDENTITY_NOT_VERIFIED,
    MAX_REST_PBKDF2_ITERATIONS,
    MISSING_FIELDS,
    TOO_MANY_ITERATIONS,
    UNKNOWN_SESSION,
    UNKNOWN_VERSION,
    UNPARSABLE,
    UNUSABLE_AUTHORIZATION,
    Authentication,
    RestAuthenticator,
)
from hdlserver.http.rest_sessions import RestSessionTable
from hdlserver.http.rest_sessions_api import RestSessionsApi
from hdlserver.serverdir import open_server_state
from hdlserver.wire.values import HandleValue

SECRET = b"secret"
ADMIN = b"0.NA/TEST"
TIMEOUT = 1800.0
DSA_INDEX = 302


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(1024)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, dsa_key: dsa.DSAPrivateKey) -> Iterator[ServerState]:
    """prefix TEST; 0.NA/TEST has HS_SECKEY 300 'secret', HS_PUBKEY 301 (RSA, admpriv.bin), 302 (DSA)."""
    directory = tmp_path_factory.mktemp("rest-auth") / "srv"
    setup_server_dir(directory)
    state = open_server_state(directory)
    values = state.store.get_values(ADMIN) or ()
    dsa_value = HandleValue(DSA_INDEX, b"HS_PUBKEY", keys.public_key_to_bytes(dsa_key.public_key()))
    state.store.replace_values(ADMIN, (*values, dsa_value))
    yield state
    state.store.close()


@pytest.fixture(scope="module")
def rsa_key(state: ServerState) -> rsa.RSAPrivateKey:
    key = keys.load_private_key(Path(state.settings.path).parent / "admpriv.bin")
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(state: ServerState, clock: Clock) -> RestAuthenticator:
    return RestAuthenticator(state, RestSessionTable(TIMEOUT, max_sessions=8), clock)


def tls_request(authorization: str | None = None, **headers: str) -> HttpRequest:
    pairs = [(k.lower().replace("_", "-"), v) for k, v in headers.items()]
    if authorization is not None:
        pairs.append(("authorization", authorization))
    return HttpRequest("PUT", "/api/handles/TEST/x", tuple(pairs), b"", "127.0.0.1", True, 0.0)


def basic(user: str, password: bytes) -> str:
    return "Basic " + base64.b64encode(quote(user, safe="").encode() + b":" + password).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def handle_header(session_id: str, identity: str, auth_type: str, alg: str, cnonce: bytes, signature: bytes,
                  **extra: str) -> str:
    params = [f'sessionId="{session_id}"', f'id="{quote(identity, safe="")}"', f'type="{auth_type}"',
              f'cnonce="{b64(cnonce)}"', f'alg="{alg}"', f'signature="{b64(signature)}"']
    params += [f'{name}="{value}"' for name, value in extra.items()]
    return "Handle version=\"0\", " + ", ".join(params)


def secret_mac(alg: str, secret: bytes, nonce: bytes, cnonce: bytes) -> bytes:
    """The HS_SECKEY MAC of auth.md 4.2 with D = cnonce, computed directly."""
    if alg in ("MD5", "SHA1", "SHA-256"):
        return hashlib.new(alg.replace("-", "").lower(), secret + nonce + cnonce + secret).digest()
    return hmac.new(secret, nonce + cnonce, alg.removeprefix("HMAC-").replace("-", "").lower()).digest()


def new_session_id(auth: RestAuthenticator) -> tuple[str, bytes]:
    session = auth.sessions.create(auth.clock())
    return session.session_id, session.nonce


# --- Basic ---------------------------------------------------------------------------------------------


def test_basic_with_the_right_secret(auth: RestAuthenticator) -> None:
    result = auth(tls_request(basic("300:0.NA/TEST", SECRET)))
    assert result.identity == (ADMIN, 300) and result.identity_text == "300:0.NA/TEST"
    assert result.authenticating and not result.failed and result.session is None


def test_basic_index_zero_accepts_any_secret_key_value(auth: RestAuthenticator) -> None:
    assert auth(tls_request(basic("0.NA/TEST", SECRET))).identity == (ADMIN, 0)


@pytest.mark.parametrize("user, password", [("300:0.NA/TEST", b"wrong"), ("300:0.NA/TEST", b""),
                                            ("301:0.NA/TEST", SECRET), ("300:TEST/missing", SECRET)])
def test_basic_that_does_not_verify_fails(auth: RestAuthenticator, user: str, password: bytes) -> None:
    result = auth(tls_request(basic(user, password)))
    assert result.failed and result.identity is None
    assert result.errors == (IDENTITY_NOT_VERIFIED,)


def test_basic_for_an_identity_this_server_does_not_serve(auth: RestAuthenticator) -> None:
    result = auth(tls_request(basic("300:ELSEWHERE/admin", SECRET)))
    assert result.failed and result.errors == ("Identity handle ELSEWHERE/admin is not served by this server",)
    assert "Authentication failed: Identity handle ELSEWHERE/admin" in result.message()


@pytest.mark.parametrize("authorization", ["Bearer abc", "Basic", "Basic !!!!", "Handle a=b c=d", "Digest x=y",
                                           "Basic " + b64(b"no-colon")])
def test_unusable_authorization_headers_fail(auth: RestAuthenticator, authorization: str) -> None:
    result = auth(tls_request(authorization))
    assert result.failed and result.errors == (UNUSABLE_AUTHORIZATION,)
    assert len(auth.sessions) == 0


def test_no_authorization_is_anonymous(auth: RestAuthenticator) -> None:
    result = auth(tls_request())
    assert result == Authentication() and not result.failed


# --- Authorization: Handle with HS_SECKEY ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["MD5", "SHA1", "SHA-256", "HMAC-SHA1", "HMAC-SHA256"])
def test_handle_secret_key_answer_authenticates_the_session(auth: RestAuthenticator, clock: Clock,
                                                             alg: str) -> None:
    session_id, nonce = new_session_id(auth)
    cnonce = b"client nonce " + alg.encode()
    header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", alg, cnonce,
                           secret_mac(alg, SECRET, nonce, cnonce))
    result = auth(tls_request(header))
    assert result.identity == (ADMIN, 300) and result.identity_text == "300:0.NA/TEST"
    assert result.session is not None and result.session.session_id == session_id
    clock.now += 60
    later = auth(tls_request(f'Handle sessionId="{session_id}"'))
    assert later.identity == (ADMIN, 300) and not later.authenticating


def test_pbkdf2_answer_with_salt_iterations_and_length_parameters(auth: RestAuthenticator) -> None:
    session_id, nonce = new_session_id(auth)
    cnonce, salt = b"c" * 16, b"s" * 16
    key = hashlib.pbkdf2_hmac("sha1", SECRET, salt, 1000, 20)
    mac = hmac.new(key, nonce + cnonce, "sha1").digest()
    header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "PBKDF2-HMAC-SHA1", cnonce, mac,
                           salt=b64(salt), iterations="1000", length="160")
    assert auth(tls_request(header)).identity == (ADMIN, 300)


def test_pbkdf2_answer_in_the_java_encoding_without_parameters(auth: RestAuthenticator) -> None:
    session_id, nonce = new_session_id(auth)
    cnonce, salt = b"d" * 16, bytes(16)
    key = hashlib.pbkdf2_hmac("sha1", SECRET, salt, 10_000, 20)
    mac = hmac.new(key, nonce + cnonce, "sha1").digest()
    encoded = (len(salt).to_bytes(4, "big") + salt + (10_000).to_bytes(4, "big") + (160).to_bytes(4, "big")
               + len(mac).to_bytes(4, "big") + mac)
    header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "pbkdf2withhmacsha1", cnonce, encoded)
    assert auth(tls_request(header)).identity == (ADMIN, 300)


def test_wrong_secret_answer_fails_and_leaves_the_session_anonymous(auth: RestAuthenticator) -> None:
    session_id, nonce = new_session_id(auth)
    cnonce = b"cn"
    header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "HMAC-SHA256", cnonce,
                           secret_mac("HMAC-SHA256", b"wrong", nonce, cnonce))
    result = auth(tls_request(header))
    assert result.failed and result.errors == (IDENTITY_NOT_VERIFIED,)
    assert auth(tls_request(f'Handle sessionId="{session_id}"')).identity is None


def test_the_authenticating_header_is_not_verified_again(auth: RestAuthenticator,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    session_id, nonce = new_session_id(auth)
    header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "SHA1", b"x",
                           secret_mac("SHA1", SECRET, nonce, b"x"))
    assert auth(tls_request(header)).identity == (ADMIN, 300)

    def no_second_verification(*args: object) -> None:
        raise AssertionError("verified twice")

    monkeypatch.setattr(auth, "_verify_identity", no_second_verification)
    assert auth(tls_request(header)).identity == (ADMIN, 300)


@pytest.mark.parametrize("change, error", [
    ({"version": "1", "sessionId": None}, UNKNOWN_VERSION),  # a version 1 header names no session
    ({"version": "1"}, UNKNOWN_SESSION),
    ({"alg": "ROT13"}, UNPARSABLE),
    ({"type": "HS_OTHER"}, UNPARSABLE),
    ({"signature": None}, MISSING_FIELDS),
    ({"cnonce": None}, MISSING_FIELDS),
    ({"alg": "PBKDF2-HMAC-SHA1", "salt": "AAAA", "iterations": "many", "length": "160"},
     f"{UNPARSABLE}: Invalid integer for parameter iterations: 'many'"),
])
def test_broken_handle_parameters_fail_with_a_reason(auth: RestAuthenticator, change: dict[str, str | None],
                                                     error: str) -> None:
    session_id, _nonce = new_session_id(auth)
    params = {"version": "0", "sessionId": session_id, "id": "300%3A0.NA%2FTEST", "type": "HS_SECKEY",
              "cnonce": "Y24=", "alg": "SHA1", "signature": "c2ln", **change}
    header = "Handle " + ", ".join(f'{k}="{v}"' for k, v in params.items() if v is not None)
    result = auth(tls_request(header))
    assert result.failed and result.errors == (error,)


@pytest.mark.parametrize("in_parameters", [True, False])
def test_pbkdf2_answers_with_a_huge_iteration_count_are_refused_before_deriving(
        auth: RestAuthenticator, monkeypatch: pytest.MonkeyPatch, in_parameters: bool) -> None:
    def no_derivation(*args: object) -> None:
        raise AssertionError("derived a key")

    monkeypatch.setattr(auth, "_verify_identity", no_derivation)
    session_id, _nonce = new_session_id(auth)
    salt, mac = b"s" * 16, b"m" * 20
    if in_parameters:
        header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "PBKDF2-HMAC-SHA1", b"c", mac,
                               salt=b64(salt), iterations=str(MAX_REST_PBKDF2_ITERATIONS + 1), length="160")
    else:
        encoded = (len(salt).to_bytes(4, "big") + salt + (2**31 - 1).to_bytes(4, "big") + (160).to_bytes(4, "big")
                   + len(mac).to_bytes(4, "big") + mac)
        header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "PBKDF2-HMAC-SHA1", b"c", encoded)
    result = auth(tls_request(header))
    assert result.failed and result.errors == (TOO_MANY_ITERATIONS,)


# --- Authorization: Handle with HS_PUBKEY ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["SHA-256", "SHA1"])
def test_rsa_public_key_answer(auth: RestAuthenticator, rsa_key: rsa.RSAPrivateKey, alg: str) -> None:
    session_id, nonce = new_session_id(auth)
    cnonce = b"rsa cnonce"
    digest = hashes.SHA256() if alg == "SHA-256" else hashes.SHA1()
    signature = rsa_key.sign(nonce + cnonce, padding.PKCS1v15(), digest)
    result = auth(tls_request(handle_header(session_id, "301:0.NA/TEST", "HS_PUBKEY", alg, cnonce, signature)))
    assert result.identity == (ADMIN, 301)


@pytest.mark.parametrize("alg", ["SHA1", "SHA256"])
def test_dsa_public_key_answer_with_index_zero_names_the_key_that_verified(
        auth: RestAuthenticator, dsa_key: dsa.DSAPrivateKey, alg: str) -> None:
    session_id, nonce = new_session_id(auth)
    cnonce = b"dsa cnonce"
    signature = dsa_key.sign(nonce + cnonce, hashes.SHA1() if alg == "SHA1" else hashes.SHA256())
    result = auth(tls_request(handle_header(session_id, "0.NA/TEST", "HS_PUBKEY", alg, cnonce, signature)))
    assert result.identity == (ADMIN, DSA_INDEX) and result.identity_text == "0.NA/TEST"


def test_public_key_answer_signed_by_another_key_fails(auth: RestAuthenticator) -> None:
    session_id, nonce = new_session_id(auth)
    other = rsa.generate_private_key(65537, 1024)
    signature = other.sign(nonce + b"c", padding.PKCS1v15(), hashes.SHA256())
    result = auth(tls_request(handle_header(session_id, "301:0.NA/TEST", "HS_PUBKEY", "SHA-256", b"c", signature)))
    assert result.failed and result.errors == (IDENTITY_NOT_VERIFIED,)


# --- sessions: unknown, expired, server signatures ------------------------------------------------------


def test_unknown_session_fails_and_hands_out_a_new_one(auth: RestAuthenticator) -> None:
    result = auth(tls_request('Handle sessionId="no-such-session"'))
    assert result.failed and result.errors == (UNKNOWN_SESSION,)
    assert result.session is not None and result.session.session_id != "no-such-session"


def test_expired_session_fails(auth: RestAuthenticator, clock: Clock) -> None:
    session_id, nonce = new_session_id(auth)
    header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "SHA1", b"x",
                           secret_mac("SHA1", SECRET, nonce, b"x"))
    assert auth(tls_request(header)).identity == (ADMIN, 300)
    clock.now += TIMEOUT - 1
    assert auth(tls_request(f'Handle sessionId="{session_id}"')).identity == (ADMIN, 300)  # use refreshes it
    clock.now += TIMEOUT + 1
    result = auth(tls_request(f'Handle sessionId="{session_id}"'))
    assert result.failed and result.identity is None and result.errors == (UNKNOWN_SESSION,)


def test_server_signature_over_nonce_and_cnonce(auth: RestAuthenticator, state: ServerState) -> None:
    session_id, nonce = new_session_id(auth)
    cnonce = b"prove yourself"
    result = auth(tls_request(f'Handle sessionId="{session_id}", cnonce="{b64(cnonce)}"'))
    assert not result.failed and result.identity is None and result.server_signature is not None
    server_key = keys.public_key_from_bytes(state.this_server.public_key)
    assert keys.verify(server_key, result.server_signature, nonce + cnonce, "SHA-256")
    again = auth(tls_request(f'Handle sessionId="{session_id}", cnonce="{b64(cnonce)}"'))
    assert again.server_signature == result.server_signature
    challenge = auth.handle_challenge(result, tls_request())
    assert challenge == (f'Handle sessionId="{session_id}", nonce="{b64(nonce)}", serverAlg="SHA-256", '
                         f'serverSignature="{b64(result.server_signature)}"')


def test_a_server_key_that_cannot_sign_is_an_error_not_a_crash(auth: RestAuthenticator, state: ServerState,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state, "signer", ResponseSigner(ed25519.Ed25519PrivateKey.generate()))  # type: ignore[arg-type]
    session_id, _nonce = new_session_id(auth)
    result = auth(tls_request(f'Handle sessionId="{session_id}", cnonce="Y24="'))
    assert result.server_signature is None and result.errors == ("Unable to sign challenge",)
    assert not result.failed  # asking for a signature is not authenticating


def test_unauthorized_headers_offer_basic_unless_a_script_or_another_scheme_asked(auth: RestAuthenticator) -> None:
    plain = auth.unauthorized_headers(Authentication(), tls_request())
    assert plain[0] == ("WWW-Authenticate", 'Basic realm="handle"')
    assert plain[1][1].startswith('Handle sessionId="') and len(auth.sessions) == 1
    script = auth.unauthorized_headers(Authentication(), tls_request(x_requested_with="XMLHttpRequest"))
    assert [name for name, _ in script] == ["WWW-Authenticate"]
    handle = auth.unauthorized_headers(Authentication(), tls_request('Handle sessionId="x"'))
    assert len(handle) == 1


def test_challenge_reuses_the_named_session_and_escapes_errors(auth: RestAuthenticator) -> None:
    session_id, nonce = new_session_id(auth)
    result = Authentication(authenticating=True, errors=('bad "quote" \\ 100% ü',))
    value = auth.handle_challenge(result, tls_request(f'Handle sessionId="{session_id}"'))
    assert value == (f'Handle sessionId="{session_id}", nonce="{b64(nonce)}", '
                     'error="bad \\"quote\\" \\\\ 100%25 %C3%BC"')
    parsed = parse_handle("Handle " + value.removeprefix("Handle "))
    assert parsed is not None and parsed.session_id == session_id


# --- the session table ------------------------------------------------------------------------------------


def test_table_is_bounded_and_evicts_unauthenticated_sessions_first() -> None:
    table = RestSessionTable(TIMEOUT, max_sessions=3)
    admin = table.create(0.0)
    admin.authenticate((ADMIN, 300), "300:0.NA/TEST", None)
    anonymous = [table.create(1.0), table.create(2.0)]
    newest = table.create(3.0)
    assert len(table) == 3
    assert table.get(anonymous[0].session_id, 4.0) is None
    assert table.get(admin.session_id, 4.0) is admin and table.get(newest.session_id, 4.0) is newest


def test_a_full_table_of_authenticated_sessions_evicts_the_least_recently_used() -> None:
    table = RestSessionTable(TIMEOUT, max_sessions=2)
    first, second = table.create(0.0), table.create(1.0)
    for session in (first, second):
        session.authenticate((ADMIN, 300), "300:0.NA/TEST", None)
    assert table.get(first.session_id, 2.0) is first  # now second is the least recently used
    table.create(3.0)
    assert table.get(second.session_id, 4.0) is None and table.get(first.session_id, 4.0) is first


def test_expiry_is_idle_time_and_zero_means_never() -> None:
    table = RestSessionTable(10.0)
    session = table.create(0.0)
    assert table.get(session.session_id, 9.0) is session
    assert table.get(session.session_id, 18.0) is session
    assert table.expire(28.5) == 1 and len(table) == 0
    forever = RestSessionTable(0)
    kept = forever.create(0.0)
    assert forever.get(kept.session_id, 1e9) is kept


def test_sessions_get_distinct_ids_and_nonces() -> None:
    table = RestSessionTable(TIMEOUT)
    sessions = [table.create(0.0) for _ in range(50)]
    assert len({s.session_id for s in sessions}) == 50 and len({s.nonce for s in sessions}) == 50
    assert all(len(s.nonce) == 16 and s.session_id.isascii() for s in sessions)
    assert table.remove(sessions[0].session_id) and not table.remove(sessions[0].session_id)


def test_table_needs_room_for_one_session() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        RestSessionTable(TIMEOUT, max_sessions=0)


# --- answers from parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, code", [("md5", 0x01), ("SHA", 0x02), ("sha-1", 0x02), ("SHA2", 0x03),
                                        ("sha-256", 0x03), ("hmac_sha1", 0x12), ("HmacSHA256", 0x13),
                                        ("PBKDF2-HMAC-SHA1", 0x22), ("PBKDF2WithHmacSHA1", 0x22),
                                        ("sha-512", None), ("", None)])
def test_algorithm_names(name: str, code: int | None) -> None:
    assert algorithm_code(name) == code


def test_signed_response_forms() -> None:
    assert signed_response(b"HS_SECKEY", "HMAC-SHA1", b"mac") == b"\x12mac"
    assert signed_response(b"HS_PUBKEY", "sha256", b"sig") == b"\x00\x00\x00\x07SHA-256\x00\x00\x00\x03sig"
    assert signed_response(b"HS_OTHER", "SHA1", b"x") is None
    assert signed_response(b"HS_SECKEY", "whirlpool", b"x") is None


def test_lenient_base64_takes_both_alphabets_and_junk() -> None:
    assert lenient_base64("+/8=") == lenient_base64("-_8") == b"\xfb\xff"
    assert lenient_base64("aGVs bG8*") == b"hello"
    assert lenient_base64("aGVsbG8x!") == b"hello1"
    assert lenient_base64("aGVsbG8xY") == b"hello1"  # a lone trailing character carries no byte


# --- /api/sessions without sockets -------------------------------------------------------------------------


def sessions_request(method: str, path: str, body: object = None, authorization: str | None = None) -> HttpRequest:
    headers = [("content-type", "application/json")]
    if authorization is not None:
        headers.append(("authorization", authorization))
    data = b"" if body is None else json.dumps(body).encode()
    return HttpRequest(method, path, tuple(headers), data, "127.0.0.1", True, 0.0)


def seckey_params(session_id: str | None, nonce: bytes, secret: bytes = SECRET) -> dict[str, str]:
    cnonce = b"json cnonce"
    params = {"id": "300:0.NA/TEST", "type": "HS_SECKEY", "cnonce": b64(cnonce), "alg": "HMAC-SHA1",
              "signature": b64(secret_mac("HMAC-SHA1", secret, nonce, cnonce))}
    return params if session_id is None else {"sessionId": session_id, **params}


def test_opening_a_session_answers_201_even_when_credentials_sent_along_fail(auth: RestAuthenticator) -> None:
    api = RestSessionsApi(auth)
    failing = {"id": "300:0.NA/TEST", "type": "HS_SECKEY", "cnonce": "Y24=", "alg": "SHA1", "signature": "AAAA"}
    answer, result = api.handle(sessions_request("POST", "/api/sessions", failing), "")
    assert answer.status == 201 and answer.headers == [("Location", "/api/sessions/this")]
    session = result.session
    assert session is not None and not session.authenticated
    assert answer.body == {"sessionId": session.session_id, "nonce": b64(session.nonce), "error": IDENTITY_NOT_VERIFIED}


def test_an_authenticated_session_stays_so_when_a_later_attempt_fails(auth: RestAuthenticator) -> None:
    api = RestSessionsApi(auth)
    session_id, nonce = new_session_id(auth)
    good, _ = api.handle(sessions_request("PUT", "/api/sessions/this", seckey_params(session_id, nonce)), "/this")
    assert good.status == 200 and good.body["authenticated"] is True  # type: ignore[index]
    bad, _ = api.handle(sessions_request("PUT", "/api/sessions/this", seckey_params(session_id, nonce, b"x")),
                        "/this")
    assert bad.status == 200
    assert bad.body == {"sessionId": session_id, "nonce": b64(nonce), "authenticated": True, "id": "300:0.NA/TEST",
                        "error": IDENTITY_NOT_VERIFIED}


def test_header_parameters_win_over_body_parameters(auth: RestAuthenticator) -> None:
    api = RestSessionsApi(auth)
    session_id, nonce = new_session_id(auth)
    wrong_in_body = seckey_params(session_id, nonce, b"wrong")
    header = handle_header(session_id, "300:0.NA/TEST", "HS_SECKEY", "SHA1", b"h",
                           secret_mac("SHA1", SECRET, nonce, b"h"))
    answer, result = api.handle(sessions_request("POST", "/api/sessions/this", wrong_in_body, header), "/this")
    assert answer.status == 200 and result.identity == (ADMIN, 300)


# --- hostile headers ----------------------------------------------------------------------------------------

_PARAMETER_NAMES = st.sampled_from(["version", "sessionId", "id", "cnonce", "type", "alg", "signature", "salt",
                                    "iterations", "length", "SESSIONID", "x"])
_VALUES = st.one_of(st.text(max_size=40), st.sampled_from(["HS_SECKEY", "HS_PUBKEY", "SHA1", "PBKDF2-HMAC-SHA1",
                                                             "300%3A0.NA%2FTEST", "%ff%fe", "0", "2147483648"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=200),
    st.builds(lambda pairs: "Handle " + ", ".join(f'{k}="{v}"' for k, v in pairs),
              st.lists(st.tuples(_PARAMETER_NAMES, _VALUES), max_size=10)),
    st.builds(lambda raw: "Basic " + base64.b64encode(raw).decode(), st.binary(max_size=60)),
))
def test_any_authorization_header_gives_an_answer_never_an_exception(auth: RestAuthenticator,
                                                                      authorization: str) -> None:
    result = auth(tls_request(authorization))
    assert isinstance(result, Authentication)
    assert result.identity is None  # random bytes do not prove knowledge of a key
    assert auth.handle_challenge(result, tls_request(authorization)).startswith("Handle sessionId=")

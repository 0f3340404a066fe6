"""Native Handle messages tunnelled over HTTP (wire.md 13), against the HTTP listener on real loopback sockets."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import InProcessHttp, Reply, add_http_interface, http_server_dir, in_process_http, request
from servers import ServerProcess, free_port, setup_server_dir, start_server

from hdlserver.auth.secret_answers import make_secret_answer
from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.wire.bodies import (
    ChallengeAnswerRequest,
    ChallengeBody,
    ErrorBody,
    ListHandlesRequest,
    ListHandlesResponse,
    ResolutionRequest,
    ResolutionResponse,
    SiteInfoRequest,
    SiteInfoResponse,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope
from hdlserver.wire.message import Message
from hdlserver.wire.values import HandleValue

HDL = "application/x-hdl-message"
JAVA_HEADERS = {"Accept": HDL, "User-Agent": "CNRI-HCL 2.0", "Content-Type": HDL}
ITEMS = 120  # more than the 50 handles of one LIST_HANDLES part
SECRET = b"secret"
ADMIN = (b"0.NA/TEST", 300)


def post(address: tuple[str, int], payload: bytes, path: str = "/TEST%2Fhello",
         context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> Reply:
    return request(address, "POST", path, body=payload, headers=headers or JAVA_HEADERS, context=context)


def split_messages(body: bytes) -> list[bytes]:
    """The envelope + message units of a tunnel answer body."""
    parts = []
    while body:
        end = ENVELOPE_SIZE + decode_envelope(body).message_length
        parts.append(body[:end])
        body = body[end:]
    return parts


def unverified_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHttp]:
    directory = tmp_path_factory.mktemp("tunnel") / "srv"
    http_server_dir(directory, site_interface=(True, True))
    with in_process_http(directory) as srv:
        items = [(f"TEST/item-{i:03d}".encode(), [HandleValue(1, b"URL", f"http://example.org/{i}".encode())])
                 for i in range(ITEMS)]
        srv.call(lambda: srv.state.store.create_handles(items))
        yield srv


def test_resolution_through_the_tunnel(server: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    reply = post(server.address, raw)
    assert reply.status == 200
    assert reply.header("Content-Type") == HDL
    assert int(reply.header("Content-Length") or -1) == len(reply.body)
    answer = decode_answer(reply.body)
    assert answer.header.response_code == ResponseCode.SUCCESS
    assert isinstance(answer.body, ResolutionResponse)
    assert [v.data for v in answer.body.values if v.type == b"URL"] == [b"https://www.handle.net/"]
    assert reply.body[8:12] == raw[8:12]  # the request id is echoed


@pytest.mark.parametrize("lead", [b"\n", b"\r"])
def test_one_leading_line_break_is_skipped(server: InProcessHttp, lead: bytes) -> None:
    raw = build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(b"/"), version=(2, 3))
    answer = decode_answer(post(server.address, lead + raw, path="/%2F").body)
    assert isinstance(answer.body, SiteInfoResponse)
    assert answer.body.site_data == server.state.site_bytes


def test_full_codec_path_signs_certified_answers(server: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello", types=(b"URL",)),
                        flags=OpFlag.REC | OpFlag.CA | OpFlag.PO | OpFlag.CT)
    answer = decode_answer(post(server.address, raw).body)
    assert isinstance(answer.body, ResolutionResponse)
    assert [v.type for v in answer.body.values] == [b"URL"]
    assert answer.credential is not None and answer.credential.type == b"HS_SIGNED"


def test_handle_not_found(server: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/no-such-handle"))
    reply = post(server.address, raw)
    assert reply.status == 200
    assert decode_answer(reply.body).header.response_code == ResponseCode.HANDLE_NOT_FOUND


def answer_challenge(address: tuple[str, int], challenge_raw: bytes, challenge: Message) -> bytes:
    assert isinstance(challenge.body, ChallengeBody) and challenge.request_digest is not None
    env = decode_envelope(challenge_raw)
    signed = make_secret_answer(SECRET, challenge.body.nonce, challenge.request_digest[1], env.version,
                                env.suggested)
    body = ChallengeAnswerRequest(b"HS_SECKEY", ADMIN[0], ADMIN[1], signed)
    answer = bytearray(build_request(OpCode.CHALLENGE_RESPONSE, body, version=env.version))
    answer[4:8] = challenge_raw[4:8]  # the challenge id travels as the SessionId
    return post(address, bytes(answer)).body


def test_challenge_answered_in_a_second_post_gets_every_list_part_in_one_body(server: InProcessHttp) -> None:
    first = post(server.address, build_request(OpCode.LIST_HANDLES, ListHandlesRequest(b"TEST"))).body
    challenge = decode_answer(first)
    assert challenge.header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    parts = [decode_answer(p) for p in split_messages(answer_challenge(server.address, first, challenge))]
    assert len(parts) >= 3
    assert all(p.header.flags & OpFlag.CN for p in parts[:-1])
    assert not parts[-1].header.flags & OpFlag.CN
    names = [h for p in parts if isinstance(p.body, ListHandlesResponse) for h in p.body.handles]
    assert len(names) == ITEMS + 1  # the items and TEST/hello
    assert {f"TEST/ITEM-{i:03d}".encode() for i in range(ITEMS)} <= set(names)  # storage keys: upper case


def test_short_body_is_an_early_error_in_a_200(server: InProcessHttp) -> None:
    reply = post(server.address, b"\x02\x0b\x02\x0b\x00\x00")
    assert reply.status == 200 and reply.header("Content-Type") == HDL
    answer = decode_answer(reply.body)
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR
    assert isinstance(answer.body, ErrorBody) and answer.body.message == b"Invalid message length"
    assert decode_envelope(reply.body).request_id == -1


def test_truncated_message_names_the_missing_bytes(server: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    reply = post(server.address, raw[:-10])
    answer = decode_answer(reply.body)
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR
    need = len(raw) - ENVELOPE_SIZE
    assert isinstance(answer.body, ErrorBody)
    assert answer.body.message == f"Expecting {need} bytes, only received {need - 10}".encode()
    assert decode_envelope(reply.body).request_id == decode_envelope(raw).request_id


def test_bad_envelope_length(server: InProcessHttp) -> None:
    bogus = b"\x02\x0b\x02\x0b" + b"\x00" * 12 + b"\x7f\xff\xff\xff"
    answer = decode_answer(post(server.address, bogus).body)
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR


def test_tunnel_works_over_tls_on_the_same_port(server: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    reply = post(server.address, raw, context=unverified_tls())
    assert isinstance(decode_answer(reply.body).body, ResolutionResponse)


def test_only_a_post_with_both_headers_is_native(server: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    reply = post(server.address, raw, path="/TEST/hello", headers={"Content-Type": HDL})
    assert reply.status == 302  # a proxy request for TEST/hello
    assert reply.header("Location") == "https://www.handle.net/"


# --- interface roles and enable_proxy = no -------------------------------------------------------------


@pytest.fixture(scope="module")
def query_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessHttp]:
    """HS_SITE: HTTP on the port is query-only, HTTPS on the same port admin; proxy pages disabled."""
    directory = tmp_path_factory.mktemp("tunnel-roles") / "srv"
    _port, http_port = http_server_dir(directory, site_interface=(True, False),
                                       http_config={"enable_proxy": "no"})
    site_path = directory / "siteinfo.json"
    site = json.loads(site_path.read_text())
    site["servers"][0]["interfaces"].append({"query": False, "admin": True, "protocol": "HTTPS", "port": http_port})
    site_path.write_text(json.dumps(site))
    with in_process_http(directory) as srv:
        yield srv


def test_admin_request_on_a_query_only_interface_is_refused(query_only: InProcessHttp) -> None:
    answer = decode_answer(post(query_only.address, build_request(OpCode.LIST_HANDLES, ListHandlesRequest(b"TEST")),
                                headers={"Content-Type": HDL}).body)
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR
    assert isinstance(answer.body, ErrorBody)
    assert answer.body.message == b"Received admin request on non-admin interface"


def test_https_interface_on_the_same_port_allows_admin(query_only: InProcessHttp) -> None:
    raw = build_request(OpCode.LIST_HANDLES, ListHandlesRequest(b"TEST"))
    answer = decode_answer(post(query_only.address, raw, context=unverified_tls()).body)
    assert answer.header.response_code == ResponseCode.AUTHENTICATION_NEEDED


def test_without_proxy_pages_a_plain_post_is_native_and_get_redirects(query_only: InProcessHttp) -> None:
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    reply = post(query_only.address, raw, headers={"Content-Type": "application/octet-stream"})
    assert isinstance(decode_answer(reply.body).body, ResolutionResponse)
    redirect = request(query_only.address, "GET", "/TEST/hello")
    assert redirect.status == 302
    assert redirect.header("Location") == "/api/handles/TEST/hello"


# --- the real server process -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    directory: Path = tmp_path_factory.mktemp("tunnel-process") / "srv"
    port = setup_server_dir(directory)
    http_port = free_port()
    add_http_interface(directory, http_port, site_interface=(True, True))
    proc = start_server(directory, port)
    yield proc, http_port
    proc.stop()


def test_tunnel_on_the_server_process(process: tuple[ServerProcess, int]) -> None:
    _proc, http_port = process
    raw = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello"))
    answer = decode_answer(post(("127.0.0.1", http_port), raw).body)
    assert isinstance(answer.body, ResolutionResponse)

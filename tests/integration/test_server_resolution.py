"""Resolution and site info against a real server process over real UDP and TCP sockets."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

import pytest
from servers import ServerProcess, run_cli, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message, tcp_exchange, udp_exchange
from hdlserver.config.siteinfo import load_site_info
from hdlserver.wire.bodies import ResolutionRequest, ResolutionResponse, SiteInfoRequest, SiteInfoResponse
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.credential import signed_prefix
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope
from hdlserver.wire.site import decode_site

MANY_VALUES = 40


@pytest.fixture(scope="module")
def loaded_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """A server with extra handles: many values (multi-datagram answers), filters, non-public values."""
    directory = tmp_path_factory.mktemp("loaded") / "srv"
    port = setup_server_dir(directory)
    records = [
        {"handle": "TEST/many", "values": [
            {"index": i, "type": "URL" if i % 2 else "EMAIL",
             "data": {"format": "string", "value": f"http://example.org/a-long-enough-path/{i}"}}
            for i in range(1, MANY_VALUES + 1)]},
        {"handle": "TEST/mixed", "values": [
            {"index": 1, "type": "URL", "data": "http://example.org/public"},
            {"index": 2, "type": "URL.us", "data": "http://example.org/us"},
            {"index": 3, "type": "SECRET", "data": "hidden", "permissions": "1100"}]},
        {"handle": "TEST/empty", "values": []},
    ]
    data_file = directory.parent / "records.json"
    data_file.write_text(json.dumps(records), encoding="utf-8")
    run_cli("hdlserver.cli.loadjson", directory, data_file)
    server = start_server(directory, port)
    yield server
    server.stop()


def resolver(server: ServerProcess, transport: str) -> Resolver:
    return Resolver([server.address], udp=transport == "udp", tcp=transport == "tcp")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_resolves_sample_handle(running_server: ServerProcess, transport: str) -> None:
    result = resolver(running_server, transport).resolve("TEST/hello")
    assert result.transport == transport.upper()
    urls = [v.data for v in result.values if v.type == b"URL"]
    assert urls == [b"https://www.handle.net/"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_missing_handle_is_rc_100(running_server: ServerProcess, transport: str) -> None:
    with pytest.raises(HandleResponseError) as err:
        resolver(running_server, transport).resolve("TEST/does-not-exist")
    assert err.value.response_code == ResponseCode.HANDLE_NOT_FOUND


def test_case_insensitive_lookup_echoes_handle_as_sent(running_server: ServerProcess) -> None:
    result = resolver(running_server, "udp").resolve("test/HELLO")
    assert result.handle == b"test/HELLO"
    assert any(v.type == b"URL" for v in result.values)


def test_unhomed_prefix_is_rc_301(running_server: ServerProcess) -> None:
    with pytest.raises(HandleResponseError) as err:
        resolver(running_server, "udp").resolve("OTHER/x")
    assert err.value.response_code == ResponseCode.SERVER_NOT_RESP


def test_prefix_handle_hides_secret_key(running_server: ServerProcess) -> None:
    result = resolver(running_server, "tcp").resolve("0.NA/TEST")
    types = {v.type for v in result.values}
    assert b"HS_ADMIN" in types and b"HS_PUBKEY" in types
    assert b"HS_SECKEY" not in types  # admin-read only (1100): never in an anonymous answer


def test_slashless_handle_means_zero_na(running_server: ServerProcess) -> None:
    result = resolver(running_server, "udp").resolve("test")
    assert result.handle == b"test"
    assert any(v.type == b"HS_ADMIN" for v in result.values)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_many_values_span_several_datagrams(loaded_server: ServerProcess, transport: str) -> None:
    result = resolver(loaded_server, transport).resolve("TEST/many")
    assert [v.index for v in result.values] == list(range(1, MANY_VALUES + 1))


def test_type_filter_with_subtype_rule(loaded_server: ServerProcess) -> None:
    r = resolver(loaded_server, "udp")
    assert [v.index for v in r.resolve("TEST/mixed", types=["URL"]).values] == [1]
    assert [v.index for v in r.resolve("TEST/mixed", types=["url."]).values] == [1, 2]
    assert [v.index for v in r.resolve("TEST/mixed", indexes=[2]).values] == [2]


def test_no_matching_value_is_rc_200(loaded_server: ServerProcess) -> None:
    r = resolver(loaded_server, "tcp")
    for kwargs in ({"types": ["NOPE"]}, {"indexes": [3]}):
        with pytest.raises(HandleResponseError) as err:
            r.resolve("TEST/mixed", **kwargs)
        assert err.value.response_code == ResponseCode.VALUES_NOT_FOUND
    with pytest.raises(HandleResponseError) as err:
        r.resolve("TEST/empty")
    assert err.value.response_code == ResponseCode.VALUES_NOT_FOUND


def test_restricted_values_without_public_only_are_challenged(loaded_server: ServerProcess) -> None:
    r = resolver(loaded_server, "udp")
    assert [v.index for v in r.resolve("TEST/mixed").values] == [1, 2]  # PO: public values only
    with pytest.raises(HandleResponseError) as err:
        r.resolve("TEST/mixed", public_only=False)  # a 1100 value: Java challenges (auth.md 2)
    assert err.value.response_code == ResponseCode.AUTHENTICATION_NEEDED


def test_multi_datagram_request_is_reassembled(loaded_server: ServerProcess) -> None:
    types = (*tuple(f"TYPE-{i:04d}".encode() for i in range(60)), b"URL")
    request = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/mixed", (), types))
    assert len(request) > 600
    answer = decode_answer(udp_exchange(loaded_server.address, request))
    assert answer.header.response_code == ResponseCode.SUCCESS
    assert [v.index for v in answer.body.values] == [1]


def test_site_info_matches_siteinfo_json(running_server: ServerProcess) -> None:
    site = load_site_info(running_server.directory)
    assert Resolver([running_server.address], udp=True, tcp=False).get_site_info() == site
    assert Resolver([running_server.address], udp=False, tcp=True).get_site_info() == site


def test_response_header_follows_java(running_server: ServerProcess) -> None:
    request = build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello", (), ()),
                            flags=OpFlag.REC | OpFlag.CA | OpFlag.PO | OpFlag.RD)
    answer = udp_exchange(running_server.address, request)
    env = decode_envelope(answer)
    assert (env.major, env.minor, env.suggested_major, env.suggested_minor) == (2, 11, 2, 11)
    assert env.request_id == decode_envelope(request).request_id
    msg = decode_answer(answer)
    flags = msg.header.flags
    assert flags & OpFlag.AT and flags & OpFlag.REC and flags & OpFlag.RD and flags & OpFlag.PO
    assert msg.header.expiration > time.time() + 3600
    assert msg.header.site_serial == 1
    from hdlserver.wire.digest import request_digest

    assert msg.request_digest == request_digest(request[ENVELOPE_SIZE:-4], (2, 11))


def test_version_negotiation_answers_with_suggested_version(running_server: ServerProcess) -> None:
    request = bytearray(build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(b"/"), version=(2, 3)))
    request[2] = 0x02
    request[3] = 0x05  # suggest 2.5
    env = decode_envelope(udp_exchange(running_server.address, bytes(request)))
    assert (env.major, env.minor) == (2, 5)


@pytest.mark.parametrize("opcode,body", [(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello", (), ())),
                                         (OpCode.GET_SITE_INFO, SiteInfoRequest(b"/"))])
def test_certified_answers_verify_with_the_server_key(running_server: ServerProcess, opcode: int,
                                                      body: object) -> None:
    request = build_request(opcode, body, flags=OpFlag.REC | OpFlag.CA | OpFlag.PO | OpFlag.CT)
    answer = tcp_exchange(running_server.address, request)[0]
    env = decode_envelope(answer)
    msg = decode_answer(answer)
    assert msg.header.flags & OpFlag.CT
    assert msg.credential is not None and msg.credential.type == b"HS_SIGNED"
    public = keys.public_key_from_bytes((running_server.directory / "pubkey.bin").read_bytes())
    prefix = signed_prefix((env.major, env.minor), (env.suggested_major, env.suggested_minor), env.session_id,
                           env.request_id, msg.credential.signer_index)
    assert keys.verify(public, msg.credential.signature, prefix + msg.header_body,
                       msg.credential.digest_alg.decode())
    if opcode == OpCode.GET_SITE_INFO:
        assert isinstance(msg.body, SiteInfoResponse)
        assert decode_site(msg.body.site_data) == load_site_info(running_server.directory)
    else:
        assert isinstance(msg.body, ResolutionResponse)


def test_tcp_connection_serves_pipelined_requests(running_server: ServerProcess) -> None:
    requests = [build_request(OpCode.RESOLUTION, ResolutionRequest(f"TEST/{name}".encode(), (), ()))
                for name in ("hello", "missing-1", "hello", "missing-2")]
    with socket.create_connection(running_server.address, timeout=10) as sock:
        sock.sendall(b"".join(requests))
        answers = [read_tcp_message(sock) for _ in requests]
    codes = [struct.unpack_from(">i", a, ENVELOPE_SIZE + 4)[0] for a in answers]
    assert codes == [1, 100, 1, 100]
    assert [decode_envelope(a).request_id for a in answers] == [decode_envelope(r).request_id for r in requests]


@pytest.mark.parametrize("transport", ["--udp", "--tcp"])
def test_qresolver_cli_prints_values(running_server: ServerProcess, transport: str) -> None:
    out = run_cli("hdlserver.cli.qresolver", "TEST/hello", "--server", f"127.0.0.1:{running_server.port}",
                  transport).stdout
    assert "https://www.handle.net/" in out
    assert "type=URL" in out and "type=HS_ADMIN" in out


def test_qresolver_cli_reports_missing_handle(running_server: ServerProcess) -> None:
    proc = run_cli("hdlserver.cli.qresolver", "TEST/nope", "--site", running_server.directory, check=False)
    assert proc.returncode == 1
    assert "Error(100)" in proc.stderr


def test_qresolver_cli_reports_unreachable_server() -> None:
    from servers import free_port

    proc = run_cli("hdlserver.cli.qresolver", "TEST/x", "--server", f"127.0.0.1:{free_port()}", "--tcp",
                   check=False)
    assert proc.returncode == 2
    assert "unreachable" in proc.stderr


def test_access_log_has_handle_net_lines(running_server: ServerProcess) -> None:
    resolver(running_server, "udp").resolve("TEST/hello")
    log_file = Path(running_server.directory) / "logs" / "access.log"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "TEST/hello" not in log_file.read_text():
        time.sleep(0.05)
    line = next(ln for ln in log_file.read_text().splitlines() if ln.endswith(" TEST/hello"))
    assert line.startswith("127.0.0.1 UDP:HDL(2.11) \"")
    assert " 1 1 " in line and "ms  TEST/hello" in line

"""Hostile and broken input: the server answers what it can identify, drops the rest, keeps serving."""

from __future__ import annotations

import contextlib
import os
import socket
import struct

import pytest
from servers import ServerProcess

from hdlserver.client.resolver import Resolver, build_request, decode_answer
from hdlserver.client.transport import read_tcp_message, udp_exchange
from hdlserver.wire.bodies import DeleteHandleRequest, ResolutionRequest
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope


def hello_request() -> bytes:
    return build_request(OpCode.RESOLUTION, ResolutionRequest(b"TEST/hello", (), ()))


def assert_still_serving(server: ServerProcess) -> None:
    for udp in (True, False):
        result = Resolver([server.address], udp=udp, tcp=not udp).resolve("TEST/hello")
        assert any(v.type == b"URL" for v in result.values)


def udp_no_answer(server: ServerProcess, datagram: bytes, wait: float = 0.3) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(datagram, server.address)
        try:
            sock.recv(2048)
        except TimeoutError:
            return True
    return False


def tcp_send(server: ServerProcess, data: bytes) -> tuple[list[bytes], bool]:
    """Send raw bytes on a new connection; return the answers read and whether the server closed."""
    answers = []
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(data)
        try:
            while True:
                answers.append(read_tcp_message(sock))
        except ConnectionError:
            return answers, True
        except TimeoutError:
            return answers, False


@pytest.mark.parametrize("datagram", [
    b"",
    b"\x00",
    b"garbage that is not a handle message at all",
    os.urandom(19),
    os.urandom(512),
    hello_request()[:30],                     # truncated
    hello_request()[:20],                     # envelope only
    b"\x02\x0b\x02\x0b" + b"\x00" * 12 + b"\x7f\xff\xff\xff" + b"\x00" * 40,  # lying message length
])
def test_unparseable_udp_is_dropped(running_server: ServerProcess, datagram: bytes) -> None:
    assert udp_no_answer(running_server, datagram)
    assert_still_serving(running_server)


def test_oversized_udp_datagram_is_handled(running_server: ServerProcess) -> None:
    request = hello_request()
    big = request + b"\x00" * 3000  # trailing bytes beyond messageLength
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(big, running_server.address)
        with contextlib.suppress(TimeoutError):
            sock.recv(2048)
    assert_still_serving(running_server)


def test_lying_body_length_gets_protocol_error(running_server: ServerProcess) -> None:
    request = bytearray(hello_request())
    struct.pack_into(">i", request, ENVELOPE_SIZE + 20, 10_000)  # body length larger than the message
    answer = decode_answer(udp_exchange(running_server.address, bytes(request)))
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR
    assert_still_serving(running_server)


def test_lying_handle_length_gets_protocol_error(running_server: ServerProcess) -> None:
    request = bytearray(hello_request())
    struct.pack_into(">i", request, ENVELOPE_SIZE + 24, 0x7FFFFFF0)
    raw = udp_exchange(running_server.address, bytes(request))
    assert decode_envelope(raw).request_id == decode_envelope(bytes(request)).request_id
    assert decode_answer(raw).header.response_code == ResponseCode.PROTOCOL_ERROR


def test_unknown_opcode_is_not_supported_with_request_id(running_server: ServerProcess) -> None:
    for opcode in (106, 999, 5000):
        request = bytearray(hello_request())
        struct.pack_into(">i", request, ENVELOPE_SIZE, opcode)
        raw = udp_exchange(running_server.address, bytes(request))
        assert decode_envelope(raw).request_id == decode_envelope(bytes(request)).request_id
        answer = decode_answer(raw)
        assert answer.header.opcode == opcode
        assert answer.header.response_code == ResponseCode.OPERATION_NOT_SUPPORTED


def test_admin_request_on_query_only_udp_interface(running_server: ServerProcess) -> None:
    request = build_request(OpCode.DELETE_HANDLE, DeleteHandleRequest(b"TEST/hello"))
    answer = decode_answer(udp_exchange(running_server.address, request))
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR
    assert b"non-admin interface" in answer.body.message
    # The TCP interface is an admin interface: the same request is challenged there (auth.md 3).
    answers, _closed = tcp_send(running_server, request)
    assert decode_answer(answers[0]).header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert_still_serving(running_server)


def test_opcode_zero_is_protocol_error(running_server: ServerProcess) -> None:
    request = bytearray(hello_request())
    struct.pack_into(">i", request, ENVELOPE_SIZE, 0)
    answer = decode_answer(udp_exchange(running_server.address, bytes(request)))
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR


def test_non_utf8_and_malformed_handles_are_answered(running_server: ServerProcess) -> None:
    for handle in (b"TEST/\xff\xfe\x80", b"\xff\xff", b"", b"/", b"TEST/" + b"a" * 3000):
        request = build_request(OpCode.RESOLUTION, ResolutionRequest(handle, (), ()))
        answers, _closed = tcp_send(running_server, request)
        assert answers, handle
        code = decode_answer(answers[0]).header.response_code
        assert code in (ResponseCode.HANDLE_NOT_FOUND, ResponseCode.SERVER_NOT_RESP), (handle, code)
    assert_still_serving(running_server)


def test_encrypted_request_without_session(running_server: ServerProcess) -> None:
    for session_id, expected in ((0, ResponseCode.SESSION_FAILED), (77, ResponseCode.SESSION_TIMEOUT)):
        request = bytearray(hello_request())
        request[2] |= 0x40
        struct.pack_into(">i", request, 4, session_id)
        answer = decode_answer(udp_exchange(running_server.address, bytes(request)))
        assert answer.header.response_code == expected


def test_unknown_session_id_is_rc_500(running_server: ServerProcess) -> None:
    request = bytearray(hello_request())
    struct.pack_into(">i", request, 4, 12345)
    answer = decode_answer(udp_exchange(running_server.address, bytes(request)))
    assert answer.header.response_code == ResponseCode.SESSION_TIMEOUT


def test_tcp_garbage_gets_rc4_and_close(running_server: ServerProcess) -> None:
    answers, closed = tcp_send(running_server, b"\x02\x0b\x02\x0b" + b"\x00" * 12 + b"\x7f\xff\xff\xff")
    assert closed
    assert len(answers) == 1
    assert decode_answer(answers[0]).header.response_code == ResponseCode.PROTOCOL_ERROR
    assert_still_serving(running_server)


def test_tcp_truncated_frame_then_close_keeps_server_up(running_server: ServerProcess) -> None:
    with socket.create_connection(running_server.address, timeout=5) as sock:
        sock.sendall(hello_request()[:35])
    assert_still_serving(running_server)


def test_tcp_garbage_after_valid_request(running_server: ServerProcess) -> None:
    answers, closed = tcp_send(running_server, hello_request() + b"\xff" * 40)
    assert closed
    assert decode_answer(answers[0]).header.response_code == ResponseCode.SUCCESS
    assert decode_answer(answers[1]).header.response_code == ResponseCode.PROTOCOL_ERROR


def test_response_sent_as_request_is_refused(running_server: ServerProcess) -> None:
    request = bytearray(hello_request())
    struct.pack_into(">i", request, ENVELOPE_SIZE + 4, 1)
    answer = decode_answer(udp_exchange(running_server.address, bytes(request)))
    assert answer.header.response_code == ResponseCode.PROTOCOL_ERROR


def test_stored_data_unchanged_after_abuse(running_server: ServerProcess) -> None:
    before = Resolver([running_server.address]).resolve("TEST/hello").values
    for _ in range(200):
        udp_no_answer(running_server, os.urandom(200), wait=0.001)
    assert Resolver([running_server.address]).resolve("TEST/hello").values == before

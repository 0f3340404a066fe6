"""Envelope codec, version rules and UDP splitting/reassembly (wire.md 3, 6, 12.2, vectors of 14)."""

from __future__ import annotations

import pytest

from hdlserver.errors import DecodeError
from hdlserver.wire.envelope import (
    ENVELOPE_SIZE,
    MAX_MESSAGE_LENGTH,
    SERVER_VERSION,
    UDP_MAX_DATAGRAM,
    UDP_PAYLOAD,
    Envelope,
    UdpReassembler,
    decode_envelope,
    encode_envelope,
    response_version,
    split_for_udp,
    version_at_least,
)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def test_constants() -> None:
    assert (ENVELOPE_SIZE, MAX_MESSAGE_LENGTH, UDP_MAX_DATAGRAM, UDP_PAYLOAD) == (20, 262_144, 512, 492)
    assert SERVER_VERSION == (2, 11)


# --- wire.md 14 envelopes -------------------------------------------------------------------------


def test_resolution_request_envelope_vector() -> None:
    raw = h("020b020b 00000000 01020304 00000000 0000002e")
    env = decode_envelope(raw)
    assert env == Envelope(2, 11, 2, 11, session_id=0, request_id=0x01020304, sequence=0, message_length=0x2E)
    assert encode_envelope(env) == raw


def test_early_error_envelope_vector_has_request_id_minus_one() -> None:
    raw = h("0203020b 00000000 ffffffff 00000000 00000021")
    env = decode_envelope(raw)
    assert (env.major, env.minor, env.suggested_major, env.suggested_minor) == (2, 3, 2, 11)
    assert env.request_id == -1
    assert encode_envelope(env) == raw
    assert encode_envelope(Envelope(2, 3, 2, 11, request_id=0xFFFFFFFF, message_length=0x21)) == raw


def test_flag_bits_and_signed_ids() -> None:
    raw = h("020b e2 0b 80000001 fffffffe 00000003 00000100")
    env = decode_envelope(raw)
    assert env.compressed and env.encrypted and env.truncated
    assert env.session_id == -(2**31) + 1 and env.request_id == -2 and env.sequence == 3
    assert env.message_length == 256
    assert encode_envelope(env) == raw


def test_suggested_major_zero_means_own_version() -> None:
    env = decode_envelope(h("0205 00 07 00000000 00000001 00000000 00000000"))
    assert env.suggested == (2, 5) and env.version == (2, 5)
    # only the low two bits of byte 2 are the suggested major; 0x1C bits are ignored
    env = decode_envelope(h("0205 1e 07 00000000 00000001 00000000 00000000"))
    assert env.suggested == (2, 7) and not (env.encrypted or env.truncated or env.compressed)


def test_decode_at_offset_and_from_memoryview() -> None:
    raw = b"xyz" + h("020b020b 00000007 01020304 00000000 0000002e") + b"rest"
    assert decode_envelope(memoryview(raw), 3).session_id == 7


@pytest.mark.parametrize("raw", [b"", bytes(19), h("020b020b 00000000 00000001 00000000 00040001"),
                                 h("020b020b 00000000 00000001 00000000 ffffffff"),
                                 h("020b020b 00000000 00000001 00000000 80000000")])
def test_bad_envelopes_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_envelope(raw)


def test_largest_message_length_is_accepted() -> None:
    env = decode_envelope(h("020b020b 00000000 00000001 00000000 00040000"))
    assert env.message_length == MAX_MESSAGE_LENGTH


def test_encode_rejects_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError):
        encode_envelope(Envelope(2, 11, 4, 11))  # Java would OR 4 into the flag bits
    with pytest.raises(ValueError):
        encode_envelope(Envelope(256, 11, 2, 11))


# --- version rules (wire.md 6) ---------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((2, 11), (2, 11), True), ((2, 11), (2, 7), True), ((2, 6), (2, 7), False), ((3, 0), (2, 11), True),
    ((1, 9), (2, 0), False), ((5, 0), (2, 1), False), ((5, 3), (5, 2), True), ((5, 1), (5, 2), False),
    ((2, 0), (5, 0), True), ((1, 0), (5, 9), True),
])
def test_version_at_least_is_the_java_comparison(a: tuple[int, int], b: tuple[int, int], expected: bool
                                                 ) -> None:
    assert version_at_least(a, b) is expected


@pytest.mark.parametrize(("suggested", "expected"), [
    ((2, 11), (2, 11)), ((2, 12), (2, 11)), ((3, 1), (2, 11)), ((2, 10), (2, 10)), ((2, 3), (2, 3)),
    ((5, 0), (5, 0)),  # Java: 5.x is never >= 2.11, so the client's suggestion stands
])
def test_response_version(suggested: tuple[int, int], expected: tuple[int, int]) -> None:
    assert response_version(suggested) == expected


# --- UDP split ---------------------------------------------------------------------------------------


def test_split_single_datagram_has_tc_clear() -> None:
    env = Envelope(2, 11, 2, 11, request_id=5, truncated=True)
    [d] = split_for_udp(env, b"abc")
    assert d == encode_envelope(Envelope(2, 11, 2, 11, request_id=5, message_length=3)) + b"abc"


def test_split_multi_datagram_chunks() -> None:
    message = bytes(range(256)) * 4  # 1024 bytes: 492 + 492 + 40
    datagrams = split_for_udp(Envelope(2, 11, 2, 11, session_id=3, request_id=9), message)
    assert [len(d) for d in datagrams] == [512, 512, 60]
    for seq, d in enumerate(datagrams):
        env = decode_envelope(d)
        assert (env.sequence, env.message_length, env.truncated, env.session_id) == (seq, 1024, True, 3)
        assert d[ENVELOPE_SIZE:] == message[seq * UDP_PAYLOAD : (seq + 1) * UDP_PAYLOAD]


# --- UDP reassembly ----------------------------------------------------------------------------------

SRC = ("192.0.2.1", 5000)


def _datagrams(length: int, request_id: int = 42) -> tuple[bytes, list[bytes]]:
    message = bytes(i % 251 for i in range(length))
    return message, split_for_udp(Envelope(2, 11, 2, 11, request_id=request_id), message)


def test_single_datagram_returns_at_once() -> None:
    message, [d] = _datagrams(100)
    r = UdpReassembler()
    env, got = r.add(SRC, d, 0.0)
    assert got == message and env.message_length == 100 and len(r) == 0


def test_out_of_order_and_duplicates() -> None:
    message, ds = _datagrams(3 * UDP_PAYLOAD + 7)
    r = UdpReassembler()
    assert r.add(SRC, ds[2], 0.0) is None
    assert r.add(SRC, ds[2], 0.1) is None  # duplicate
    assert r.add(SRC, ds[0], 0.2) is None
    assert r.add(SRC, ds[3], 0.3) is None
    assert len(r) == 1 and r.buffered_bytes == 2 * UDP_PAYLOAD + 7
    env, got = r.add(SRC, ds[1], 0.4)
    assert got == message
    assert env.sequence == 0 and env.truncated and env.request_id == 42
    assert len(r) == 0 and r.buffered_bytes == 0


def test_returned_envelope_is_packet_zero_even_if_it_came_last() -> None:
    message, ds = _datagrams(UDP_PAYLOAD + 1)
    r = UdpReassembler()
    assert r.add(SRC, ds[1], 0.0) is None
    env, got = r.add(SRC, ds[0], 0.0)
    assert env == decode_envelope(ds[0]) and got == message


def test_key_is_source_host_and_request_id() -> None:
    m1, ds1 = _datagrams(UDP_PAYLOAD + 10, request_id=1)
    m2, ds2 = _datagrams(UDP_PAYLOAD + 20, request_id=1)
    r = UdpReassembler()
    assert r.add(("192.0.2.1", 1), ds1[0], 0.0) is None
    assert r.add(("192.0.2.2", 1), ds2[0], 0.0) is None  # other host, same request id: separate
    assert r.add(("192.0.2.1", 2), ds1[1], 0.0)[1] == m1  # same host, other port: same message
    assert r.add(("192.0.2.2", 1), ds2[1], 0.0)[1] == m2


def test_java_server_multi_packet_response_without_tc_is_reassembled() -> None:
    message, ds = _datagrams(600)
    untruncated = [encode_envelope(Envelope(2, 11, 2, 11, request_id=42, sequence=i, message_length=600))
                   + d[ENVELOPE_SIZE:] for i, d in enumerate(ds)]
    r = UdpReassembler()
    assert r.add(SRC, untruncated[0], 0.0) is None
    assert r.add(SRC, untruncated[1], 0.0)[1] == message


@pytest.mark.parametrize("case", ["sequence", "negative sequence", "short chunk", "long last", "length"])
def test_inconsistent_packets_raise_decode_error(case: str) -> None:
    _, ds = _datagrams(2 * UDP_PAYLOAD + 10)
    r = UdpReassembler()
    r.add(SRC, ds[0], 0.0)
    env = decode_envelope(ds[1])
    if case == "sequence":
        bad = encode_envelope(Envelope(2, 11, 2, 11, truncated=True, request_id=42, sequence=3,
                                       message_length=env.message_length)) + ds[1][20:]
    elif case == "negative sequence":
        bad = encode_envelope(Envelope(2, 11, 2, 11, truncated=True, request_id=42, sequence=-1,
                                       message_length=env.message_length)) + ds[1][20:]
    elif case == "short chunk":
        bad = ds[1][:-1]
    elif case == "long last":
        bad = ds[2] + b"x"
    else:
        bad = encode_envelope(Envelope(2, 11, 2, 11, truncated=True, request_id=42, sequence=2,
                                       message_length=2 * UDP_PAYLOAD + 11)) + ds[2][20:] + b"x"
    with pytest.raises(DecodeError):
        r.add(SRC, bad, 0.0)


@pytest.mark.parametrize("raw", [
    b"short",
    h("020b020b 00000000 00000001 00000000 00000005") + b"abc",  # fewer bytes than stated
    h("020b020b 00000000 00000001 00000000 00000002") + b"abc",  # more bytes than stated
    h("020b020b 00000000 00000001 00000001 00000003") + b"abc",  # packet 1 of a 1-packet message
])
def test_bad_single_datagrams_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        UdpReassembler().add(SRC, raw, 0.0)


def test_expire_drops_only_old_incomplete_messages() -> None:
    _, ds1 = _datagrams(UDP_PAYLOAD + 1, request_id=1)
    m2, ds2 = _datagrams(UDP_PAYLOAD + 1, request_id=2)
    r = UdpReassembler(timeout=5.0)
    r.add(SRC, ds1[0], 0.0)
    r.add(SRC, ds2[0], 3.0)
    assert r.expire(5.0) == 0
    assert r.expire(5.5) == 1 and len(r) == 1
    assert r.add(SRC, ds1[1], 6.0) is None  # its first half is gone
    assert r.add(SRC, ds2[1], 6.0)[1] == m2


def test_stale_entry_is_restarted_by_a_late_packet() -> None:
    message, ds = _datagrams(UDP_PAYLOAD + 1)
    r = UdpReassembler(timeout=5.0)
    r.add(SRC, ds[0], 0.0)
    assert r.add(SRC, ds[1], 10.0) is None  # the old half is stale and not joined
    assert r.add(SRC, ds[0], 11.0)[1] == message


def test_max_pending_drops_the_oldest() -> None:
    r = UdpReassembler(max_pending=2)
    parts = {rid: _datagrams(UDP_PAYLOAD + 1, request_id=rid) for rid in (1, 2, 3)}
    for rid, (_, ds) in parts.items():
        r.add(SRC, ds[0], float(rid))
    assert len(r) == 2
    assert r.add(SRC, parts[1][1][1], 4.0) is None  # message 1 was dropped; this starts a new one
    assert len(r) == 2
    assert r.add(SRC, parts[3][1][1], 4.0)[1] == parts[3][0]


def test_max_bytes_drops_the_oldest_to_make_room() -> None:
    r = UdpReassembler(max_bytes=2 * UDP_PAYLOAD)
    _, ds1 = _datagrams(3 * UDP_PAYLOAD, request_id=1)
    _, ds2 = _datagrams(3 * UDP_PAYLOAD, request_id=2)
    r.add(SRC, ds1[0], 0.0)
    r.add(SRC, ds1[1], 0.0)
    assert r.buffered_bytes == 2 * UDP_PAYLOAD
    r.add(SRC, ds2[0], 1.0)  # evicts message 1
    assert len(r) == 1 and r.buffered_bytes == UDP_PAYLOAD
    assert r.add(SRC, ds2[1], 1.0) is None
    # a message larger than the whole budget can never complete: its packets are refused
    assert r.add(SRC, ds2[2], 1.0) is None
    assert len(r) == 0 and r.buffered_bytes == 0


def test_limits_must_be_usable() -> None:
    with pytest.raises(ValueError):
        UdpReassembler(max_pending=0)
    with pytest.raises(ValueError):
        UdpReassembler(max_bytes=100)

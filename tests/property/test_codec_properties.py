"""Property tests of the message codec: round trips for every op code and response kind, the decoder
invariant (only DecodeError, whatever the bytes), and UDP split/reassembly."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdlserver.errors import DecodeError
from hdlserver.wire import bodies as b
from hdlserver.wire.codes import DIGEST_LENGTHS, OpCode, OpFlag, ResponseCode
from hdlserver.wire.credential import Credential
from hdlserver.wire.envelope import (
    ENVELOPE_SIZE,
    UDP_PAYLOAD,
    Envelope,
    UdpReassembler,
    decode_envelope,
    encode_envelope,
    split_for_udp,
    version_at_least,
)
from hdlserver.wire.message import (
    ERROR_CODES,
    HEADER_SIZE,
    KNOWN_FLAGS,
    Header,
    Message,
    decode_message,
    encode_message,
)
from hdlserver.wire.values import HandleValue, ValueReference

VERSIONS = [(2, 0), (2, 1), (2, 3), (2, 4), (2, 5), (2, 6), (2, 7), (2, 8), (2, 9), (2, 10), (2, 11), (5, 0)]
UNKNOWN_OPCODES = [0, 3, 106, 303, 999, 1004, 0x7FFFFFFF, -1]
UNKNOWN_CODES = [8, 99, 203, 304, 407, 506, 1000]

int2 = st.integers(-(2**15), 2**15 - 1)
int4 = st.integers(-(2**31), 2**31 - 1)
int8 = st.integers(-(2**63), 2**63 - 1)
byte = st.integers(0, 255)
small = st.binary(max_size=24)
handles = st.binary(max_size=32)
versions = st.sampled_from(VERSIONS)

references = st.builds(ValueReference, handles, int4)
handle_values = st.builds(HandleValue, index=int4, type=small, data=st.binary(max_size=40), permissions=byte,
                          ttl_type=byte, ttl=int4, timestamp=int4,
                          references=st.lists(references, max_size=2).map(tuple))
value_lists = st.lists(handle_values, max_size=3).map(tuple)
handle_lists = st.lists(handles, max_size=4).map(tuple)
int_lists = st.lists(int4, max_size=4).map(tuple)


def digests(include_old: bool = True) -> st.SearchStrategy[tuple[int, bytes]]:
    algs = [1, 2, 3] + ([0] if include_old else [])
    def for_alg(alg: int) -> st.SearchStrategy[bytes]:
        if alg == 0:
            return st.binary(max_size=40)
        return st.binary(min_size=DIGEST_LENGTHS[alg], max_size=DIGEST_LENGTHS[alg])

    return st.sampled_from(algs).flatmap(lambda alg: st.tuples(st.just(alg), for_alg(alg)))


def session_setup_requests() -> st.SearchStrategy[b.SessionSetupRequest]:
    def for_mode(mode: int) -> st.SearchStrategy[b.SessionSetupRequest]:
        common = dict(mode=st.just(mode), timeout=int4, identity_handle=handles, identity_index=int4)
        if mode in (b.KEY_EXCHANGE_CIPHER_CLIENT, b.KEY_EXCHANGE_DH):
            return st.builds(b.SessionSetupRequest, public_key=small, **common)
        if mode == b.KEY_EXCHANGE_CIPHER_HDL:
            return st.builds(b.SessionSetupRequest, exchange_key_handle=handles, exchange_key_index=int4,
                             **common)
        return st.builds(b.SessionSetupRequest, **common)

    return st.sampled_from([1, 2, 3, 4, 0, 9, -1]).flatmap(for_mode)


def retrieve_requests(version: tuple[int, int]) -> st.SearchStrategy[b.RetrieveTxnLogRequest]:
    single = st.builds(b.RetrieveTxnLogRequest, last_txn_id=int8, last_query_date=int8,
                       receiver_hash_type=byte, num_servers=int4, server_num=int4)
    if not version_at_least(version, (2, 9)):
        return single
    return single | st.builds(b.RetrieveTxnLogRequest, receiver_hash_type=byte, num_servers=int4,
                              server_num=int4, replication_state=st.binary(max_size=60))


def request_bodies(opcode: int, version: tuple[int, int]) -> st.SearchStrategy:
    handle_only = {OpCode.GET_SITE_INFO: b.SiteInfoRequest, OpCode.DELETE_HANDLE: b.DeleteHandleRequest,
                   OpCode.LIST_HANDLES: b.ListHandlesRequest, OpCode.HOME_NA: b.HomeNARequest,
                   OpCode.UNHOME_NA: b.UnhomeNARequest, OpCode.LIST_HOMED_NAS: b.ListHomedNAsRequest,
                   OpCode.SESSION_TERMINATE: b.SessionTerminateRequest,
                   OpCode.GET_NEXT_TXN_ID: b.GetNextTxnIdRequest, OpCode.BACKUP_SERVER: b.BackupServerRequest}
    with_values = {OpCode.CREATE_HANDLE: b.CreateHandleRequest, OpCode.ADD_VALUE: b.AddValueRequest,
                   OpCode.MODIFY_VALUE: b.ModifyValueRequest}
    if opcode in handle_only:
        return st.builds(handle_only[opcode], handles)
    if opcode in with_values:
        return st.builds(with_values[opcode], handles, value_lists)
    others = {
        OpCode.RESOLUTION: st.builds(b.ResolutionRequest, handles, int_lists, handle_lists),
        OpCode.REMOVE_VALUE: st.builds(b.RemoveValueRequest, handles, int_lists),
        OpCode.CHALLENGE_RESPONSE: st.builds(b.ChallengeAnswerRequest, small, handles, int4, small),
        OpCode.VERIFY_CHALLENGE: st.builds(
            lambda h, i, n, d, s: b.VerifyChallengeRequest(h, i, n, d[0], d[1], s),
            handles, int4, small, digests(), small),
        OpCode.SESSION_SETUP: session_setup_requests(),
        OpCode.SESSION_EXCHANGEKEY: st.builds(b.SessionExchangeKeyRequest, st.none() | small),
        OpCode.RETRIEVE_TXN_LOG: retrieve_requests(version),
        OpCode.DUMP_HANDLES: st.builds(b.DumpHandlesRequest, byte, int4, int4)
        | st.builds(b.DumpHandlesRequest, byte, int4, int4, handles, int4),
    }
    return others.get(opcode, st.builds(b.OpaqueBody, small))


def success_bodies(opcode: int) -> st.SearchStrategy:
    generic = {OpCode.DELETE_HANDLE, OpCode.ADD_VALUE, OpCode.REMOVE_VALUE, OpCode.MODIFY_VALUE,
               OpCode.HOME_NA, OpCode.UNHOME_NA, OpCode.SESSION_TERMINATE, OpCode.SESSION_EXCHANGEKEY,
               OpCode.BACKUP_SERVER}
    if opcode in generic:
        return st.just(b.GenericSuccessResponse())
    table = {
        OpCode.RESOLUTION: st.builds(b.ResolutionResponse, handles, value_lists),
        OpCode.GET_SITE_INFO: st.builds(b.SiteInfoResponse, st.binary(max_size=60)),
        OpCode.CREATE_HANDLE: st.builds(b.CreateHandleResponse, st.none() | handles),
        OpCode.LIST_HANDLES: st.builds(b.ListHandlesResponse, handle_lists),
        OpCode.LIST_HOMED_NAS: st.builds(b.ListHomedNAsResponse, handle_lists),
        OpCode.VERIFY_CHALLENGE: st.builds(b.VerifyChallengeResponse, st.booleans()),
        OpCode.SESSION_SETUP: st.builds(b.SessionSetupResponse, int2, small),
        OpCode.GET_NEXT_TXN_ID: st.builds(b.NextTxnIdResponse, int8),
        OpCode.RETRIEVE_TXN_LOG: st.builds(b.RetrieveTxnLogResponse, st.booleans()),
        OpCode.DUMP_HANDLES: st.just(b.DumpHandlesResponse()),
    }
    return table.get(opcode, st.builds(b.OpaqueBody, small))


credentials = st.none() | st.builds(Credential, byte, byte, st.integers(0, 0xFFFF), handles, int4, small,
                                    small, st.binary(max_size=64))


@st.composite
def messages(draw: st.DrawFn) -> tuple[Message, tuple[int, int]]:
    """A message together with the version it is encoded at; decoding its encoding must give it back."""
    version = draw(versions)
    old = not version_at_least(version, (2, 1))
    legacy = not version_at_least(version, (2, 5))
    opcode = draw(st.sampled_from([int(op) for op in OpCode if op] + UNKNOWN_OPCODES))
    kind = draw(st.sampled_from(["request", "success", "error", "referral", "challenge", "unknown"]))
    flags = draw(st.integers(0, 2**32 - 1)) & KNOWN_FLAGS & ~OpFlag.RD
    digest = None
    if kind == "request":
        code = 0
        body = draw(request_bodies(opcode, version))
        if not old and draw(st.booleans()):
            flags |= OpFlag.RD
    else:
        if kind == "success":
            code, body = ResponseCode.SUCCESS, draw(success_bodies(opcode))
        elif kind == "error":
            codes = sorted(c for c in ERROR_CODES if not (legacy and c == ResponseCode.INVALID_VALUE))
            code, body = draw(st.sampled_from(codes)), b.ErrorBody(draw(small))
        elif kind == "referral":
            referral_codes = [302] if legacy else [302, 303]
            code = draw(st.sampled_from(referral_codes))
            body = b.ReferralBody(draw(handles), draw(st.none() | value_lists))
        elif kind == "challenge":
            code, body = ResponseCode.AUTHENTICATION_NEEDED, b.ChallengeBody(draw(small))
        else:
            code, body = draw(st.sampled_from(UNKNOWN_CODES)), b.OpaqueBody(draw(small))
        if old:
            if kind == "challenge":
                digest = (0, draw(st.binary(max_size=40)))
        elif draw(st.booleans()):
            flags |= OpFlag.RD
            digest = draw(digests())
    header = Header(opcode, code, flags, draw(int2), draw(byte), draw(st.integers(0, 2**32 - 1)))
    return Message(header, body, digest, draw(credentials)), version


def _strip(msg: Message) -> Message:
    return replace(msg, header_body=b"")


@settings(max_examples=600, deadline=None)
@given(messages())
def test_round_trip_encode_decode_encode(case: tuple[Message, tuple[int, int]]) -> None:
    msg, version = case
    wire = encode_message(msg, version)
    decoded = decode_message(wire, version)
    assert _strip(decoded) == msg
    assert encode_message(decoded, version) == wire
    assert decoded.header_body == wire[: HEADER_SIZE + int.from_bytes(wire[20:24], "big")]


def _decode_only_decode_error(data: bytes, version: tuple[int, int]) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data, version)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), versions)
def test_arbitrary_bytes_raise_only_decode_error(data: bytes, version: tuple[int, int]) -> None:
    _decode_only_decode_error(data, version)
    with contextlib.suppress(DecodeError):
        decode_envelope(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.data())
def test_mutated_messages_raise_only_decode_error(case: tuple[Message, tuple[int, int]], data: st.DataObject
                                                  ) -> None:
    msg, version = case
    wire = bytearray(encode_message(msg, version))
    mutation = data.draw(st.sampled_from(["flip", "truncate", "lie", "count"]))
    if mutation == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            pos = data.draw(st.integers(0, len(wire) - 1))
            wire[pos] ^= data.draw(st.integers(1, 255))
    elif mutation == "truncate":
        del wire[data.draw(st.integers(0, len(wire) - 1)):]
    elif mutation == "lie":  # the body length field claims something else
        wire[20:24] = data.draw(int4).to_bytes(4, "big", signed=True)
    else:  # overwrite any aligned 4 bytes with a huge or negative count/length
        pos = data.draw(st.integers(0, max(0, len(wire) - 4)))
        wire[pos : pos + 4] = data.draw(st.sampled_from([0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x00100001,
                                                         0x000FFFFF])).to_bytes(4, "big")
    start = time.perf_counter()
    _decode_only_decode_error(bytes(wire), version)
    assert time.perf_counter() - start < 0.5


# ---------------------------------------------------------------------------------------------------
# Envelope and UDP

envelopes = st.builds(Envelope, major=byte, minor=byte, suggested_major=st.integers(1, 3),
                      suggested_minor=byte, encrypted=st.booleans(), truncated=st.booleans(),
                      compressed=st.booleans(), session_id=int4, request_id=int4, sequence=int4,
                      message_length=st.integers(0, 262_144))


@given(envelopes)
def test_envelope_round_trip(env: Envelope) -> None:
    assert decode_envelope(encode_envelope(env)) == env


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3 * UDP_PAYLOAD + 40), int4, st.data())
def test_udp_split_and_reassemble_in_any_order_with_duplicates(message: bytes, request_id: int,
                                                                  data: st.DataObject) -> None:
    env = Envelope(2, 11, 2, 11, session_id=5, request_id=request_id, message_length=len(message))
    datagrams = split_for_udp(env, message)
    assert len(datagrams) == max(1, -(-len(message) // UDP_PAYLOAD))
    assert all(len(d) <= 512 for d in datagrams)
    feed = list(data.draw(st.permutations(range(len(datagrams)))))
    for dup in data.draw(st.lists(st.sampled_from(range(len(datagrams))), max_size=3)):
        feed.insert(data.draw(st.integers(0, len(feed))), dup)
    r = UdpReassembler()
    results = [r.add(("10.0.0.1", 4000), datagrams[i], 0.0) for i in feed]
    if len(datagrams) == 1:  # a single datagram is a whole message every time it arrives
        assert all(x is not None and x[1] == message for x in results)
        return
    complete_at = next(n for n in range(len(feed)) if set(feed[: n + 1]) == set(range(len(datagrams))))
    assert [n for n, x in enumerate(results) if x is not None] == [complete_at]
    got_env, got_message = results[complete_at]
    assert got_message == message
    assert (got_env.sequence, got_env.request_id, got_env.message_length) == (0, request_id, len(message))
    # a duplicate arriving after completion starts a new message that can only expire
    assert len(r) == (1 if complete_at < len(feed) - 1 else 0)
    r.expire(10.0)
    assert len(r) == 0 and r.buffered_bytes == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=8))
def test_reassembler_raises_only_decode_error(datagrams: list[bytes]) -> None:
    r = UdpReassembler(max_pending=4, max_bytes=2000)
    for i, d in enumerate(datagrams):
        with contextlib.suppress(DecodeError):
            r.add(("h", 1), d, float(i))
    assert r.buffered_bytes <= 2000 and len(r) <= 4


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=UDP_PAYLOAD + 1, max_size=3 * UDP_PAYLOAD), st.data())
def test_reassembler_mutated_packets_raise_only_decode_error(message: bytes, data: st.DataObject) -> None:
    env = Envelope(2, 11, 2, 11, request_id=9, message_length=len(message))
    datagrams = [bytearray(d) for d in split_for_udp(env, message)]
    victim = datagrams[data.draw(st.integers(0, len(datagrams) - 1))]
    pos = data.draw(st.integers(0, len(victim) - 1))
    victim[pos] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        del victim[data.draw(st.integers(0, len(victim) - 1)):]
    r = UdpReassembler(max_bytes=4 * UDP_PAYLOAD)
    for d in datagrams:
        with contextlib.suppress(DecodeError):
            r.add(("h", 1), bytes(d), 0.0)
    assert r.buffered_bytes <= 4 * UDP_PAYLOAD


@pytest.mark.parametrize("length", [0, 1, UDP_PAYLOAD, UDP_PAYLOAD + 1, 2 * UDP_PAYLOAD, 262_144])
def test_split_sizes_and_sequence_numbers(length: int) -> None:
    env = Envelope(2, 11, 2, 11, request_id=77)
    datagrams = split_for_udp(env, bytes(length))
    envs = [decode_envelope(d) for d in datagrams]
    assert [e.sequence for e in envs] == list(range(len(datagrams)))
    assert {e.message_length for e in envs} == {length}
    assert {e.truncated for e in envs} == {len(datagrams) > 1}
    assert sum(len(d) - ENVELOPE_SIZE for d in datagrams) == length

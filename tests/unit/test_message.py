"""Message codec: every hex vector of wire.md 14 and replication.md 4, version-dependent layouts,
credential layout and signed prefix, request digests, and the malformed inputs the decoder rejects."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from hdlserver.errors import DecodeError
from hdlserver.wire import bodies as b
from hdlserver.wire.codes import OpFlag, ResponseCode
from hdlserver.wire.credential import (
    HS_MAC,
    HS_SIGNED,
    Credential,
    decode_credential,
    encode_credential,
    signed_prefix,
)
from hdlserver.wire.digest import compute_digest, request_digest
from hdlserver.wire.envelope import Envelope, decode_envelope, encode_envelope
from hdlserver.wire.message import (
    HEADER_SIZE,
    Header,
    Message,
    attach_credential,
    decode_message,
    encode_header_body,
    encode_message,
)
from hdlserver.wire.values import HandleValue

V = (2, 11)
EXP = 0x5F5E1000  # the expiration used by every spec vector
NO_CRED = bytes(4)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def roundtrip(wire: bytes, version: tuple[int, int] = V) -> Message:
    """Decode ``wire``, check the re-encoding is identical, return the decoded message."""
    msg = decode_message(wire, version)
    assert encode_message(msg, version) == wire
    return msg


# --- wire.md 14 ------------------------------------------------------------------------------------

RES_REQ_ENV = h("020b020b 00000000 01020304 00000000 0000002e")
RES_REQ = h("""00000001 00000000 19000000 ffff0000 5f5e1000 00000012
               00000006 54455354 2f31 00000000 00000000 00000000""")
RES_REQ_FILTERED = h("""00000001 00000000 59800000 ffff0000 5f5e1000 0000002a 00000006 54455354 2f31
    00000002 00000001 00000064 00000002 00000003 55524c 00000005 454d41494c 00000000""")
URL_VALUE = h("""00000001 5e0be100 00 00015180 0e 00000003 55524c
                 00000013 687474703a2f2f6578616d706c652e6f72672f 00000000""")
RES_RESP_ENV = h("020b020b 00000000 01020304 00000000 0000007b")
RES_RESP = h("""00000001 00000001 d9800000 00010000 5f5e1000 0000005f
    03 ea457488e9e27273bc618267a64af10a2ed0763105607d6d26c42a00d1cc6b04
    00000006 54455354 2f31 00000001""") + URL_VALUE + NO_CRED


def test_resolution_request_vector() -> None:
    msg = roundtrip(RES_REQ)
    assert msg.header == Header(opcode=1, response_code=0, flags=0x19000000, site_serial=-1, recursion=0,
                                expiration=EXP)
    assert msg.body == b.ResolutionRequest(b"TEST/1", (), ())
    assert msg.request_digest is None and msg.credential is None
    assert msg.header_body == RES_REQ[:-4]
    env = decode_envelope(RES_REQ_ENV)
    built = Message(Header(1, 0, OpFlag.REC | OpFlag.CA | OpFlag.PO, -1, 0, EXP),
                    b.ResolutionRequest(b"TEST/1"))
    wire = encode_message(built, V)
    assert encode_envelope(Envelope(2, 11, 2, 11, request_id=0x01020304, message_length=len(wire))) + wire \
        == RES_REQ_ENV + RES_REQ
    assert env.message_length == len(wire)


def test_filtered_resolution_request_vector() -> None:
    msg = roundtrip(RES_REQ_FILTERED)
    assert msg.header.flags == OpFlag.CT | OpFlag.REC | OpFlag.CA | OpFlag.PO | OpFlag.RD
    assert msg.body == b.ResolutionRequest(b"TEST/1", (1, 100), (b"URL", b"EMAIL"))
    assert msg.request_digest is None  # RD in a request only asks for a digest


def test_resolution_response_vector_and_its_digest() -> None:
    msg = roundtrip(RES_RESP)
    assert decode_envelope(RES_RESP_ENV).message_length == len(RES_RESP)
    assert msg.header == Header(1, 1, 0xD9800000, 1, 0, EXP)
    assert msg.request_digest == request_digest(decode_message(RES_REQ_FILTERED, V).header_body, V)
    assert msg.body == b.ResolutionResponse(b"TEST/1", (HandleValue(1, b"URL", b"http://example.org/",
                                                                    timestamp=0x5E0BE100),))


def test_error_response_vector() -> None:
    wire = h("00000001 00000064 19000000 00010000 5f5e1000 00000004 00000000 00000000")
    msg = roundtrip(wire)
    assert msg.header.response_code == ResponseCode.HANDLE_NOT_FOUND
    assert msg.body == b.ErrorBody(b"")


def test_early_error_vector() -> None:
    env = h("0203020b 00000000 ffffffff 00000000 00000021")
    wire = h("00000000 00000002 19000000 ffff0000 5f5e1000 00000005 00000001 78 00000000")
    msg = roundtrip(wire, (2, 3))
    assert msg.header == Header(0, 2, 0x19000000, -1, 0, EXP) and msg.body == b.ErrorBody(b"x")
    assert decode_envelope(env).message_length == len(wire)


SETUP_REQ = h("""00000190 00000000 59800000 ffff0000 5f5e1000 00000020
    0004 00015180 0000000a 544553542f41444d494e 0000012c 00000002 aabb 0000 00000000""")


def test_session_setup_request_vector_with_padding() -> None:
    msg = roundtrip(SETUP_REQ)
    assert msg.body == b.SessionSetupRequest(mode=4, timeout=86_400, identity_handle=b"TEST/ADMIN",
                                             identity_index=300, public_key=b"\xaa\xbb")


def test_session_setup_response_vector() -> None:
    wire = h("""00000190 00000001 59800000 00010000 5f5e1000 0000002e
        03 bae18671c96df6b6a3fa4b934a0a82462803375adbf449fc31eb87d26bf352e8
        0004 00000005 00000003cc 0000 00000000""")
    msg = roundtrip(wire)
    assert msg.body == b.SessionSetupResponse(4, h("00000003cc"))
    assert msg.request_digest == request_digest(SETUP_REQ[:-4], V)


def test_challenge_vector() -> None:
    wire = h("""00000064 00000192 19800000 00010000 5f5e1000 00000035
        03 f5dbbedbcb6fa6a1c6643db5e4d112efdfb4f96eb730bb158cf0b995a7590603
        00000010 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf 00000000""")
    msg = roundtrip(wire)
    assert msg.header.opcode == 100 and msg.header.response_code == 402
    assert msg.body == b.ChallengeBody(bytes(range(0xA0, 0xB0)))
    assert msg.request_digest == (3, h("f5dbbedbcb6fa6a1c6643db5e4d112efdfb4f96eb730bb158cf0b995a7590603"))


def test_challenge_answer_vector() -> None:
    wire = h("""000000c8 00000000 19000000 ffff0000 5f5e1000 00000026
        00000009 48535f5345434b4559 0000000a 544553542f41444d494e 0000012c 00000003 220102 00000000""")
    assert roundtrip(wire).body == b.ChallengeAnswerRequest(b"HS_SECKEY", b"TEST/ADMIN", 300, h("220102"))


HS_MAC_CRED = h("""00 00 0000 00000000 00000001 00000006 48535f4d4143 00000033
    0000000b 484d41432d534841323536
    00000020 c2a28920c51ce4d21d3e4f982245a90299c184a51e8d4d50e35414e8595da9cc""")


def test_hs_mac_credential_vector() -> None:
    cred = decode_credential(HS_MAC_CRED)
    assert cred == Credential(signer_index=1, type=HS_MAC, digest_alg=b"HMAC-SHA256",
                              signature=HS_MAC_CRED[-32:])
    assert encode_credential(cred) == HS_MAC_CRED
    assert signed_prefix(V, V, 18, 0x11223344, 1) == h("02 0b 02 0b 00000012 11223344 00000001")


def test_hs_signed_credential_layout_vector() -> None:
    sig = bytes(range(256))  # an RSA-2048 signature is 256 bytes
    cred = Credential(type=HS_SIGNED, digest_alg=b"SHA-256", signature=sig)
    raw = encode_credential(cred)
    assert raw == h("""00 00 0000 00000000 00000000 00000009 48535f5349474e4544 0000010f
                       00000007 5348412d323536 00000100""") + sig
    assert len(raw) == 300  # the 44 + signature length of wire.md 11.3
    assert decode_credential(raw) == cred
    assert signed_prefix(V, V, 0, 0x01020304, 0) == h("02 0b 02 0b 00000000 01020304 00000000")


def test_verify_challenge_vectors() -> None:
    nonce, digest = bytes(range(16)), bytes(range(100, 132))
    body = h("0000000a 544553542f41444d494e 0000012c 00000010") + nonce + h("00000020") + digest + h(
        "00000002 2209")
    header = h("000000c9 00000000 19000000 ffff0000 5f5e1000") + len(body).to_bytes(4, "big")
    msg = roundtrip(header + body + NO_CRED)
    assert msg.body == b.VerifyChallengeRequest(b"TEST/ADMIN", 300, nonce, 0, digest, h("2209"))
    request_hb = msg.header_body
    rd = request_digest(request_hb, V)
    resp = h("000000c9 00000001 59800000 00010000 5f5e1000 00000022") + b"\x03" + rd[1] + b"\x01" + NO_CRED
    decoded = roundtrip(resp)
    assert decoded.body == b.VerifyChallengeResponse(True) and decoded.request_digest == rd


def test_verify_challenge_raw_digest_forms() -> None:
    digest = bytes(20)
    r = b.VerifyChallengeRequest(b"H", 0, b"n", 2, digest, b"s")
    msg = Message(Header(201), r)
    wire = encode_message(msg, V)
    assert wire[HEADER_SIZE:].startswith(h("00000001 48 00000000 00000001 6e 02") + digest)
    assert decode_message(wire, V).body == r
    bad = wire.replace(h("02") + digest, h("09") + digest)
    with pytest.raises(DecodeError, match="hash type"):
        decode_message(bad, V)
    with pytest.raises(ValueError):
        encode_message(Message(Header(201), b.VerifyChallengeRequest(b"H", 0, b"n", 3, digest, b"s")), V)


def test_list_handles_vectors() -> None:
    req = roundtrip(h("""00000069 00000000 19000000 ffff0000 5f5e1000 0000000d
                         00000009 302e4e412f54455354 00000000"""))
    assert req.body == b.ListHandlesRequest(b"0.NA/TEST")
    resp = roundtrip(h("""00000069 00000001 1d000000 00010000 5f5e1000 00000018
        00000002 00000006 544553542f41 00000006 544553542f42 00000000"""))
    assert resp.header.flags & OpFlag.CN
    assert resp.body == b.ListHandlesResponse((b"TEST/A", b"TEST/B"))


def test_delete_success_vector() -> None:
    msg = roundtrip(h("00000065 00000001 19000000 00010000 5f5e1000 00000000 00000000"))
    assert msg.body == b.GenericSuccessResponse()


# --- replication.md 4 and values.md 3 ---------------------------------------------------------------


def test_retrieve_txn_log_single_source_vector() -> None:
    wire = h("""000003e9 00000000 59000000 ffff0000 5f5e1000 0000001a
        00 0000000000000005 00000000000003e8 02 00000001 00000000 00000000""")
    assert roundtrip(wire).body == b.RetrieveTxnLogRequest(5, 1000, 2, 1, 0)


def test_retrieve_txn_log_all_sources_vector() -> None:
    state = (b'{"replicationServerStates":{"0:2:0.NA/1234":{"lastTxnId":5,"lastTimestamp":1600000000000}},'
             b'"ownName":"1:0.NA/1234"}')
    wire = h("000003e9 00000000 59000000 ffff0000 5f5e1000 00000081 01 00000073") + state + h(
        "02 00000001 00000000 00000000")
    assert roundtrip(wire).body == b.RetrieveTxnLogRequest(receiver_hash_type=2, num_servers=1, server_num=0,
                                                           replication_state=state)


def test_retrieve_txn_log_before_2_9_has_no_mode_byte() -> None:
    body = b.RetrieveTxnLogRequest(5, 1000, 2, 1, 0)
    wire = encode_message(Message(Header(1001), body), (2, 8))
    assert wire[HEADER_SIZE:-4] == h("0000000000000005 00000000000003e8 02 00000001 00000000")
    assert decode_message(wire, (2, 8)).body == body
    with pytest.raises(ValueError):
        encode_message(Message(Header(1001), b.RetrieveTxnLogRequest(replication_state=b"{}")), (2, 8))


@pytest.mark.parametrize(("body_hex", "expected"), [
    ("02 00000001 00000000", b.DumpHandlesRequest(2, 1, 0)),
    ("02 00000001 00000000 00000006 544553542f41 00000002", b.DumpHandlesRequest(2, 1, 0, b"TEST/A", 2)),
])
def test_dump_handles_request_vectors(body_hex: str, expected: b.DumpHandlesRequest) -> None:
    body = h(body_hex)
    wire = h("000003ea 00000000 59000000 ffff0000 5f5e1000") + len(body).to_bytes(4, "big") + body + NO_CRED
    assert roundtrip(wire).body == expected


def test_retrieve_and_dump_responses() -> None:
    rd = (3, bytes(32))
    flags = OpFlag.CT | OpFlag.REC | OpFlag.RD
    for body, tail in [(b.RetrieveTxnLogResponse(), h("00")), (b.DumpHandlesResponse(), b"")]:
        msg = Message(Header(1001 if tail else 1002, 1, flags, 1, 0, EXP), body, rd)
        wire = encode_message(msg, V)
        assert wire[HEADER_SIZE:] == b"\x03" + bytes(32) + tail + NO_CRED
        assert decode_message(wire, V).body == body


SITE_RECORD = h("""0001020b 00018002 00000000 00000001 00000004 64657363 00000001 74000000 01000000
    01000000 00000000 00000000 007f0000 01000000 02010200 00000203 0100000a 51020000 000a51""")


def test_site_info_response_carries_the_record_bytes() -> None:
    msg = Message(Header(2, 1, 0x99000000, 1, 0, EXP), b.SiteInfoResponse(SITE_RECORD))
    wire = encode_message(msg, V)
    assert wire[HEADER_SIZE:] == SITE_RECORD + NO_CRED
    assert roundtrip(wire).body == b.SiteInfoResponse(SITE_RECORD)


# --- version-dependent layouts ---------------------------------------------------------------------


def test_legacy_response_codes_before_2_5() -> None:
    backup = Message(Header(1, ResponseCode.SERVER_BACKUP, 0, 1, 0, EXP), b.ErrorBody(b"ro"))
    wire = encode_message(backup, (2, 4))
    assert wire[4:8] == (303).to_bytes(4, "big")
    decoded = decode_message(wire, (2, 4))
    assert decoded.header.response_code == ResponseCode.SERVER_BACKUP and decoded.body == b.ErrorBody(b"ro")
    assert encode_message(decoded, (2, 4)) == wire
    invalid = Message(Header(102, ResponseCode.INVALID_VALUE, 0, 1, 0, EXP), b.ErrorBody())
    assert encode_message(invalid, (2, 4))[4:8] == (201).to_bytes(4, "big")
    assert encode_message(invalid, (2, 5))[4:8] == (202).to_bytes(4, "big")
    # from 2.5 on, 303 is a prefix referral and 7 goes out as 7
    assert encode_message(backup, (2, 5))[4:8] == (7).to_bytes(4, "big")
    referral = Message(Header(1, 303, 0, 1, 0, EXP), b.ReferralBody(b"", ()))
    assert decode_message(encode_message(referral, (2, 5)), (2, 5)).body == b.ReferralBody(b"", ())


@pytest.mark.parametrize("version", [(2, 0), (5, 0)])
def test_old_challenge_layout(version: tuple[int, int]) -> None:
    msg = Message(Header(100, 402, OpFlag.REC | OpFlag.RD, 1, 0, EXP), b.ChallengeBody(b"N" * 16),
                  (0, b"D" * 16))
    wire = encode_message(msg, version)
    assert wire[8:12] == h("10000000")  # no RD flag before 2.1
    assert wire[HEADER_SIZE:] == h("00000010") + b"N" * 16 + h("00000010") + b"D" * 16 + NO_CRED
    decoded = decode_message(wire, version)
    assert decoded.body == b.ChallengeBody(b"N" * 16) and decoded.request_digest == (0, b"D" * 16)


def test_old_error_body_may_lack_its_length() -> None:
    empty = h("00000001 00000064 10000000 00010000 5f5e1000 00000000")
    assert decode_message(empty, (2, 0)).body == b.ErrorBody(b"")
    assert decode_message(empty, (5, 0)).body == b.ErrorBody(b"")
    with pytest.raises(DecodeError):
        decode_message(empty, (2, 1))


def test_old_format_request_digest_is_a_byte_array() -> None:
    digest = hashlib.md5(b"x").digest()
    msg = Message(Header(101, 1, OpFlag.RD, 1, 0, EXP), b.GenericSuccessResponse(), (0, digest))
    wire = encode_message(msg, V)
    assert wire[HEADER_SIZE:] == h("00000010") + digest + NO_CRED
    assert decode_message(wire, V).request_digest == (0, digest)


def test_flags_outside_the_java_set_are_not_written() -> None:
    msg = Message(Header(1, 0, 0x190FFFFF, -1, 0, EXP), b.ResolutionRequest(b"TEST/1"))
    assert encode_message(msg, V) == RES_REQ


# --- other layouts -----------------------------------------------------------------------------------


def test_session_setup_modes_and_missing_padding() -> None:
    server = b.SessionSetupRequest(2, 60, b"", -1)
    wire = encode_message(Message(Header(400), server), V)
    assert wire[HEADER_SIZE:] == h("0002 0000003c 00000000 ffffffff 0000") + NO_CRED
    hdl = b.SessionSetupRequest(3, 60, b"A", 1, exchange_key_handle=b"K", exchange_key_index=7)
    wire = encode_message(Message(Header(400), hdl), V)
    assert wire[HEADER_SIZE:] == h("0003 0000003c 00000001 41 00000001 00000001 4b 00000007 0000") + NO_CRED
    assert decode_message(wire, V).body == hdl
    unpadded = h("00000190 00000000 00000000 ffff0000 5f5e1000 0000000e 0002 0000003c 00000000 ffffffff")
    assert decode_message(unpadded, V).body == server


def test_session_exchange_key_bodies() -> None:
    empty = h("00000192 00000000 00000000 ffff0000 5f5e1000 00000000 00000000")
    assert roundtrip(empty).body == b.SessionExchangeKeyRequest(None)
    keyed = h("00000192 00000000 00000000 ffff0000 5f5e1000 00000006 00000002 abcd 00000000")
    assert roundtrip(keyed).body == b.SessionExchangeKeyRequest(h("abcd"))


def test_create_response_with_and_without_handle() -> None:
    assert roundtrip(h("00000064 00000001 99000000 00010000 5f5e1000 00000000 00000000")).body \
        == b.CreateHandleResponse(None)
    assert roundtrip(h("00000064 00000001 99000000 00010000 5f5e1000 00000005 00000001 41 00000000")).body \
        == b.CreateHandleResponse(b"A")


def test_referral_with_and_without_values() -> None:
    bare = roundtrip(h("00000001 0000012f 99000000 00010000 5f5e1000 00000004 00000000 00000000"))
    assert bare.body == b.ReferralBody(b"", None)
    body = h("00000001 41 00000001") + URL_VALUE
    with_values = roundtrip(h("00000001 0000012e 99000000 00010000 5f5e1000") + len(body).to_bytes(4, "big")
                            + body + NO_CRED)
    assert with_values.body == b.ReferralBody(b"A", (HandleValue(1, b"URL", b"http://example.org/",
                                                                 timestamp=0x5E0BE100),))


def test_other_success_bodies() -> None:
    cases = [
        (1000, b.NextTxnIdResponse(2**40 + 5), h("0000010000000005")),
        (302, b.ListHomedNAsResponse((b"0.NA/X",)), h("00000001 00000006 302e4e412f58")),
        (201, b.VerifyChallengeResponse(False), h("00")),
        (401, b.GenericSuccessResponse(), b""),
    ]
    for opcode, body, body_bytes in cases:
        wire = encode_message(Message(Header(opcode, 1, 0, 1, 0, EXP), body), V)
        assert wire[HEADER_SIZE:] == body_bytes + NO_CRED
        assert decode_message(wire, V).body == body


def test_verify_response_reads_only_the_valid_bit() -> None:
    wire = h("000000c9 00000001 10000000 00010000 5f5e1000 00000001 fe 00000000")
    assert decode_message(wire, V).body == b.VerifyChallengeResponse(False)


def test_unknown_codes_decode_to_opaque_bodies_and_round_trip() -> None:
    for wire in (h("0000006a 00000000 19000000 ffff0000 5f5e1000 00000003 abcdef 00000000"),  # LIST_NA
                 h("00000000 00000000 19000000 ffff0000 5f5e1000 00000000 00000000"),  # opcode 0
                 h("00000001 000003e7 19000000 00010000 5f5e1000 00000002 abcd 00000000"),  # RC 999
                 h("000000c8 00000001 19000000 00010000 5f5e1000 00000001 01 00000000")):  # RC 1 of op 200
        msg = roundtrip(wire)
        assert msg.body == b.OpaqueBody(wire[HEADER_SIZE:-4])


def test_opaque_body_with_request_digest() -> None:
    wire = h("00000001 000003e7 19800000 00010000 5f5e1000 00000017 02") + bytes(20) + h("abcd 00000000")
    msg = roundtrip(wire)
    assert msg.request_digest == (2, bytes(20)) and msg.body == b.OpaqueBody(h("abcd"))


def test_trailing_body_bytes_are_ignored_like_java() -> None:
    wire = h("00000065 00000000 19000000 ffff0000 5f5e1000 00000007 00000001 41 ffff 00000000")
    msg = decode_message(wire, V)
    assert msg.body == b.DeleteHandleRequest(b"A")
    assert msg.header_body == wire[:-4]  # digests and MACs still cover every received byte


# --- credentials and the message tail --------------------------------------------------------------


def test_credential_round_trip_in_a_message() -> None:
    cred = Credential(signer_index=3, type=HS_MAC, digest_alg=b"HMAC-SHA256", signature=bytes(32))
    msg = Message(Header(101, 0, 0x19000000, 1, 0, EXP), b.DeleteHandleRequest(b"TEST/X"), credential=cred)
    hb = encode_header_body(msg, V)
    wire = encode_message(msg, V)
    assert wire == attach_credential(hb, cred) == hb + len(encode_credential(cred)).to_bytes(4, "big") + \
        encode_credential(cred)
    decoded = decode_message(wire, V)
    assert decoded.credential == cred and decoded.header_body == hb
    assert attach_credential(hb, None) == hb + NO_CRED


def test_message_tail_leniency() -> None:
    hb = RES_REQ[:-4]
    assert decode_message(hb, V).credential is None  # ends right after the body
    assert decode_message(hb + b"\x00\x00\x01", V).credential is None  # fewer than 4 bytes: no credential
    cred = encode_credential(Credential(type=HS_SIGNED, digest_alg=b"SHA1", signature=b"s"))
    tail = len(cred).to_bytes(4, "big") + cred
    assert decode_message(hb + tail + b"junk", V).credential.signature == b"s"  # after it: ignored


@pytest.mark.parametrize("wire", [
    b"",
    bytes(23),
    RES_REQ[:20] + h("00000017") + RES_REQ[24:],  # body length beyond the end of the message
    RES_REQ[:20] + h("0000ffff") + RES_REQ[24:],
    RES_REQ[:20] + h("ffffffff") + RES_REQ[24:],
    RES_REQ[:20] + h("00000011") + RES_REQ[24:],  # body one byte short: the type list does not fit
    RES_REQ[:-4] + h("00000010") + bytes(8),  # credential longer than the rest
    RES_REQ[:-4] + h("ffffffff"),  # negative credential length
    RES_REQ[:-4] + h("00000005") + bytes(5),  # credential whose fields do not fit
    RES_REQ[:24] + h("00000006 54455354 2f31 7fffffff 00000000 00000000"),  # index count too large
    RES_REQ[:24] + h("00000006 54455354 2f31 00000000 00100001 00000000"),  # type count too large
    RES_REQ[:24] + h("00100001 54455354 2f31 00000000 00000000 00000000"),  # handle longer than the array max
])
def test_malformed_messages_raise_decode_error(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(wire, V)


def test_response_limits_of_the_java_client() -> None:
    long_handle = b"A" * 2049
    wire = encode_message(Message(Header(1, 1, 0, 1, 0, EXP), b.ResolutionResponse(long_handle, ())), V)
    with pytest.raises(DecodeError, match="handle length"):
        decode_message(wire, V)
    many = tuple(HandleValue(i, b"", b"") for i in range(2049))
    wire = encode_message(Message(Header(1, 1, 0, 1, 0, EXP), b.ResolutionResponse(b"A", many)), V)
    with pytest.raises(DecodeError, match="number of values"):
        decode_message(wire, V)


def test_unknown_request_digest_algorithm_is_rejected() -> None:
    wire = h("00000065 00000001 19800000 00010000 5f5e1000 00000001 07 00000000")
    with pytest.raises(DecodeError, match="hash type"):
        decode_message(wire, V)


def test_encoder_refuses_inconsistent_messages() -> None:
    with pytest.raises(ValueError, match="needs a ErrorBody"):
        encode_message(Message(Header(1, 100), b.ResolutionResponse(b"A", ())), V)
    with pytest.raises(ValueError, match="request digest"):
        encode_message(Message(Header(101, 1, OpFlag.RD), b.GenericSuccessResponse()), V)
    with pytest.raises(ValueError, match="needs 32 bytes"):
        encode_message(Message(Header(101, 1, OpFlag.RD), b.GenericSuccessResponse(), (3, bytes(20))), V)
    # an opaque body may stand in for any layout
    assert encode_message(Message(Header(1, 1), b.OpaqueBody(b"raw")), V)[HEADER_SIZE:-4] == b"raw"


# --- signed prefix and request digests -------------------------------------------------------------


def test_signed_prefix_per_version() -> None:
    sid, rid, ctr = 0x0A0B0C0D, 0x01020304, 0x11121314
    assert signed_prefix((2, 11), (2, 11), sid, rid, ctr) == h("020b020b 0a0b0c0d 01020304 11121314")
    assert signed_prefix((2, 8), (2, 10), sid, rid, ctr) == h("0208020a 0a0b0c0d 01020304 11121314")
    assert signed_prefix((2, 7), (2, 11), sid, rid, ctr) == h("0207 0a0b0c0d 01020304 11121314")
    # 2.6: the session id's two high bytes, the counter, six zero bytes (Java offset bug)
    assert signed_prefix((2, 6), (2, 11), sid, rid, ctr) == h("0206 0a0b 11121314 000000000000")
    assert signed_prefix((2, 5), (2, 11), sid, rid, ctr) == b""
    assert signed_prefix((5, 0), (5, 0), sid, rid, ctr) == b""
    assert signed_prefix(V, V, -1, -1, 0) == h("020b020b ffffffff ffffffff 00000000")


def test_request_digest_by_response_version() -> None:
    hb = RES_REQ[:-4]
    assert request_digest(hb, (2, 11)) == (3, hashlib.sha256(hb).digest())
    assert request_digest(hb, (2, 7)) == (3, hashlib.sha256(hb).digest())
    assert request_digest(hb, (2, 6)) == (2, hashlib.sha1(hb).digest())
    assert request_digest(hb, (2, 1)) == (2, hashlib.sha1(hb).digest())
    assert request_digest(hb, (2, 0)) == (0, hashlib.md5(hb).digest())
    assert compute_digest(1, hb) == hashlib.md5(hb).digest()
    with pytest.raises(ValueError):
        compute_digest(4, hb)


def test_hs_mac_over_prefix_and_header_body() -> None:
    # sanity check of signed_prefix + encode_header_body as a MAC input (wire.md 11.4, >= 2.7)
    key = bytes(range(32))
    msg = Message(Header(101, 0, 0x19000000, 1, 0, EXP), b.DeleteHandleRequest(b"TEST/X"))
    hb = encode_header_body(msg, V)
    mac = hmac.new(key, signed_prefix(V, V, 18, 0x11223344, 1) + hb, "sha256").digest()
    assert mac == hmac.new(key, h("020b020b 00000012 11223344 00000001") + hb, "sha256").digest()

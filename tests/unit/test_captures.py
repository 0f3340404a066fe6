"""Real Java 9.2 traffic (shared/vectors/captures) and Java-made whole messages (sessions/, auth/):
every unencrypted message decodes with its envelope version and re-encodes byte-identical."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from hdlserver.wire import bodies as b
from hdlserver.wire.credential import HS_MAC, HS_SIGNED, decode_credential, signed_prefix
from hdlserver.wire.digest import request_digest
from hdlserver.wire.envelope import ENVELOPE_SIZE, UdpReassembler, decode_envelope
from hdlserver.wire.message import HEADER_SIZE, Message, decode_message, encode_header_body, encode_message

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
CAPTURES = VECTORS / "captures"

pytestmark = pytest.mark.skipif(
    not VECTORS.is_dir(), reason=f"Java test vectors not found at {VECTORS} (only in the dev workspace)")


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _captured() -> list[dict[str, Any]]:
    if not CAPTURES.is_dir():
        return []
    return _lines(CAPTURES / "messages.jsonl")


def _clear(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if not r["message"].get("encrypted")]


def _id(rec: dict[str, Any]) -> str:
    return f"{rec['scenario']}-{rec['first_seq']}-{rec['dir']}-{rec['message'].get('op', 'encrypted')}"


def _split(rec: dict[str, Any]) -> tuple[Any, bytes, Message]:
    raw = bytes.fromhex(rec["message_hex"])
    env = decode_envelope(raw)
    message = raw[ENVELOPE_SIZE:]
    return env, message, decode_message(message, env.version)


CLEAR = _clear(_captured())


def test_capture_set_is_complete() -> None:
    records = _captured()
    assert len(records) == 47 and len(CLEAR) == 46  # README: one encrypted ADD


@pytest.mark.parametrize("rec", CLEAR, ids=_id)
def test_captured_message_decodes_and_reencodes_identically(rec: dict[str, Any]) -> None:
    env, message, msg = _split(rec)
    e, m = rec["envelope"], rec["message"]
    assert f"{env.major}.{env.minor}" == e["version"] and f"{env.suggested_major}.{env.suggested_minor}" == \
        e["suggested"]
    assert (env.session_id, env.request_id, env.message_length) == (e["sessionId"], e["requestId"],
                                                                    e["messageLength"])
    assert len(message) == env.message_length
    h = msg.header
    assert (h.opcode, h.response_code, f"{h.flags:08x}") == (m["opCode"], m["responseCode"], m["flags_hex"])
    assert (h.site_serial & 0xFFFF, h.recursion, h.expiration) == (m["siteSerial"], m["recursion"],
                                                                   m["expiration"])
    assert msg.header_body == message[: HEADER_SIZE + m["bodyLength"]]
    assert encode_header_body(msg, env.version) == msg.header_body
    assert encode_message(msg, env.version) == message  # Java wrote all of these, credential included
    _check_summary(msg, m)


def _check_summary(msg: Message, m: dict[str, Any]) -> None:
    body = msg.body
    if m["credentialLength"]:
        c, cred = m["credential"], msg.credential
        assert cred is not None
        assert (cred.type, cred.signer_handle, cred.signer_index, cred.digest_alg) == (
            c["type"].encode(), c["signer"].encode(), c["signerIndexOrCounter"], c["hashAlg"].encode())
    else:
        assert msg.credential is None
    if "handle" in m:
        assert body.handle.decode() == m["handle"]
    if "nonce" in m:
        assert body == b.ChallengeBody(bytes.fromhex(m["nonce"]))
    if "requestDigestAlg" in m:
        assert msg.request_digest is not None and msg.request_digest[0] == m["requestDigestAlg"]
    if "valueCount" in m:
        assert len(body.values) == m["valueCount"]
    if "handles" in m:
        assert [x.decode() for x in body.handles] == m["handles"]
    if "answer" in m:
        a = m["answer"]
        index, identity = a["identity"].split(":", 1)
        assert body == b.ChallengeAnswerRequest(a["authType"].encode(), identity.encode(), int(index),
                                                body.signed_response)
        if "answer_hex" in a:
            assert body.signed_response.hex() == a["answer_hex"]
    if "session_setup" in m:
        s = m["session_setup"]
        if m["responseCode"] == 0:
            assert isinstance(body, b.SessionSetupRequest)
            assert (body.mode, body.timeout, f"{body.identity_index}:{body.identity_handle.decode()}") == (
                s["mode"], s["timeout"], s["identity"])
            assert msg.header_body.endswith(b.SESSION_SETUP_PADDING)
        else:
            assert isinstance(body, b.SessionSetupResponse)
            assert (body.mode, len(body.data), int.from_bytes(body.data[:4], "big")) == (
                s["mode"], s["data_len"], s["alg_code"])


def test_request_digests_are_sha256_of_the_original_request() -> None:
    by_scenario: dict[str, list[Message]] = defaultdict(list)
    responses = []
    for rec in CLEAR:
        msg = _split(rec)[2]
        if rec["dir"] == "c2s":
            by_scenario[rec["scenario"]].append(msg)
        elif msg.request_digest is not None:
            responses.append((rec["scenario"], msg))
    assert len(responses) == 8  # 5 challenges and 3 SESSION_SETUP responses
    for scenario, resp in responses:
        originals = {request_digest(req.header_body, (2, 11)) for req in by_scenario[scenario]
                     if req.header.opcode == resp.header.opcode}
        assert resp.request_digest in originals


def test_hs_signed_responses_verify_with_the_signed_prefix() -> None:
    key = serialization.load_pem_public_key((CAPTURES / "inputs" / "server_pub_spki.pem").read_bytes())
    checked = 0
    for rec in CLEAR:
        env, _, msg = _split(rec)
        if msg.credential is None or msg.credential.type != HS_SIGNED:
            continue
        assert msg.credential.digest_alg == b"SHA-256"
        prefix = signed_prefix(env.version, env.suggested, env.session_id, env.request_id,
                               msg.credential.signer_index)
        key.verify(msg.credential.signature, prefix + msg.header_body, padding.PKCS1v15(), hashes.SHA256())
        checked += 1
    assert checked == 3


def test_udp_datagrams_reassemble_to_the_captured_messages() -> None:
    """Includes the Java server's 2-datagram SESSION_SETUP responses, which have TC clear."""
    raw = [r for r in _lines(CAPTURES / "captures.jsonl") if r["transport"] == "udp"]
    expected = {(r["scenario"], r["dir"], r["envelope"]["requestId"]): bytes.fromhex(r["message_hex"])
                for r in CLEAR if r["transport"] == "udp"}
    for reverse in (False, True):
        r = UdpReassembler()
        got = {}
        for rec in sorted(raw, key=lambda x: (x["scenario"], x["dir"], x["seq"]), reverse=reverse):
            done = r.add((rec["conn"], 0), bytes.fromhex(rec["hex"]), 0.0)
            if done is not None:
                env, message = done
                got[(rec["scenario"], rec["dir"], env.request_id)] = message
                assert env.sequence == 0
        assert {k: v[ENVELOPE_SIZE:] for k, v in expected.items()} == got
        assert len(r) == 0


# --- sessions/session_vectors.json and auth/auth_vectors.json ---------------------------------------


def _json(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


def test_hs_mac_vectors_decode_reencode_and_verify() -> None:
    vectors = _json("sessions/session_vectors.json")
    key = bytes.fromhex(vectors["inputs"]["session_key_hex"])
    for entry in vectors["hs_mac"]:
        env = decode_envelope(bytes.fromhex(entry["envelope_hex"]))
        version = tuple(int(x) for x in entry["message_version"].split("."))
        assert env.version == version
        wire = bytes.fromhex(entry["message_hex"])
        assert env.message_length == len(wire)
        msg = decode_message(wire, version)
        assert encode_message(msg, version) == wire
        assert msg.header_body.hex() == entry["header_and_body_hex"]
        assert wire[len(msg.header_body):].hex() == entry["credential_hex"]
        assert msg.body == b.ResolutionRequest(b"TEST/vec-1", (1, 2), (b"URL",))
        cred = msg.credential
        assert cred is not None and cred.type == HS_MAC and cred.signer_index == 3
        if version >= (2, 7):  # HMAC-SHA256 over the signed prefix and the header+body (wire.md 11.4)
            prefix = signed_prefix(version, env.suggested, env.session_id, env.request_id, cred.signer_index)
            assert cred.digest_alg == b"HMAC-SHA256"
            assert hmac.new(key, prefix + msg.header_body, hashlib.sha256).digest() == cred.signature


def test_session_encryption_plaintexts_are_whole_messages() -> None:
    for entry in _json("sessions/session_vectors.json")["encryption"]:
        wire = bytes.fromhex(entry["plaintext_hex"])
        msg = decode_message(wire, (2, 11))
        assert encode_message(msg, (2, 11)) == wire and msg.credential is not None


def test_dh_session_setup_request_vector() -> None:
    dh = _json("sessions/session_vectors.json")["dh"]
    wire = bytes.fromhex(dh["session_setup_request_message_hex"])
    msg = decode_message(wire, (2, 11))
    assert msg.body == b.SessionSetupRequest(mode=4, timeout=86_400, identity_handle=b"0.NA/TEST",
                                             identity_index=300,
                                             public_key=bytes.fromhex(dh["client_DH_PUB_KEY_hex"]))
    assert encode_message(msg, (2, 11)) == wire


def test_auth_vector_requests_and_their_digests() -> None:
    entries = _json("auth/auth_vectors.json")["client_answers_by_challenge_version"]
    assert entries
    for entry in entries:
        hb = bytes.fromhex(entry["request_header_body_hex"])
        msg = decode_message(hb, (2, 11))  # ends right after the body
        assert msg.body == b.DeleteHandleRequest(b"TEST/vec-1")
        assert encode_header_body(msg, (2, 11)) == hb
        assert request_digest(hb, (2, 11))[1].hex() == entry["request_digest_sha256_hex"]


def test_credentials_decode_on_their_own_and_challenge_answers_have_none() -> None:
    """Every captured credential also decodes alone (the section after its int4 length)."""
    for rec in CLEAR:
        _, message, msg = _split(rec)
        if msg.credential is not None:
            start = len(msg.header_body) + 4
            assert decode_credential(message[start:]) == msg.credential
        if msg.header.opcode == 200 and msg.header.response_code == 0:
            assert msg.credential is None  # challenge answers are not signed in 9.x

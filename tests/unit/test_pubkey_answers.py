"""HS_PUBKEY challenge answers (hdlserver.auth.pubkey_answers) against auth.md 4.1/5.2 and the Java vectors."""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlserver.auth import keys
from hdlserver.auth.pubkey_answers import (
    client_pubkey_digest,
    make_pubkey_answer,
    parse_pubkey_answer,
    verify_pubkey_answer,
)
from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Writer
from hdlserver.wire.values import HandleValue

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
NONCE = bytes(range(0xA0, 0xB0))
DIGEST = bytes(range(32))


def vectors_dir() -> Path:
    if not VECTORS.is_dir():
        pytest.skip(f"Java test vectors not available at {VECTORS}")
    return VECTORS


def auth_vectors() -> dict[str, Any]:
    return json.loads((vectors_dir() / "auth" / "auth_vectors.json").read_text())


def vector_inputs() -> tuple[bytes, bytes]:
    inp = auth_vectors()["inputs"]
    return bytes.fromhex(inp["nonce_hex"]), bytes.fromhex(inp["request_digest_hex"])


def private_key(name: str) -> keys.PrivateKey:
    return keys.read_private_key_file((vectors_dir() / "keys" / f"{name}_priv_plain.bin").read_bytes(), None)


def public_key_bytes(name: str) -> bytes:
    return (vectors_dir() / "keys" / f"{name}_pub.bin").read_bytes()


@cache
def small_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@cache
def other_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@cache
def small_dsa() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=1024)


def pubkey_value(index: int, key: keys.PrivateKey, type_: bytes = b"HS_PUBKEY") -> HandleValue:
    return HandleValue(index, type_, keys.public_key_to_bytes(key.public_key()))


def version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


# ---------------------------------------------------------------------------------------------------------
# Java vectors


def test_java_pubkey_answers_parse_and_verify() -> None:
    nonce, digest = vector_inputs()
    entries = auth_vectors()["pubkey_answers"]
    assert {e["jca_algorithm"] for e in entries} == {"SHA1withRSA", "SHA256withRSA", "SHA1withDSA", "SHA256withDSA"}
    for entry in entries:
        answer = bytes.fromhex(entry["answer_hex"])
        alg, signature = parse_pubkey_answer(answer)
        assert alg == entry["hash_alg_id"].encode()
        assert signature.hex() == entry["signature_hex"]
        values = [HandleValue(300, b"HS_PUBKEY", public_key_bytes(entry["key"]))]
        assert verify_pubkey_answer(values, 300, nonce, digest, answer) == 300
        assert verify_pubkey_answer(values, 0, nonce, digest, answer) == 300
        assert verify_pubkey_answer(values, 0, nonce[::-1], digest, answer) is None
        assert verify_pubkey_answer(values, 0, nonce, digest[:-1] + b"\x00", answer) is None


def test_deterministic_rsa_answers_are_reproduced_byte_exact() -> None:
    nonce, digest = vector_inputs()
    key = private_key("rsa2048")
    for entry in auth_vectors()["pubkey_answers"]:
        if not entry["deterministic"]:
            continue
        v = (2, 11) if entry["hash_alg_id"] == "SHA-256" else (2, 6)
        assert make_pubkey_answer(key, nonce, digest, v).hex() == entry["answer_hex"]


def test_client_signature_choice_matches_java() -> None:
    entries = auth_vectors()["client_signature_choice"]
    assert len(entries) == 6
    for entry in entries:
        v = version(entry["challenge_version"])
        assert client_pubkey_digest(v, is_dsa=False) + "withRSA" == entry["RSA_sig_id"].replace("SHA256", "SHA-256")
        assert client_pubkey_digest(v, is_dsa=True) + "withDSA" == entry["DSA_sig_id"].replace("SHA256", "SHA-256")


def test_client_answers_by_challenge_version_match_java() -> None:
    nonce = bytes.fromhex(auth_vectors()["inputs"]["nonce_hex"])
    entries = [e for e in auth_vectors()["client_answers_by_challenge_version"] if e["auth"].startswith("HS_PUBKEY")]
    assert len(entries) == 10
    for entry in entries:
        name = entry["auth"].split()[1]
        v = version(entry["challenge_version"])
        digest = bytes.fromhex(entry["request_digest_sha256_hex"])
        java_answer = bytes.fromhex(entry["answer_hex"])
        java_alg, _ = parse_pubkey_answer(java_answer)
        ours = make_pubkey_answer(private_key(name), nonce, digest, v)
        ours_alg, _ = parse_pubkey_answer(ours)
        assert ours_alg == java_alg == client_pubkey_digest(v, is_dsa=name.startswith("dsa")).encode()
        values = [HandleValue(300, b"HS_PUBKEY", public_key_bytes(name))]
        assert verify_pubkey_answer(values, 300, nonce, digest, java_answer) == 300
        assert verify_pubkey_answer(values, 300, nonce, digest, ours) == 300
        if name.startswith("rsa"):  # PKCS#1 v1.5 is deterministic, DSA is not
            assert ours == java_answer


# ---------------------------------------------------------------------------------------------------------
# Client choice


@pytest.mark.parametrize(
    ("v", "rsa_alg", "dsa_alg"),
    [((2, 0), "SHA1", "SHA1"), ((2, 6), "SHA1", "SHA1"), ((2, 7), "SHA-256", "SHA1"),
     ((2, 10), "SHA-256", "SHA1"), ((2, 11), "SHA-256", "SHA-256"), ((3, 0), "SHA-256", "SHA-256")],
)
def test_client_pubkey_digest(v: tuple[int, int], rsa_alg: str, dsa_alg: str) -> None:
    assert client_pubkey_digest(v, is_dsa=False) == rsa_alg
    assert client_pubkey_digest(v, is_dsa=True) == dsa_alg


def test_make_pubkey_answer_layout() -> None:
    answer = make_pubkey_answer(small_dsa(), NONCE, DIGEST, (2, 10))
    alg, signature = parse_pubkey_answer(answer)
    assert alg == b"SHA1"
    assert answer == Writer().put_utf8(b"SHA1").put_byte_array(signature).getvalue()
    assert keys.verify(small_dsa().public_key(), signature, NONCE + DIGEST, "SHA1")


# ---------------------------------------------------------------------------------------------------------
# Index and type rules (auth.md 5 step 2)


def test_index_zero_tries_all_in_ascending_order() -> None:
    answer = make_pubkey_answer(small_rsa(), NONCE, DIGEST, (2, 11))
    values = [pubkey_value(302, small_rsa()), pubkey_value(400, other_rsa()), pubkey_value(301, small_rsa())]
    assert verify_pubkey_answer(values, 0, NONCE, DIGEST, answer) == 301  # lowest matching index wins
    assert verify_pubkey_answer(values, 302, NONCE, DIGEST, answer) == 302
    assert verify_pubkey_answer(values, 400, NONCE, DIGEST, answer) is None
    assert verify_pubkey_answer(values, 500, NONCE, DIGEST, answer) is None
    assert verify_pubkey_answer(values, -1, NONCE, DIGEST, answer) == 301  # only i > 0 filters
    assert verify_pubkey_answer([], 0, NONCE, DIGEST, answer) is None


def test_type_must_be_exactly_hs_pubkey() -> None:
    answer = make_pubkey_answer(small_rsa(), NONCE, DIGEST, (2, 11))
    for type_ in (b"hs_pubkey", b"HS_PUBKEY.sub", b"HS_PUBKEY ", b"HS_SECKEY", b""):
        assert verify_pubkey_answer([pubkey_value(300, small_rsa(), type_)], 0, NONCE, DIGEST, answer) is None
        assert verify_pubkey_answer([pubkey_value(300, small_rsa(), type_)], 300, NONCE, DIGEST, answer) is None


def test_unusable_candidates_are_skipped() -> None:
    answer = make_pubkey_answer(small_dsa(), NONCE, DIGEST, (2, 11))
    values = [
        HandleValue(1, b"HS_PUBKEY", b"garbage"),
        HandleValue(2, b"HS_PUBKEY", keys.public_key_to_bytes(small_rsa().public_key())),  # wrong key type
        pubkey_value(3, small_dsa()),
    ]
    assert verify_pubkey_answer(values, 0, NONCE, DIGEST, answer) == 3
    assert verify_pubkey_answer(values, 1, NONCE, DIGEST, answer) is None


def test_the_answer_algorithm_is_used() -> None:
    key = small_rsa()
    values = [pubkey_value(300, key)]
    signature = keys.sign(key, NONCE + DIGEST, "SHA1")
    for alg, expected in ((b"SHA1", 300), (b"SHA-1", 300), (b"\x02", 300), (b"SHA-256", None), (b"MD5", None),
                          (b"sha1", None), (b"SHA-512", None), (b"", None)):
        answer = Writer().put_utf8(alg).put_byte_array(signature).getvalue()
        assert verify_pubkey_answer(values, 0, NONCE, DIGEST, answer) == expected, alg


# ---------------------------------------------------------------------------------------------------------
# Malformed answers


@pytest.mark.parametrize(
    "answer",
    [b"", b"\x00\x00", b"\x00\x00\x00\x04SHA", b"\x00\x00\x00\x04SHA1", b"\x00\x00\x00\x04SHA1\x00\x00\x01\x00\x01",
     b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff" + bytes(8)],
)
def test_truncated_answers_raise_decode_error_and_do_not_verify(answer: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_pubkey_answer(answer)
    assert verify_pubkey_answer([pubkey_value(300, small_rsa())], 0, NONCE, DIGEST, answer) is None


def test_bad_signatures_do_not_verify_and_are_cheap() -> None:
    values = [pubkey_value(300, small_rsa()), pubkey_value(301, small_dsa())]
    start = time.perf_counter()
    for signature in (b"", bytes(128), b"\x30\x00", b"\x30\x06\x02\x01\x01\x02\x01\x01", bytes(100_000)):
        for alg in (b"SHA1", b"SHA-256"):
            answer = Writer().put_utf8(alg).put_byte_array(signature).getvalue()
            assert verify_pubkey_answer(values, 0, NONCE, DIGEST, answer) is None
    assert time.perf_counter() - start < 1.0


def test_trailing_bytes_after_the_signature_are_ignored_like_java() -> None:
    answer = make_pubkey_answer(small_rsa(), NONCE, DIGEST, (2, 11))
    assert parse_pubkey_answer(answer + b"extra") == parse_pubkey_answer(answer)
    assert verify_pubkey_answer([pubkey_value(7, small_rsa())], 0, NONCE, DIGEST, answer + b"extra") == 7


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_raises_only_decode_error(data: bytes) -> None:
    try:
        alg, signature = parse_pubkey_answer(data)
    except DecodeError:
        return
    assert len(alg) + len(signature) + 8 <= len(data)


@settings(max_examples=100, deadline=None)
@given(alg=st.sampled_from([b"SHA1", b"SHA-256", b"MD5", b"\x01", b"x"]), signature=st.binary(max_size=300))
def test_verify_never_raises(alg: bytes, signature: bytes) -> None:
    values = [pubkey_value(300, small_rsa()), pubkey_value(301, small_dsa()), HandleValue(302, b"HS_PUBKEY", signature)]
    answer = Writer().put_utf8(alg).put_byte_array(signature).getvalue()
    assert verify_pubkey_answer(values, 0, NONCE, DIGEST, answer) is None

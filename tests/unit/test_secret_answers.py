"""HS_SECKEY challenge answers (hdlserver.auth.secret_answers) against auth.md 4.2/7 and the Java vectors."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlserver.auth import secret_answers as sa
from hdlserver.auth.secret_answers import (
    SECKEY_HMAC_SHA1,
    SECKEY_HMAC_SHA256,
    SECKEY_MD5,
    SECKEY_OLD_MD5,
    SECKEY_PBKDF2_HMAC_SHA1,
    SECKEY_SHA1,
    SECKEY_SHA256,
    client_secret_code,
    compute_secret_answer,
    make_secret_answer,
    verify_secret_against_values,
    verify_secret_answer,
)
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.values import HandleValue

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"

# The printed vectors of auth.md 4.2.
SPEC_K = b"secret"
SPEC_N = bytes(range(0xA0, 0xB0))
SPEC_D = hashlib.sha256(b"abc").digest()
SPEC_CODE02 = "bfec89a79eb912dc9ae762e874af566f0cb895bd"
SPEC_CODE13 = "2a0547a4d0a2b7a05daa765ebb465b6f6bbe593cf0562f5242ef15c51bcd85bc"
SPEC_CODE22_ZERO_SALT = (
    "00000010" "00000000000000000000000000000000" "00002710" "000000a0" "00000014"
    "40f72114a16a48a033c322c0e4ae70480c38aaad"
)

ALL_CODES = (SECKEY_MD5, SECKEY_SHA1, SECKEY_SHA256, SECKEY_HMAC_SHA1, SECKEY_HMAC_SHA256, SECKEY_PBKDF2_HMAC_SHA1)


def auth_vectors() -> dict[str, Any]:
    path = VECTORS / "auth" / "auth_vectors.json"
    if not path.is_file():
        pytest.skip(f"Java test vectors not available at {VECTORS}")
    return json.loads(path.read_text())


def inputs() -> tuple[bytes, bytes, bytes]:
    inp = auth_vectors()["inputs"]
    return bytes.fromhex(inp["secret_hex"]), bytes.fromhex(inp["nonce_hex"]), bytes.fromhex(inp["request_digest_hex"])


def version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def pbkdf2_kwargs(entry: dict[str, Any]) -> dict[str, Any]:
    if entry["code"] != SECKEY_PBKDF2_HMAC_SHA1:
        return {}
    return {
        "salt": bytes.fromhex(entry["salt_hex"]),
        "iterations": entry["iterations"],
        "key_length_bits": entry["key_length_bits"],
    }


def seckey_vector_ids() -> list[str]:
    try:
        entries = auth_vectors()["seckey_answers"]
    except pytest.skip.Exception:
        return ["skipped"]
    return [entry["description"][:40] for entry in entries]


# ---------------------------------------------------------------------------------------------------------
# Java vectors


@pytest.mark.parametrize("position", range(len(seckey_vector_ids())), ids=seckey_vector_ids())
def test_java_seckey_answer_is_reproduced_and_verifies(position: int) -> None:
    entry = auth_vectors()["seckey_answers"][position]
    secret_default, nonce, digest = inputs()
    secret = bytes.fromhex(entry.get("secret_hex", secret_default.hex()))
    answer = bytes.fromhex(entry["answer_hex"])
    old = entry["code"] == SECKEY_OLD_MD5

    assert compute_secret_answer(secret, nonce, digest, entry["code"], **pbkdf2_kwargs(entry)) == answer
    if not old:
        assert answer[0] == entry["code"]
    if "mac_hex" in entry:
        assert answer[0 if old else 1 :].hex() == entry["mac_hex"]
    assert verify_secret_answer(secret, nonce, digest, answer, old_format=old)
    assert not verify_secret_answer(secret + b"x", nonce, digest, answer, old_format=old)
    assert not verify_secret_answer(secret, nonce[::-1], digest, answer, old_format=old)
    assert not verify_secret_answer(secret, nonce, digest[:-1] + b"\x00", answer, old_format=old)
    assert not verify_secret_answer(secret, nonce, digest, answer[:-1] + bytes([answer[-1] ^ 1]), old_format=old)


def test_java_vectors_cover_every_code_and_the_pbkdf2_quirk() -> None:
    entries = auth_vectors()["seckey_answers"]
    assert {e["code"] for e in entries} == {SECKEY_OLD_MD5, *ALL_CODES}
    assert sum(e["code"] == SECKEY_PBKDF2_HMAC_SHA1 for e in entries) == 4
    non_ascii = next(e for e in entries if "secret_hex" in e)
    secret = bytes.fromhex(non_ascii["secret_hex"])
    _, nonce, digest = inputs()
    # Without the latin-1 -> UTF-8 step the derived key (and so the answer) differs.
    naive_key = hashlib.pbkdf2_hmac("sha1", secret, bytes.fromhex(non_ascii["salt_hex"]), 10_000, 20)
    quirk_key = hashlib.pbkdf2_hmac(
        "sha1", secret.decode("latin-1").encode(), bytes.fromhex(non_ascii["salt_hex"]), 10_000, 20
    )
    assert quirk_key.hex() == non_ascii["derived_key_hex"] != naive_key.hex()
    answer = bytes.fromhex(non_ascii["answer_hex"])
    assert answer.endswith(hmac.new(quirk_key, nonce + digest, "sha1").digest())


def test_pbkdf2_vectors_carry_their_derived_keys() -> None:
    secret_default, nonce, digest = inputs()
    for entry in auth_vectors()["seckey_answers"]:
        if entry["code"] != SECKEY_PBKDF2_HMAC_SHA1:
            continue
        secret = bytes.fromhex(entry.get("secret_hex", secret_default.hex()))
        key = bytes.fromhex(entry["derived_key_hex"])
        assert len(key) * 8 == entry["key_length_bits"]
        r = Reader(bytes.fromhex(entry["answer_hex"]), 1)
        assert r.get_byte_array().hex() == entry["salt_hex"]
        assert (r.get_int4(), r.get_int4()) == (entry["iterations"], entry["key_length_bits"])
        assert r.get_byte_array() == hmac.new(key, nonce + digest, "sha1").digest()
        r.expect_end("answer")
        assert verify_secret_answer(secret, nonce, digest, bytes.fromhex(entry["answer_hex"]))


def test_spec_crosscheck_vectors_match_java() -> None:
    cross = auth_vectors()["spec_auth_md_4_2_crosscheck"]
    assert cross["K"].encode() == SPEC_K
    assert bytes.fromhex(cross["N_hex"]) == SPEC_N
    assert bytes.fromhex(cross["D_hex"]) == SPEC_D
    assert (cross["code02_hex"], cross["code13_hex"]) == (SPEC_CODE02, SPEC_CODE13)
    assert cross["code22_zero_salt_hex"] == SPEC_CODE22_ZERO_SALT


def test_printed_auth_md_vectors() -> None:
    assert compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_SHA1).hex() == "02" + SPEC_CODE02
    assert compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_HMAC_SHA256).hex() == "13" + SPEC_CODE13
    zero_salt = compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_PBKDF2_HMAC_SHA1, salt=bytes(16))
    assert zero_salt.hex() == "22" + SPEC_CODE22_ZERO_SALT
    for answer in ("02" + SPEC_CODE02, "13" + SPEC_CODE13, "22" + SPEC_CODE22_ZERO_SALT):
        assert verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, bytes.fromhex(answer))


def client_answer_entries() -> list[dict[str, Any]]:
    return [e for e in auth_vectors()["client_answers_by_challenge_version"] if e["auth"].startswith("HS_SECKEY")]


def test_client_choice_matches_java_for_each_challenge_version() -> None:
    secret, nonce, _ = inputs()
    entries = client_answer_entries()
    assert [e["challenge_version"] for e in entries] == ["2.0", "2.5", "2.6", "2.10", "2.11"]
    expected = {"2.0": SECKEY_OLD_MD5, "2.5": SECKEY_SHA1, "2.6": SECKEY_SHA1, "2.10": SECKEY_PBKDF2_HMAC_SHA1,
                "2.11": SECKEY_PBKDF2_HMAC_SHA1}
    for entry in entries:
        v = version(entry["challenge_version"])
        digest = bytes.fromhex(entry["request_digest_sha256_hex"])
        assert hashlib.sha256(bytes.fromhex(entry["request_header_body_hex"])).digest() == digest
        java_answer = bytes.fromhex(entry["answer_hex"])
        code = client_secret_code(v, v)
        assert code == expected[entry["challenge_version"]]
        old = code == SECKEY_OLD_MD5
        assert verify_secret_answer(secret, nonce, digest, java_answer, old_format=old)
        ours = make_secret_answer(secret, nonce, digest, v, v)
        if code == SECKEY_PBKDF2_HMAC_SHA1:
            # Random salt on both sides: compare the layout and cross-verify instead of the bytes.
            assert java_answer[0] == ours[0] == code
            assert len(ours) == len(java_answer) == 1 + 4 + 16 + 4 + 4 + 4 + 20
            assert ours[21:29] == java_answer[21:29] == bytes.fromhex("00002710000000a0")
            assert ours[1:21] != java_answer[1:21]
            assert verify_secret_answer(secret, nonce, digest, ours)
        else:
            assert ours == java_answer


# ---------------------------------------------------------------------------------------------------------
# Client choice rules


@pytest.mark.parametrize(
    ("challenge", "suggested", "code"),
    [
        ((2, 11), (2, 11), SECKEY_PBKDF2_HMAC_SHA1),
        ((2, 7), (2, 11), SECKEY_PBKDF2_HMAC_SHA1),
        ((2, 11), (2, 6), SECKEY_SHA1),  # the lower of the two decides
        ((2, 6), (2, 11), SECKEY_SHA1),
        ((2, 1), (2, 1), SECKEY_SHA1),
        ((2, 11), (2, 0), SECKEY_OLD_MD5),
        ((2, 0), (2, 11), SECKEY_OLD_MD5),
        ((1, 5), (1, 5), SECKEY_OLD_MD5),
        ((3, 0), (3, 0), SECKEY_PBKDF2_HMAC_SHA1),
    ],
)
def test_client_secret_code(challenge: tuple[int, int], suggested: tuple[int, int], code: int) -> None:
    assert client_secret_code(challenge, suggested) == code


def test_make_secret_answer_uses_java_pbkdf2_defaults_with_a_fresh_salt() -> None:
    first = make_secret_answer(SPEC_K, SPEC_N, SPEC_D, (2, 11), (2, 11))
    second = make_secret_answer(SPEC_K, SPEC_N, SPEC_D, (2, 11), (2, 11))
    r = Reader(first, 1)
    salt = r.get_byte_array()
    assert len(salt) == 16 and (r.get_int4(), r.get_int4()) == (10_000, 160)
    assert first[1:21] != second[1:21]
    assert first == compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_PBKDF2_HMAC_SHA1, salt=salt)
    assert make_secret_answer(SPEC_K, SPEC_N, SPEC_D, (2, 0), (2, 0)) == hashlib.md5(
        SPEC_K + SPEC_N + SPEC_D + SPEC_K
    ).digest()


# ---------------------------------------------------------------------------------------------------------
# Formulas of auth.md 4.2, independently of Java


def test_every_code_matches_the_spec_formula() -> None:
    k, n, d = b"k3y", b"\x01" * 16, b"\x02" * 20
    knd = k + n + d + k
    assert compute_secret_answer(k, n, d, SECKEY_MD5) == b"\x01" + hashlib.md5(knd).digest()
    assert compute_secret_answer(k, n, d, SECKEY_SHA1) == b"\x02" + hashlib.sha1(knd).digest()
    assert compute_secret_answer(k, n, d, SECKEY_SHA256) == b"\x03" + hashlib.sha256(knd).digest()
    assert compute_secret_answer(k, n, d, SECKEY_HMAC_SHA1) == b"\x12" + hmac.new(k, n + d, "sha1").digest()
    assert compute_secret_answer(k, n, d, SECKEY_HMAC_SHA256) == b"\x13" + hmac.new(k, n + d, "sha256").digest()
    assert compute_secret_answer(k, n, d, SECKEY_OLD_MD5) == hashlib.md5(knd).digest()
    key = hashlib.pbkdf2_hmac("sha1", k, b"salt", 5, 32)
    expected = Writer().put_byte(0x22).put_byte_array(b"salt").put_int4(5).put_int4(256)
    expected.put_byte_array(hmac.new(key, n + d, "sha1").digest())
    assert compute_secret_answer(
        k, n, d, SECKEY_PBKDF2_HMAC_SHA1, salt=b"salt", iterations=5, key_length_bits=256
    ) == expected.getvalue()


def test_pbkdf2_key_length_is_floored_to_whole_bytes() -> None:
    answer = compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_PBKDF2_HMAC_SHA1, salt=b"s", iterations=3,
                                   key_length_bits=167)
    key = hashlib.pbkdf2_hmac("sha1", SPEC_K, b"s", 3, 20)
    assert answer.endswith(hmac.new(key, SPEC_N + SPEC_D, "sha1").digest())
    assert verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer)


def test_code_zero_inside_a_new_format_answer_is_md5_like_java() -> None:
    md5 = hashlib.md5(SPEC_K + SPEC_N + SPEC_D + SPEC_K).digest()
    assert verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, b"\x00" + md5)
    assert verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, md5, old_format=True)
    assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, md5)  # first byte read as a code
    assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, b"\x01" + md5, old_format=True)


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"iterations": 1_000_001}, {"key_length_bits": 0},
                                    {"key_length_bits": 4097}, {"salt": b""}])
def test_compute_refuses_parameters_a_server_would_reject(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="PBKDF2 parameters out of range"):
        compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_PBKDF2_HMAC_SHA1, **kwargs)


def test_compute_refuses_unknown_codes() -> None:
    with pytest.raises(ValueError, match="unknown HS_SECKEY answer algorithm code 0x04"):
        compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, 0x04)


# ---------------------------------------------------------------------------------------------------------
# Malformed and hostile answers


def pbkdf2_answer(salt: bytes = b"0123456789abcdef", iterations: int = 1, bits: int = 160, mac: bytes = b"") -> bytes:
    w = Writer().put_byte(0x22).put_byte_array(salt).put_int4(iterations).put_int4(bits)
    return w.put_byte_array(mac or bytes(20)).getvalue()


@pytest.mark.parametrize(
    "answer",
    [
        b"",
        b"\x02",
        b"\x04" + bytes(20),  # unknown code
        b"\xff" + bytes(32),
        b"\x22",
        b"\x22\x00\x00",
        b"\x22\x7f\xff\xff\xff",  # salt length beyond the data
        b"\x22\xff\xff\xff\xff",  # negative salt length
        pbkdf2_answer(iterations=2**31 - 1),
        pbkdf2_answer(iterations=1_000_001),
        pbkdf2_answer(iterations=0),
        pbkdf2_answer(iterations=-5),
        pbkdf2_answer(bits=2**31 - 1),
        pbkdf2_answer(bits=4),
        pbkdf2_answer(bits=-160),
        pbkdf2_answer(salt=b""),
        pbkdf2_answer()[:-3],  # truncated MAC
    ],
)
def test_malformed_answers_are_invalid_and_cheap(answer: bytes) -> None:
    start = time.perf_counter()
    assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer)
    values = [HandleValue(300, b"HS_SECKEY", SPEC_K)]
    assert not verify_secret_against_values(values, 0, SPEC_N, SPEC_D, answer)
    assert time.perf_counter() - start < 0.5


def test_wrong_length_macs_and_trailing_bytes_are_invalid() -> None:
    for code in ALL_CODES:
        answer = compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, code, salt=bytes(16), iterations=10)
        assert verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer)
        assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer + b"\x00")
        assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer[:-1])
        assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, bytes((code,)))


def test_the_code_in_the_answer_decides_the_algorithm() -> None:
    sha1 = compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_SHA1)
    hmac_sha1 = compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_HMAC_SHA1)
    assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, bytes((SECKEY_HMAC_SHA1,)) + sha1[1:])
    assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, bytes((SECKEY_SHA1,)) + hmac_sha1[1:])


def test_pbkdf2_answer_reuses_its_own_parameters() -> None:
    answer = compute_secret_answer(SPEC_K, SPEC_N, SPEC_D, SECKEY_PBKDF2_HMAC_SHA1, salt=b"pepper", iterations=7,
                                   key_length_bits=64)
    assert verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer)
    # Same MAC, but claimed parameters changed: the recomputation no longer matches.
    tampered = bytearray(answer)
    tampered[1 + 4 + 6 + 3] = 8  # iterations 7 -> 8
    assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, bytes(tampered))


def test_empty_secret_never_verifies() -> None:
    for code in ALL_CODES:
        answer = compute_secret_answer(b"", SPEC_N, SPEC_D, code, salt=bytes(16), iterations=10)
        assert not verify_secret_answer(b"", SPEC_N, SPEC_D, answer)
    assert not verify_secret_answer(b"", SPEC_N, SPEC_D, hashlib.md5(SPEC_N + SPEC_D).digest(), old_format=True)


def test_maximum_iterations_are_accepted() -> None:
    answer = compute_secret_answer(SPEC_K, b"n", b"d", SECKEY_PBKDF2_HMAC_SHA1, salt=b"s",
                                   iterations=sa.MAX_PBKDF2_ITERATIONS, key_length_bits=8)
    assert verify_secret_answer(SPEC_K, b"n", b"d", answer)


@settings(max_examples=300, deadline=None)
@given(answer=st.binary(max_size=200), old=st.booleans())
def test_verify_never_raises_on_arbitrary_bytes(answer: bytes, old: bool) -> None:
    assert verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer, old_format=old) in (True, False)


@settings(max_examples=200, deadline=None)
@given(
    code=st.sampled_from([0x22, *range(256)]),
    salt=st.binary(max_size=20),
    iterations=st.integers(-(2**31), 2**31 - 1),
    bits=st.integers(-(2**31), 2**31 - 1),
    mac=st.binary(max_size=40),
)
def test_verify_never_raises_on_structured_garbage(code: int, salt: bytes, iterations: int, bits: int,
                                                   mac: bytes) -> None:
    answer = Writer().put_byte(code).put_byte_array(salt).put_int4(iterations).put_int4(bits)
    answer.put_byte_array(mac)
    assert not verify_secret_answer(SPEC_K, SPEC_N, SPEC_D, answer.getvalue())


# ---------------------------------------------------------------------------------------------------------
# VERIFY_CHALLENGE against handle values (auth.md 7)


def seckey(index: int, secret: bytes, type_: bytes = b"HS_SECKEY") -> HandleValue:
    return HandleValue(index, type_, secret)


def test_values_index_zero_tries_every_seckey_value() -> None:
    answer = compute_secret_answer(b"second", SPEC_N, SPEC_D, SECKEY_HMAC_SHA256)
    values = [seckey(300, b"first"), seckey(301, b"second"), HandleValue(1, b"URL", b"second")]
    assert verify_secret_against_values(values, 0, SPEC_N, SPEC_D, answer)
    assert verify_secret_against_values(values, 301, SPEC_N, SPEC_D, answer)
    assert not verify_secret_against_values(values, 300, SPEC_N, SPEC_D, answer)
    assert not verify_secret_against_values(values, 1, SPEC_N, SPEC_D, answer)  # not HS_SECKEY
    assert not verify_secret_against_values(values, 302, SPEC_N, SPEC_D, answer)
    assert not verify_secret_against_values([], 0, SPEC_N, SPEC_D, answer)


def test_values_use_has_type() -> None:
    answer = compute_secret_answer(b"s", SPEC_N, SPEC_D, SECKEY_SHA1)
    assert verify_secret_against_values([seckey(5, b"s", b"hs_seckey")], 0, SPEC_N, SPEC_D, answer)
    assert verify_secret_against_values([seckey(5, b"s", b"HS_SECKEY.sub")], 5, SPEC_N, SPEC_D, answer)
    assert not verify_secret_against_values([seckey(5, b"s", b"HS_SECKEYX")], 0, SPEC_N, SPEC_D, answer)
    assert not verify_secret_against_values([seckey(5, b"s", b"HS_PUBKEY")], 5, SPEC_N, SPEC_D, answer)


def test_values_old_format_and_pbkdf2() -> None:
    old = compute_secret_answer(b"s", SPEC_N, SPEC_D, SECKEY_OLD_MD5)
    assert verify_secret_against_values([seckey(1, b"s")], 1, SPEC_N, SPEC_D, old, old_format=True)
    assert not verify_secret_against_values([seckey(1, b"s")], 1, SPEC_N, SPEC_D, old)
    pbkdf2 = compute_secret_answer(b"s", SPEC_N, SPEC_D, SECKEY_PBKDF2_HMAC_SHA1, iterations=10)
    assert verify_secret_against_values([seckey(1, b"x"), seckey(2, b"s")], 0, SPEC_N, SPEC_D, pbkdf2)


def test_java_answer_verifies_against_vector_values() -> None:
    secret, nonce, digest = inputs()
    values = [seckey(300, b"wrong"), seckey(301, secret)]
    for entry in auth_vectors()["seckey_answers"]:
        if "secret_hex" in entry:
            continue
        old = entry["code"] == SECKEY_OLD_MD5
        answer = bytes.fromhex(entry["answer_hex"])
        assert verify_secret_against_values(values, 0, nonce, digest, answer, old_format=old)
        assert not verify_secret_against_values(values, 300, nonce, digest, answer, old_format=old)

"""Session cryptography (hdlserver.auth.session_crypto) against auth.md 9 / wire.md 11.4 and the Java vectors."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hdlserver.auth.session_crypto import (
    ALG_AES,
    ALG_DES,
    ALG_DESEDE,
    MAX_DH_PRIME_BITS,
    SessionError,
    algorithm_from_config,
    decrypt_message,
    dh_server_keypair,
    dh_shared_secret,
    encrypt_message,
    legacy_des_key_from_dh,
    mac_credential,
    session_key_from_dh,
    setup_response_data,
    verify_mac,
)
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.credential import HS_MAC, HS_SIGNED, Credential, decode_credential, encode_credential
from hdlserver.wire.envelope import decode_envelope
from hdlserver.wire.message import decode_message
from hdlserver.wire.pubkey import DHPublicKeyData, decode_public_key, encode_public_key

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"

# RFC 2409 Oakley group 2, the group Java clients use (auth.md 9.3).
OAKLEY2_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)
SESSION_KEY = bytes(range(32))
HEADER_BODY = bytes.fromhex(
    "0000000100000000d9000000ffff00006553ff10000000250000000a544553542f7665632d31000000020000000100000002"
    "000000010000000355524c")


def session_vectors() -> dict[str, Any]:
    path = VECTORS / "sessions" / "session_vectors.json"
    if not path.is_file():
        pytest.skip(f"Java test vectors not available at {VECTORS}")
    return json.loads(path.read_text())


def version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def vector_ids(section: str, key: str) -> list[str]:
    try:
        return [str(entry[key]) for entry in session_vectors()[section]]
    except pytest.skip.Exception:
        return ["vectors-missing"]


def vector_entry(section: str, key: str, value: str) -> dict[str, Any]:
    for entry in session_vectors()[section]:
        if str(entry[key]) == value:
            return entry
    raise AssertionError(f"no {section} vector {value}")


def flip_bit(data: bytes, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------
# Algorithm codes


def test_algorithm_codes_and_config_names() -> None:
    assert (ALG_DES, ALG_DESEDE, ALG_AES) == (1, 2, 3)
    assert algorithm_from_config("aes") == ALG_AES
    assert algorithm_from_config("des") == ALG_DES
    assert algorithm_from_config("DESede") == ALG_DESEDE
    with pytest.raises(ValueError, match="blowfish"):
        algorithm_from_config("blowfish")


# ---------------------------------------------------------------------------------------------------
# HS_MAC (wire.md 11.4)


@pytest.mark.parametrize("ver", vector_ids("hs_mac", "message_version"))
def test_hs_mac_matches_java(ver: str) -> None:
    entry = vector_entry("hs_mac", "message_version", ver)
    key = bytes.fromhex(session_vectors()["inputs"]["session_key_hex"])
    env = decode_envelope(bytes.fromhex(entry["envelope_hex"]))
    assert env.version == version(ver)
    header_body = bytes.fromhex(entry["header_and_body_hex"])

    cred = mac_credential(key, header_body, env.version, env.suggested, env.session_id, env.request_id, 3)
    encoded = encode_credential(cred)
    assert (len(encoded).to_bytes(4, "big") + encoded).hex() == entry["credential_hex"]
    assert (header_body + len(encoded).to_bytes(4, "big") + encoded).hex() == entry["message_hex"]

    java = decode_message(bytes.fromhex(entry["message_hex"]), env.version)
    assert java.credential is not None and java.credential.type == HS_MAC and java.credential.signer_index == 3
    args = (java.header_body, env.version, env.suggested, env.session_id, env.request_id)
    assert verify_mac(key, java.credential, *args)
    bad_sig = replace(java.credential, signature=flip_bit(java.credential.signature, 5))
    assert not verify_mac(key, bad_sig, *args)
    assert not verify_mac(key, java.credential, flip_bit(java.header_body, 200), *args[1:])
    assert not verify_mac(flip_bit(key, 9), java.credential, *args)


def test_hs_mac_digest_names_per_version() -> None:
    def cred(v: tuple[int, int]) -> Credential:
        return mac_credential(SESSION_KEY, HEADER_BODY, v, (2, 11), 7, 1234, 3)

    assert cred((2, 11)).digest_alg == b"HMAC-SHA256"
    assert cred((2, 7)).digest_alg == b"HMAC-SHA256"
    assert cred((2, 6)).digest_alg == b"SHA1"
    assert cred((2, 5)).digest_alg == b"\x02"
    assert cred((2, 4)).digest_alg == b"\x02"
    assert cred((2, 11)).type == HS_MAC


def test_hs_mac_constructions_by_formula() -> None:
    """wire.md 11.4 formulas, independent of the vectors."""
    k, hb = SESSION_KEY, HEADER_BODY
    p211 = bytes([2, 11, 2, 11]) + (7).to_bytes(4, "big") + (1234).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert mac_credential(k, hb, (2, 11), (2, 11), 7, 1234, 3).signature == hmac.new(k, p211 + hb, "sha256").digest()
    p27 = bytes([2, 7]) + (7).to_bytes(4, "big") + (1234).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert mac_credential(k, hb, (2, 7), (2, 11), 7, 1234, 3).signature == hmac.new(k, p27 + hb, "sha256").digest()
    broken = hashlib.sha1(k[:4] + hb + k + bytes(len(k) + 10)).digest()
    assert mac_credential(k, hb, (2, 6), (2, 11), 7, 1234, 3).signature == broken
    assert mac_credential(k, hb, (2, 5), (2, 11), 7, 1234, 3).signature == broken
    assert mac_credential(k, hb, (2, 4), (2, 11), 7, 1234, 3).signature == hashlib.sha1(k + hb + k).digest()


def test_hmac_covers_the_envelope_prefix() -> None:
    cred = mac_credential(SESSION_KEY, HEADER_BODY, (2, 11), (2, 11), 7, 1234, 3)
    assert verify_mac(SESSION_KEY, cred, HEADER_BODY, (2, 11), (2, 11), 7, 1234)
    assert not verify_mac(SESSION_KEY, cred, HEADER_BODY, (2, 11), (2, 11), 8, 1234)  # session id
    assert not verify_mac(SESSION_KEY, cred, HEADER_BODY, (2, 11), (2, 11), 7, 1235)  # request id
    assert not verify_mac(SESSION_KEY, cred, HEADER_BODY, (2, 11), (2, 10), 7, 1234)  # suggested version
    assert not verify_mac(SESSION_KEY, replace(cred, signer_index=4), HEADER_BODY, (2, 11), (2, 11), 7, 1234)


@pytest.mark.parametrize(
    ("digest_alg", "mac"),
    [
        (b"HMAC-SHA1", lambda k, d: hmac.new(k, d, "sha1").digest()),
        (b"hmac_sha256", lambda k, d: hmac.new(k, d, "sha256").digest()),
        (b"\x13", lambda k, d: hmac.new(k, d, "sha256").digest()),
        (b"\x12", lambda k, d: hmac.new(k, d, "sha1").digest()),
        (b"SHA-1", lambda k, d: hashlib.sha1(k + d + k).digest()),
        (b"SHA-256", lambda k, d: hashlib.sha256(k + d + k).digest()),
        (b"SHA256", lambda k, d: hashlib.sha256(k + d + k).digest()),
        (b"MD5", lambda k, d: hashlib.md5(k + d + k).digest()),
        (b"\x01", lambda k, d: hashlib.md5(k + d + k).digest()),
    ],
)
def test_verify_accepts_every_digest_form_java_accepts(digest_alg: bytes, mac: Any) -> None:
    prefix = bytes([2, 11, 2, 11]) + (7).to_bytes(4, "big") + (1234).to_bytes(4, "big") + (3).to_bytes(4, "big")
    cred = Credential(signer_index=3, type=HS_MAC, digest_alg=digest_alg,
                      signature=mac(SESSION_KEY, prefix + HEADER_BODY))
    assert verify_mac(SESSION_KEY, cred, HEADER_BODY, (2, 11), (2, 11), 7, 1234)


def test_verify_2_6_uses_the_named_digest_in_the_broken_construction() -> None:
    data = SESSION_KEY[:4] + HEADER_BODY + SESSION_KEY + bytes(len(SESSION_KEY) + 10)
    cred = Credential(signer_index=3, type=HS_MAC, digest_alg=b"SHA-256", signature=hashlib.sha256(data).digest())
    assert verify_mac(SESSION_KEY, cred, HEADER_BODY, (2, 6), (2, 11), 7, 1234)
    # Java's 2.5/2.6 path digests without HMAC: an HMAC name there never verifies.
    hmac_cred = replace(cred, digest_alg=b"HMAC-SHA256", signature=hmac.new(SESSION_KEY, data, "sha256").digest())
    assert not verify_mac(SESSION_KEY, hmac_cred, HEADER_BODY, (2, 6), (2, 11), 7, 1234)


def test_verify_rejects_wrong_type_unknown_digest_and_empty_signature() -> None:
    good = mac_credential(SESSION_KEY, HEADER_BODY, (2, 11), (2, 11), 7, 1234, 3)
    args = (HEADER_BODY, (2, 11), (2, 11), 7, 1234)
    assert verify_mac(SESSION_KEY, good, *args)
    assert not verify_mac(SESSION_KEY, replace(good, type=HS_SIGNED), *args)
    assert not verify_mac(SESSION_KEY, replace(good, digest_alg=b"SHA-512"), *args)
    assert not verify_mac(SESSION_KEY, replace(good, digest_alg=b"\x22"), *args)  # PBKDF2 is no MAC
    assert not verify_mac(SESSION_KEY, replace(good, digest_alg=b""), *args)
    assert not verify_mac(SESSION_KEY, replace(good, signature=b""), *args)
    assert not verify_mac(SESSION_KEY, replace(good, signature=good.signature[:-1]), *args)


# ---------------------------------------------------------------------------------------------------
# Encryption (auth.md 9.7)


@pytest.mark.parametrize("name", vector_ids("encryption", "name"))
def test_encryption_matches_java(name: str) -> None:
    entry = vector_entry("encryption", "name", name)
    key = bytes.fromhex(session_vectors()["inputs"]["session_key_hex"])
    session_version = version(entry["session_version"])
    plaintext = bytes.fromhex(entry["plaintext_hex"])
    transmitted = bytes.fromhex(entry["transmitted_hex"])
    iv = bytes.fromhex(entry["iv_hex"]) if "iv_hex" in entry else None

    assert encrypt_message(entry["alg_code"], key, plaintext, session_version, iv=iv) == transmitted
    assert decrypt_message(entry["alg_code"], key, transmitted, session_version) == plaintext
    if "key_used_hex" in entry:  # the cipher only uses this prefix of the session key
        used = bytes.fromhex(entry["key_used_hex"])
        assert encrypt_message(entry["alg_code"], used, plaintext, session_version, iv=iv) == transmitted
    if "random_iv_example_hex" in entry:
        example = bytes.fromhex(entry["random_iv_example_hex"])
        assert decrypt_message(entry["alg_code"], key, example, session_version) == plaintext


@pytest.mark.parametrize(("alg", "block"), [(ALG_AES, 16), (ALG_DES, 8), (ALG_DESEDE, 8)])
def test_random_iv_layout(alg: int, block: int) -> None:
    a = encrypt_message(alg, SESSION_KEY, HEADER_BODY, (2, 11))
    b = encrypt_message(alg, SESSION_KEY, HEADER_BODY, (2, 11))
    assert a[:block] != b[:block]  # a fresh IV each time
    assert (len(a) - block) % block == 0 and len(a) - block > len(HEADER_BODY)
    assert decrypt_message(alg, SESSION_KEY, a, (2, 11)) == HEADER_BODY
    legacy = encrypt_message(alg, SESSION_KEY, HEADER_BODY, (2, 3))
    assert len(legacy) == (len(HEADER_BODY) // block + 1) * block  # no IV before 2.4
    assert decrypt_message(alg, SESSION_KEY, legacy, (2, 3)) == HEADER_BODY


@pytest.mark.parametrize(("alg", "block"), [(ALG_AES, 16), (ALG_DES, 8), (ALG_DESEDE, 8)])
def test_decrypt_failures_raise_session_error(alg: int, block: int) -> None:
    good = encrypt_message(alg, SESSION_KEY, HEADER_BODY, (2, 11), iv=bytes(block))
    bad_inputs = [
        b"",  # nothing
        good[: block - 1],  # truncated IV
        good[:block],  # IV only
        good[:-1],  # not a whole number of blocks
        good[: block + block // 2],
    ]
    for data in bad_inputs:
        with pytest.raises(SessionError) as err:
            decrypt_message(alg, SESSION_KEY, data, (2, 11))
        assert err.value.response_code == ResponseCode.SESSION_FAILED == 501
        assert err.value.message.startswith("Exception decrypting request with session key")
    legacy = encrypt_message(alg, SESSION_KEY, HEADER_BODY, (2, 3))
    for data in (b"", legacy[:-1], legacy[: block // 2]):
        with pytest.raises(SessionError):
            decrypt_message(alg, SESSION_KEY, data, (2, 3))


@pytest.mark.parametrize("last_byte", [0x00, 0x11, 0xFF])
def test_bad_padding_block_is_rejected(last_byte: int) -> None:
    block = bytes(15) + bytes([last_byte])  # pad length 0 or longer than the block
    encryptor = Cipher(algorithms.AES(SESSION_KEY[:16]), modes.CBC(bytes(16))).encryptor()
    data = bytes(16) + encryptor.update(block) + encryptor.finalize()
    with pytest.raises(SessionError, match="bad padding"):
        decrypt_message(ALG_AES, SESSION_KEY, data, (2, 11))


def test_cipher_argument_errors() -> None:
    with pytest.raises(SessionError, match="Invalid encryption algorithm code"):
        encrypt_message(9, SESSION_KEY, b"x", (2, 11))
    with pytest.raises(SessionError, match="too short"):
        encrypt_message(ALG_DESEDE, SESSION_KEY[:16], b"x", (2, 11))
    with pytest.raises(ValueError, match="IV must be 16"):
        encrypt_message(ALG_AES, SESSION_KEY, b"x", (2, 11), iv=bytes(8))
    with pytest.raises(ValueError, match="ECB"):
        encrypt_message(ALG_AES, SESSION_KEY, b"x", (2, 3), iv=bytes(16))


# ---------------------------------------------------------------------------------------------------
# Diffie-Hellman (auth.md 9.3, 9.4)


def dh_vectors() -> dict[str, Any]:
    return session_vectors()["dh"]


def test_dh_vector_group_is_oakley_2() -> None:
    dh = dh_vectors()
    assert int(dh["p_hex"], 16) == OAKLEY2_P and dh["g"] == 2


def test_dh_shared_secret_matches_java_from_both_sides() -> None:
    dh = dh_vectors()
    x_s, x_c = int(dh["x_server_hex"], 16), int(dh["x_client_hex"], 16)
    y_s, y_c = int(dh["y_server_hex"], 16), int(dh["y_client_hex"], 16)
    assert pow(2, x_s, OAKLEY2_P) == y_s and pow(2, x_c, OAKLEY2_P) == y_c
    z = dh_shared_secret(y_c, x_s, OAKLEY2_P)
    assert z.hex() == dh["z_hex"] and len(z) == 128
    assert dh_shared_secret(y_s, x_c, OAKLEY2_P) == z


def test_dh_public_key_encodings_match_java() -> None:
    dh = dh_vectors()
    client = decode_public_key(bytes.fromhex(dh["client_DH_PUB_KEY_hex"]))
    assert client == DHPublicKeyData(y=int(dh["y_client_hex"], 16), p=OAKLEY2_P, g=2)
    server = DHPublicKeyData(y=int(dh["y_server_hex"], 16), p=OAKLEY2_P, g=2)
    assert encode_public_key(server).hex() == dh["server_DH_PUB_KEY_hex"]


@pytest.mark.parametrize("alg", [ALG_DES, ALG_DESEDE, ALG_AES])
def test_session_keys_match_java_get_key_from_dh(alg: int) -> None:
    dh = dh_vectors()
    z = bytes.fromhex(dh["z_hex"])
    java = bytes.fromhex(dh[f"getKeyFromDH_alg{alg}_hex"])
    assert java[:4] == alg.to_bytes(4, "big")  # int4 algorithm code || key; the session keeps the key
    assert session_key_from_dh(z, alg) == java[4:]
    assert len(java[4:]) == {ALG_DES: 8, ALG_DESEDE: 24, ALG_AES: 32}[alg]


def test_legacy_des_key_matches_java() -> None:
    dh = dh_vectors()
    assert legacy_des_key_from_dh(bytes.fromhex(dh["z_hex"])).hex() == dh["getDESKeyFromDH_legacy_hex"]


def test_setup_response_data_matches_java() -> None:
    dh = dh_vectors()
    server = DHPublicKeyData(y=int(dh["y_server_hex"], 16), p=OAKLEY2_P, g=2)
    assert setup_response_data(ALG_AES, server, (2, 11)).hex() == dh["session_setup_response_data_hex_aes"]
    # Clients older than 2.4 get the bare DH_PUB_KEY (and assume DES).
    assert setup_response_data(ALG_AES, server, (2, 3)).hex() == dh["server_DH_PUB_KEY_hex"]
    assert setup_response_data(ALG_DES, server, (2, 4))[:4] == b"\x00\x00\x00\x01"


def test_auth_md_9_4_verified_example() -> None:
    z = bytes.fromhex("cffe837c412cb3b2181e006fd4204508f1eadaab7f59ba2e79949f676e865105") + bytes(96)
    assert session_key_from_dh(z, ALG_AES).hex() == (
        "cffe837c412cb3b2181e006fd4204508f1eadaab7f59ba2e79949f676e865105")
    assert session_key_from_dh(z, ALG_DES).hex() == "cefe837c402cb3b3"


def test_des_keys_have_odd_parity() -> None:
    z = bytes(range(0, 256, 2))[:128]
    for alg in (ALG_DES, ALG_DESEDE):
        key = session_key_from_dh(z, alg)
        assert all(bin(b).count("1") % 2 == 1 for b in key)
        assert all(k & 0xFE == b & 0xFE for k, b in zip(key, z, strict=False))


def test_aes_key_strips_leading_zeros() -> None:
    tail = bytes(range(1, 41))
    z = bytes(88) + tail  # 128 bytes, the secret itself 40 bytes long
    assert session_key_from_dh(z, ALG_AES) == tail[:32]
    short = bytes(96) + bytes(range(1, 33))  # exactly 32 significant bytes
    assert session_key_from_dh(short, ALG_AES) == bytes(range(1, 33))
    small = bytes(100) + bytes(range(1, 29))  # only 28 significant bytes: the key keeps 4 zeros
    assert session_key_from_dh(small, ALG_AES) == bytes(4) + bytes(range(1, 29))
    with pytest.raises(SessionError):
        session_key_from_dh(z, 7)


def test_server_keypair_and_agreement_with_a_client() -> None:
    rng = random.Random(1)
    x, y = dh_server_keypair(OAKLEY2_P, 2, rng)
    assert 2 <= x <= OAKLEY2_P - 2 and 250 <= x.bit_length() <= 256
    assert y == pow(2, x, OAKLEY2_P)
    client_x, client_y = dh_server_keypair(OAKLEY2_P, 2, rng)
    assert dh_shared_secret(client_y, x, OAKLEY2_P) == dh_shared_secret(y, client_x, OAKLEY2_P)
    assert dh_server_keypair(OAKLEY2_P, 2)[0] != dh_server_keypair(OAKLEY2_P, 2)[0]  # secrets by default


class Constant:
    def __init__(self, *values: int) -> None:
        self.values = list(values)
        self.asked: list[int] = []

    def getrandbits(self, k: int) -> int:
        self.asked.append(k)
        return self.values.pop(0)


@pytest.mark.parametrize(("p_bits", "exponent_bits"), [(512, 256), (1024, 256), (2048, 256), (3072, 256),
                                                         (4096, 384), (8192, 512)])
def test_private_exponent_sizes(p_bits: int, exponent_bits: int) -> None:
    p = (1 << (p_bits - 1)) + 1
    rng = Constant(0, 1, 12345)  # 0 and 1 are redrawn
    assert dh_server_keypair(p, 2, rng) == (12345, pow(2, 12345, p))
    assert rng.asked == [exponent_bits] * 3


def test_server_keypair_small_group_keeps_exponent_below_p() -> None:
    p = (1 << 511) + 187  # odd 512-bit number; primality is the client's business
    for seed in range(20):
        x, _ = dh_server_keypair(p, 2, random.Random(seed))
        assert 2 <= x <= p - 2


@pytest.mark.parametrize(
    ("p", "g"),
    [
        (OAKLEY2_P - 1, 2),  # even
        (23, 5),  # tiny
        ((1 << 400) + 1, 2),  # below 512 bits
        ((1 << (MAX_DH_PRIME_BITS + 1)) + 1, 2),  # too large
        (OAKLEY2_P, 1),
        (OAKLEY2_P, 0),
        (OAKLEY2_P, OAKLEY2_P - 1),
        (OAKLEY2_P, OAKLEY2_P),
    ],
)
def test_server_keypair_rejects_bad_groups(p: int, g: int) -> None:
    with pytest.raises(SessionError) as err:
        dh_server_keypair(p, g)
    assert err.value.response_code == 501


@pytest.mark.parametrize("peer_y", [0, 1, OAKLEY2_P - 1, OAKLEY2_P, OAKLEY2_P + 5, -3])
def test_shared_secret_rejects_out_of_range_public_values(peer_y: int) -> None:
    with pytest.raises(SessionError, match="DH public value out of range") as err:
        dh_shared_secret(peer_y, 12345, OAKLEY2_P)
    assert err.value.response_code == 501


def test_mac_round_trip_with_encoded_credential() -> None:
    cred = mac_credential(SESSION_KEY, HEADER_BODY, (2, 10), (2, 11), 9, 5, 17)
    back = decode_credential(encode_credential(cred))
    assert back == cred
    assert verify_mac(SESSION_KEY, back, HEADER_BODY, (2, 10), (2, 11), 9, 5)

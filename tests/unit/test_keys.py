"""Java key encodings, key files, PEM and signatures (hdlserver.auth.keys) against the Java-made vectors."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import shutil
import stat
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlserver.auth import keys
from hdlserver.auth.keys import (
    DHPublicKey,
    KeyEncryption,
    PassphraseRequiredError,
    WrongPassphraseError,
)
from hdlserver.errors import DecodeError, KeyFileError
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.pubkey import java_bigint_bytes

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
HANDLE_JAVA = Path(__file__).resolve().parents[2].parent / "shared" / "handle-java"
PASS = b"vector-pass"
NON_ASCII_PASS = "pässwörd-ü".encode()  # the UTF-8 bytes a user typing it produces

# The vector DSA key (keys/dsa1024_priv_raw_encoding.bin) encrypted with passphrase "vector-pass" by the
# real Java ``Util.encrypt(raw, pass, type)`` for the legacy types, which hdl-keygen no longer writes.
JAVA_DSA_ENCRYPTED = {
    KeyEncryption.DES_ECB: (
        "00000000610bfdb201816b844dc50c0ec41fe91e416ebbec6e43e4c9c49a50d7e85a6f95d1f2e6914da7e91d69541007"
        "f0bd94a6d633016222154891af5ecad4ffd5fec303d43e8375c0101a3aa3df2c01f3e3b66bd87bd363fd93d760eb838b"
        "b8649995a0f3f820bb0938169ae87c9b77a436a65a5c31987b2b3efc2d949b21a9039ae8f850ca70a1a821cc162f2b6e"
        "a4150dda08f8527f113be7fb60320003fd488b6a4ca496d0353379385d310566fda19af0b00035ca27e8204c4cb9e794"
        "09a6a56b3d8e6170b42c9c9f1f482a8bc99e93d15944cd063eb32e0051c8a8dc2c52323c2aebb6c42346fbe30230cc1e"
        "0e145a6197dc2a50fa1d87311bcc9733f90d6d4cbb4f6fed2198a03a01b7ac3a9d911fe14e2e349b7eee386f88da90f0"
        "55f6ace2ab8ddbbf0d9088ba980fc952585e01c8c7b9884212157ba35576a00785039c63a304ca52e5d0f072d152a1af"
        "9b1b5b3d"
    ),
    KeyEncryption.DES_CBC: (
        "000000029e33eeb2e4b13360a85d566dce6beaeb1eac36c4dab82f12c1fb2211c5c7eb1cbe976bfef253a2ad18a0a8e7"
        "198735c5764b2e3a0b3d0fea1f7557be97759eec5e11593f9141e23e086c8c39ba28766a3ebec8403b436193c48bd67e"
        "433919f30aca3f1322c8614a97737f36ec81d301d892f4bb99b6828ba92b7b9f6d1ddad22adb2837bd679f3c1326bd5c"
        "7973282b88d54d195c1c3d9473bcc245ca4160606fa7546becaee276d9e6fb3d1530a3fde56e8f20fa93d3593f9522a0"
        "95284ddf9b830b8b9b0c8c4af7d20fb8c290abe47fec2368b231a378dbaccf9ab6ef184f9e7b0f9bb46cb28a406dd94e"
        "6a606dabec6377b4c183912306d6ce1c21115fb55635c03f1b330ab3bba66c77d3791e89e434302faf80bfd210f7f334"
        "a044a95c0089605a9e18495f8356254c191bf9c7aa65d5b632cab2c7577ea8e92ee3b37d86674a057223ce3c7b6dcff7"
        "19b134eef12b87365e7c4139"
    ),
    KeyEncryption.PBKDF2_DESEDE_CBC: (
        "0000000300000010b7220e55280f52e2f79fae954a90194200002710000000c000000008385055e34a48c20900000150"
        "602b02220f68dc6c69ce48cc92cd5717cf165402f3423f120e279555e423ad50a4e4a4445f2f1161cc141438e57f069a"
        "613bf220d90633d707994beff2b886e442326ccabd485aa86328ddd076da2ae5a2f0a17f021f976412521b629b083020"
        "249d891f27bc440b466e398d2ea24ffd1735d336de38b2bb057ac722c23096c70a084bc529ddffe641b4971e034245dd"
        "a3b56460c5d1a9d2f7b692a49515c7171b682653869ed5071dc09db383f6c440954634383c89f58bae30b449121910a0"
        "d976d4bc18637d1082cff844240206505abb8bb28409ebe1f80c19a61a6483dea7f9991f2d63ce0de539d1ce44d89e4c"
        "a1035488204c8c0f4f7f90002a3c16fcaf64b4a0a945a4f7632ed477075043a70fcf54dfa8ccf2799170cbe57ec87b4b"
        "ddf7cdf1b1340b956487b06ea0b7dda2a2574ad4ccf1ee73751d9350b63ff22e67b295aa2e03321b6762a2981b083140"
    ),
}
# Same key, type 4, written by Java with the non-ASCII passphrase NON_ASCII_PASS (checks the PBKDF2 quirk).
JAVA_DSA_NON_ASCII_TYPE4 = (
    "000000040000001039c3a8e9cb163837e7e3a155eb13a6a2000027100000008000000010e82bb98c2b40fc217702b519"
    "5aa45fe900000150a65e76d62b85d342d1345fa58bf8b3f44f0591c0dd3a24fb0bcad768cc6335cf8df1a8a2cedf51ea"
    "16485f36d95a414fe2bd0e06f79467e5ca5cd4782f766d2f65b4e8b5d1d0d7beef303d401d5269ef61818f5ed5460560"
    "9e86b9904d48591057507368283494690d6a5e434ccf78a208f176e1f4b0e0fc3f85a653978e40f1629ddc4ad1e47c1d"
    "4961dffab7f6cc7588aed9dd0616643da9d54b498793630be4321535bfae9cbe373fe05c2531d7435cf0c713e4f54d1e"
    "3234447018cc4a4ad8cba55e6694f630850f3abecb0b7b31b362fae62b7224fa94eab27d9331155dad041664e4c03d5d"
    "985958ef375389f3060c65b1f01abc385f3af578665eec4dc8482eb33be00515c41500aa488b5861b767346833d776b6"
    "d5381b20691d3f5d9348c0bc2bbe97c787feb22db9b70b988e67b168b4dd2ded7c6f266bc3a32dc506e48520815f6d37"
    "cd8e4eebd82fd6fb"
)


def vectors_dir() -> Path:
    if not VECTORS.is_dir():
        pytest.skip(f"Java test vectors not available at {VECTORS}")
    return VECTORS


def key_entries() -> list[dict[str, Any]]:
    if not VECTORS.is_dir():
        return []
    return json.loads((VECTORS / "keys" / "keys.json").read_text())


def key_file(name: str) -> bytes:
    return (vectors_dir() / "keys" / name).read_bytes()


KEY_NAMES = [entry["name"] for entry in key_entries()] or ["rsa2048", "dsa1024"]


@pytest.fixture(params=KEY_NAMES)
def entry(request: pytest.FixtureRequest) -> dict[str, Any]:
    for item in key_entries():
        if item["name"] == request.param:
            return item
    pytest.skip(f"Java test vectors not available at {VECTORS}")


def pem_private(entry: dict[str, Any]) -> keys.PrivateKey:
    return serialization.load_pem_private_key(key_file(entry["priv_pem"]), None)  # type: ignore[return-value]


def dsa_vector_raw() -> bytes:
    return key_file("dsa1024_priv_raw_encoding.bin")


def rsa_vector_key() -> rsa.RSAPrivateKey:
    key = keys.read_private_key_file(key_file("rsa2048_priv_plain.bin"), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def dsa_vector_key() -> dsa.DSAPrivateKey:
    key = keys.read_private_key_file(key_file("dsa1024_priv_plain.bin"), None)
    assert isinstance(key, dsa.DSAPrivateKey)
    return key


# ---------------------------------------------------------------------------------------------------------
# Java-written key files


def test_plain_and_encrypted_java_files_equal_their_pem_twin(entry: dict[str, Any]) -> None:
    expected = pem_private(entry).private_numbers()
    plain = key_file(entry["priv_plain"])
    enc = key_file(entry["priv_enc"])
    assert keys.key_file_encryption(plain) == entry["priv_plain_first_int4_alg"] == KeyEncryption.NONE
    assert keys.key_file_encryption(enc) == entry["priv_enc_first_int4_alg"] == KeyEncryption.PBKDF2_AES_CBC
    assert not keys.is_encrypted_key_file(plain)
    assert keys.is_encrypted_key_file(enc)
    assert keys.read_private_key_file(plain, None).private_numbers() == expected
    assert keys.read_private_key_file(enc, entry["passphrase"].encode()).private_numbers() == expected
    # A passphrase given for a plain file is simply not needed.
    assert keys.read_private_key_file(plain, b"unused").private_numbers() == expected


def test_raw_private_encoding_round_trips_byte_exact(entry: dict[str, Any]) -> None:
    raw = key_file(entry["priv_raw_encoding"])
    assert Reader(raw).get_utf8() == entry["priv_raw_encoding_tag"].encode()
    key = keys.decode_private_key(raw)
    assert key.private_numbers() == pem_private(entry).private_numbers()
    assert keys.encode_private_key(key) == raw
    # A plain key file is the type followed by exactly that encoding.
    assert key_file(entry["priv_plain"]) == b"\x00\x00\x00\x01" + raw


def test_public_key_encoding_is_byte_identical_to_java(entry: dict[str, Any]) -> None:
    pub_bin = key_file(entry["pub"])
    pem_pub = serialization.load_pem_public_key(key_file(entry["pub_pem"]))
    decoded = keys.public_key_from_bytes(pub_bin)
    assert decoded.public_numbers() == pem_pub.public_numbers()  # type: ignore[union-attr]
    assert keys.public_key_to_bytes(decoded) == pub_bin
    assert keys.public_key_to_bytes(pem_private(entry).public_key()) == pub_bin  # type: ignore[arg-type]
    assert Reader(pub_bin).get_utf8() == entry["pub_tag"].encode()


def test_rsa_public_key_keeps_javas_four_trailing_zero_bytes() -> None:
    pub_bin = key_file("rsa2048_pub.bin")
    assert pub_bin.endswith(b"\x00" * 4)
    nums = rsa_vector_key().public_key().public_numbers()
    expected = (
        Writer()
        .put_utf8(b"RSA_PUB_KEY")
        .put_int2(0)
        .put_byte_array(java_bigint_bytes(nums.e))
        .put_byte_array(java_bigint_bytes(nums.n))
        .put_int4(0)
        .getvalue()
    )
    assert keys.public_key_to_bytes(rsa_vector_key().public_key()) == expected == pub_bin


def test_keys_match_pairs_only(entry: dict[str, Any]) -> None:
    other = "dsa1024_pub.bin" if entry["algorithm"] == "RSA" else "rsa2048_pub.bin"
    priv = keys.read_private_key_file(key_file(entry["priv_plain"]), None)
    assert keys.keys_match(priv, keys.public_key_from_bytes(key_file(entry["pub"])))
    assert not keys.keys_match(priv, keys.public_key_from_bytes(key_file(other)))
    fresh = keys.generate_key_pair(entry["algorithm"], 1024)
    assert not keys.keys_match(priv, fresh.public_key())


def test_pem_twins_are_the_der_java_wrote(entry: dict[str, Any]) -> None:
    key = keys.read_private_key_file(key_file(entry["priv_plain"]), None)
    java_pub = serialization.load_pem_public_key(key_file(entry["pub_pem"]))
    ours = keys.public_key_from_pem(keys.public_key_to_pem(key.public_key()))
    assert ours.public_numbers() == java_pub.public_numbers()  # type: ignore[union-attr]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == java_pub.public_bytes(*spki)
    assert keys.private_key_from_pem(key_file(entry["priv_pem"])).private_numbers() == key.private_numbers()


# ---------------------------------------------------------------------------------------------------------
# Files we write


def parse_type4(data: bytes) -> tuple[bytes, int, int, bytes, bytes]:
    r = Reader(data)
    assert r.get_int4() == KeyEncryption.PBKDF2_AES_CBC
    salt, iterations, bits, iv, ciphertext = (
        r.get_byte_array(),
        r.get_int4(),
        r.get_int4(),
        r.get_byte_array(),
        r.get_byte_array(),
    )
    r.expect_end("type 4 key file")
    return salt, iterations, bits, iv, ciphertext


def test_written_plain_file_is_byte_exact_java_layout(entry: dict[str, Any]) -> None:
    key = keys.read_private_key_file(key_file(entry["priv_plain"]), None)
    assert keys.write_private_key_file(key, None) == key_file(entry["priv_plain"])
    assert keys.write_private_key_file(key, b"") == key_file(entry["priv_plain"])  # empty = no encryption


def test_written_encrypted_file_has_javas_type4_layout_and_reads_back(entry: dict[str, Any]) -> None:
    key = keys.read_private_key_file(key_file(entry["priv_plain"]), None)
    data = keys.write_private_key_file(key, PASS)
    salt, iterations, bits, iv, ciphertext = parse_type4(data)
    assert (len(salt), iterations, bits, len(iv)) == (16, 10_000, 128, 16)
    assert len(ciphertext) % 16 == 0
    # The Java vector file has the same shape and size.
    assert len(data) == len(key_file(entry["priv_enc"]))
    assert keys.read_private_key_file(data, PASS).private_numbers() == key.private_numbers()
    # Independent decryption (PBKDF2-HMAC-SHA1, AES-128-CBC, PKCS#5) yields the raw encoding.
    aes_key = hashlib.pbkdf2_hmac("sha1", PASS, salt, iterations, 16)
    decryptor = Cipher(AES(aes_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    assert padded[: -padded[-1]] == key_file(entry["priv_raw_encoding"])
    # Salt and IV are fresh every time.
    assert parse_type4(keys.write_private_key_file(key, PASS))[0] != salt


@pytest.mark.parametrize("encryption", list(KeyEncryption))
def test_every_encryption_type_round_trips(encryption: KeyEncryption) -> None:
    key = dsa_vector_key()
    data = keys.write_private_key_file(key, PASS, encryption)
    assert keys.key_file_encryption(data) == encryption
    assert keys.is_encrypted_key_file(data) == (encryption is not KeyEncryption.NONE)
    assert keys.encode_private_key(keys.read_private_key_file(data, PASS)) == dsa_vector_raw()


@pytest.mark.parametrize("encryption", sorted(JAVA_DSA_ENCRYPTED))
def test_java_legacy_encryption_types_decrypt(encryption: KeyEncryption) -> None:
    data = bytes.fromhex("".join(JAVA_DSA_ENCRYPTED[encryption]))
    assert keys.key_file_encryption(data) == encryption
    assert keys.encode_private_key(keys.read_private_key_file(data, PASS)) == dsa_vector_raw()
    with pytest.raises(WrongPassphraseError):
        keys.read_private_key_file(data, b"vector-pasS")


def test_save_and_load_files(tmp_path: Path) -> None:
    key = dsa_vector_key()
    priv_path, pub_path = tmp_path / "privkey.bin", tmp_path / "pubkey.bin"
    priv_path.write_bytes(b"old contents")
    priv_path.chmod(0o644)
    keys.save_private_key(priv_path, key, PASS)
    keys.save_public_key(pub_path, key.public_key())
    assert stat.S_IMODE(priv_path.stat().st_mode) == 0o600
    assert keys.load_private_key(priv_path, PASS).private_numbers() == key.private_numbers()
    assert pub_path.read_bytes() == key_file("dsa1024_pub.bin")
    assert keys.load_public_key(pub_path).public_numbers() == key.public_key().public_numbers()
    # PEM files are recognised by their BEGIN line.
    (tmp_path / "priv.pem").write_bytes(keys.private_key_to_pem(key, PASS))
    (tmp_path / "pub.pem").write_bytes(keys.public_key_to_pem(key.public_key()))
    assert keys.load_private_key(tmp_path / "priv.pem", PASS).private_numbers() == key.private_numbers()
    assert keys.load_public_key(tmp_path / "pub.pem").public_numbers() == key.public_key().public_numbers()


def test_load_errors_name_the_file_and_keep_their_class(tmp_path: Path) -> None:
    path = tmp_path / "admpriv.bin"
    keys.save_private_key(path, dsa_vector_key(), PASS)
    with pytest.raises(PassphraseRequiredError) as missing:
        keys.load_private_key(path, None)
    assert str(missing.value) == f"{path}: key file is encrypted: a passphrase is needed"
    with pytest.raises(WrongPassphraseError) as wrong:
        keys.load_private_key(path, b"nope")
    assert str(wrong.value) == f"{path}: wrong passphrase or corrupt key file"
    with pytest.raises(KeyFileError) as unreadable:
        keys.load_private_key(tmp_path / "missing.bin", None)
    assert str(unreadable.value).startswith(f"{tmp_path / 'missing.bin'}: cannot read key file")
    (tmp_path / "junk.bin").write_bytes(b"\x00\x00\x00\x09junk")
    with pytest.raises(KeyFileError, match=r"junk\.bin: unknown key file encryption type 9"):
        keys.load_private_key(tmp_path / "junk.bin", None)
    with pytest.raises(KeyFileError, match=r"junk\.bin: not a public key file"):
        keys.load_public_key(tmp_path / "junk.bin")


# ---------------------------------------------------------------------------------------------------------
# The PBKDF2 password quirk (values.md 6.2)


def test_pbkdf2_password_is_utf8_of_latin1_chars() -> None:
    assert keys.pbkdf2_password(b"vector-pass") == b"vector-pass"
    assert keys.pbkdf2_password("ä".encode()) == b"\xc3\x83\xc2\xa4"
    assert keys.pbkdf2_password(b"\xff\x00") == b"\xc3\xbf\x00"


def test_java_non_ascii_type4_file_needs_the_quirk() -> None:
    data = bytes.fromhex("".join(JAVA_DSA_NON_ASCII_TYPE4))
    assert keys.encode_private_key(keys.read_private_key_file(data, NON_ASCII_PASS)) == dsa_vector_raw()
    # Without the quirk (PBKDF2 over the raw UTF-8 bytes) the file does not decrypt to the key.
    salt, iterations, bits, iv, ciphertext = parse_type4(data)
    naive = hashlib.pbkdf2_hmac("sha1", NON_ASCII_PASS, salt, iterations, bits // 8)
    decryptor = Cipher(AES(naive), modes.CBC(iv)).decryptor()
    assert dsa_vector_raw()[:16] not in decryptor.update(ciphertext) + decryptor.finalize()
    # The passphrase is the bytes as typed: the same text in Latin-1 is another passphrase.
    with pytest.raises(WrongPassphraseError):
        keys.read_private_key_file(data, "pässwörd-ü".encode("latin-1"))


def test_non_ascii_type4_file_we_write_reads_back() -> None:
    key = rsa_vector_key()
    data = keys.write_private_key_file(key, NON_ASCII_PASS)
    salt, iterations, _, iv, ciphertext = parse_type4(data)
    quirk_key = hashlib.pbkdf2_hmac("sha1", keys.pbkdf2_password(NON_ASCII_PASS), salt, iterations, 16)
    decryptor = Cipher(AES(quirk_key), modes.CBC(iv)).decryptor()
    assert (decryptor.update(ciphertext) + decryptor.finalize()).startswith(keys.encode_private_key(key))
    assert keys.read_private_key_file(data, NON_ASCII_PASS).private_numbers() == key.private_numbers()


# ---------------------------------------------------------------------------------------------------------
# Errors: each failure has its own message


def type4_file(
    salt: bytes = b"s" * 16, iterations: int = 10_000, bits: int = 128, iv: bytes = b"i" * 16
) -> bytes:
    return (
        Writer()
        .put_int4(4)
        .put_byte_array(salt)
        .put_int4(iterations)
        .put_int4(bits)
        .put_byte_array(iv)
        .put_byte_array(b"c" * 32)
        .getvalue()
    )


def test_missing_and_wrong_passphrase() -> None:
    enc = key_file("rsa2048_priv_enc.bin")
    with pytest.raises(PassphraseRequiredError) as missing:
        keys.read_private_key_file(enc, None)
    with pytest.raises(WrongPassphraseError) as wrong:
        keys.read_private_key_file(enc, b"vector-pas")
    assert str(missing.value) == "key file is encrypted: a passphrase is needed"
    assert str(wrong.value) == "wrong passphrase or corrupt key file"
    assert isinstance(missing.value, KeyFileError)
    assert isinstance(wrong.value, KeyFileError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated key file: 0 bytes"),
        (b"\x00\x00\x01", "truncated key file: 3 bytes"),
        (b"\x00\x00\x00\x05" + b"x" * 40, "unknown key file encryption type 5"),
        (b"\xff\xff\xff\xff" + b"x" * 40, "unknown key file encryption type -1"),
        (b"\x00\x00\x00\x04\x00\x00\x00\x10" + b"s" * 10, "truncated key file"),
        (b"\x00\x00\x00\x02" + b"iv", "truncated key file"),
        (b"\x00\x00\x00\x00" + b"x" * 13, "truncated key file: 13-byte ciphertext"),
        (type4_file(iterations=0), "iteration count 0 out of range"),
        (type4_file(iterations=2**31 - 1), "iteration count 2147483647 out of range"),
        (type4_file(bits=2**20), "unsupported PBKDF2_AES_CBC key length 1048576 bits"),
        (type4_file(iv=b"i" * 8), "corrupt key file: 8-byte IV"),
    ],
)
def test_corrupt_key_files_raise_key_file_error(data: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message) as info:
        keys.read_private_key_file(data, PASS)
    assert not isinstance(info.value, PassphraseRequiredError | WrongPassphraseError)


def test_truncated_java_files() -> None:
    enc = key_file("rsa2048_priv_enc.bin")
    with pytest.raises(KeyFileError, match="truncated key file"):
        keys.read_private_key_file(enc[:-5], PASS)
    with pytest.raises(KeyFileError, match="truncated or corrupt private key data"):
        keys.read_private_key_file(key_file("rsa2048_priv_plain.bin")[:-5], None)


def test_error_messages_are_distinct() -> None:
    enc = key_file("dsa1024_priv_enc.bin")
    messages = set()
    for data, passphrase in [
        (enc, None),
        (enc, b"wrong"),
        (enc[:3], None),
        (b"\x00\x00\x00\x07" + enc[4:], PASS),
        (type4_file(iterations=0), PASS),
    ]:
        with pytest.raises(KeyFileError) as info:
            keys.read_private_key_file(data, passphrase)
        messages.add(str(info.value).split(":")[0])
    assert len(messages) == 5


def test_is_encrypted_key_file_rejects_truncated_data() -> None:
    with pytest.raises(KeyFileError, match="truncated key file"):
        keys.is_encrypted_key_file(b"\x00\x01")


# ---------------------------------------------------------------------------------------------------------
# Private key encodings


def test_rsa_non_crt_encoding_is_completed_from_n_and_d() -> None:
    key = rsa_vector_key()
    nums = key.private_numbers()
    raw = Writer().put_utf8(b"RSA_PRIV_KEY")
    raw.put_byte_array(java_bigint_bytes(nums.public_numbers.n)).put_byte_array(java_bigint_bytes(nums.d))
    decoded = keys.decode_private_key(raw.getvalue())
    assert decoded.private_numbers() == nums
    # And it is re-encoded in the CRT form, as Java writes RSA keys.
    assert keys.encode_private_key(decoded) == key_file("rsa2048_priv_raw_encoding.bin")


def test_rsa_non_crt_with_unusual_exponent_is_refused_clearly() -> None:
    nums = rsa_vector_key().private_numbers()
    p, q = nums.p, nums.q
    phi = (p - 1) * (q - 1)
    e = next(e for e in (7, 11, 13, 19, 23, 29, 31) if math.gcd(e, phi) == 1)
    d = pow(e, -1, phi)
    raw = (
        Writer()
        .put_utf8(b"RSA_PRIV_KEY")
        .put_byte_array(java_bigint_bytes(p * q))
        .put_byte_array(java_bigint_bytes(d))
    )
    with pytest.raises(KeyFileError, match="its primes cannot be recovered"):
        keys.decode_private_key(raw.getvalue())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated or corrupt private key data"),
        (
            Writer().put_utf8(b"EC_PRIV_KEY").put_byte_array(b"\x01").getvalue(),
            "unsupported private key type 'EC_PRIV_KEY'",
        ),
        (Writer().put_utf8(b"DSA_PRIV_KEY").put_byte_array(b"\x01").getvalue(), "truncated or corrupt"),
        (
            Writer().put_utf8(b"RSA_PRIVCRT_KEY").put_raw(b"\x00\x00\x00\x01\x05" * 8).getvalue(),
            "invalid RSA private key",
        ),
        (
            Writer().put_utf8(b"DSA_PRIV_KEY").put_raw(b"\x00\x00\x00\x01\x05" * 4).getvalue(),
            "invalid DSA private key",
        ),
    ],
)
def test_bad_private_encodings(data: bytes, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        keys.decode_private_key(data)


def test_private_encoding_ignores_trailing_bytes_like_java() -> None:
    raw = dsa_vector_raw()
    assert keys.encode_private_key(keys.decode_private_key(raw + b"\x00" * 4)) == raw


def test_encode_private_key_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        keys.encode_private_key(object())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Public keys


def test_dh_public_key_from_session_vectors() -> None:
    dh_vectors = json.loads((vectors_dir() / "sessions" / "session_vectors.json").read_text())["dh"]
    for field in ("client_DH_PUB_KEY_hex", "server_DH_PUB_KEY_hex"):
        data = bytes.fromhex(dh_vectors[field])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # cryptography's FFDH deprecation stays inside keys.py
            pub = keys.public_key_from_bytes(data)
            assert isinstance(pub, DHPublicKey)
            assert pub.public_numbers().parameter_numbers.p == int(dh_vectors["p_hex"], 16)
            assert keys.public_key_to_bytes(pub) == data


@pytest.mark.parametrize(
    "data",
    [
        b"",
        Writer().put_utf8(b"EC_PUB_KEY").put_int2(0).getvalue(),
        Writer().put_utf8(b"RSA_PUB_KEY").put_int2(0).put_byte_array(b"\x03").getvalue(),
        Writer()
        .put_utf8(b"RSA_PUB_KEY")
        .put_int2(0)
        .put_byte_array(b"\x03")
        .put_byte_array(b"\x01")
        .getvalue(),
    ],
)
def test_bad_public_keys_raise_decode_error_only(data: bytes) -> None:
    with pytest.raises(DecodeError):
        keys.public_key_from_bytes(data)


def test_public_key_to_bytes_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        keys.public_key_to_bytes(object())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Generation and PEM


@pytest.mark.parametrize(("algorithm", "bits"), [("RSA", 2048), ("dsa", 1024)])
def test_generate_key_pair_defaults(algorithm: str, bits: int) -> None:
    key = keys.generate_key_pair(algorithm)
    assert key.key_size == bits
    assert keys.keys_match(key, keys.public_key_from_bytes(keys.public_key_to_bytes(key.public_key())))
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.public_key().public_numbers().e == 65537


def test_generate_key_pair_errors() -> None:
    with pytest.raises(ValueError, match="unsupported key algorithm 'EC'"):
        keys.generate_key_pair("EC")
    with pytest.raises(ValueError, match="cannot generate a 512-bit RSA key"):
        keys.generate_key_pair("RSA", 512)


def test_pem_round_trip_and_errors() -> None:
    key = dsa_vector_key()
    plain_pem = keys.private_key_to_pem(key)
    enc_pem = keys.private_key_to_pem(key, PASS)
    assert plain_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert enc_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert keys.private_key_from_pem(plain_pem).private_numbers() == key.private_numbers()
    assert keys.private_key_from_pem(plain_pem, b"ignored").private_numbers() == key.private_numbers()
    assert keys.private_key_from_pem(enc_pem, PASS).private_numbers() == key.private_numbers()
    with pytest.raises(PassphraseRequiredError):
        keys.private_key_from_pem(enc_pem)
    with pytest.raises(WrongPassphraseError):
        keys.private_key_from_pem(enc_pem, b"wrong")
    with pytest.raises(KeyFileError, match="not a usable PEM private key"):
        keys.private_key_from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match="not a usable PEM public key"):
        keys.public_key_from_pem(b"garbage")
    assert keys.public_key_to_pem(key.public_key()).startswith(b"-----BEGIN PUBLIC KEY-----")


# ---------------------------------------------------------------------------------------------------------
# Signatures


def auth_vectors() -> dict[str, Any]:
    return json.loads((vectors_dir() / "auth" / "auth_vectors.json").read_text())


def test_java_challenge_answers_verify() -> None:
    vectors = auth_vectors()
    signed = bytes.fromhex(vectors["inputs"]["signed_bytes_hex"])
    assert signed == bytes.fromhex(vectors["inputs"]["nonce_hex"] + vectors["inputs"]["request_digest_hex"])
    assert len(vectors["pubkey_answers"]) == 4
    for answer in vectors["pubkey_answers"]:
        priv = keys.read_private_key_file((vectors_dir() / answer["private_key_file"]).read_bytes(), None)
        pub = keys.public_key_from_bytes(key_file(f"{answer['key']}_pub.bin"))
        r = Reader(bytes.fromhex(answer["answer_hex"]))
        hash_alg, signature = r.get_utf8(), r.get_byte_array()
        r.expect_end("answer")
        assert hash_alg == answer["hash_alg_id"].encode()
        assert signature.hex() == answer["signature_hex"]
        assert keys.verify(pub, signature, signed, hash_alg)
        assert keys.verify(pub, signature, signed, answer["hash_alg_id"])
        assert not keys.verify(pub, signature, signed[:-1] + b"\x00", hash_alg)
        other_digest = b"SHA1" if hash_alg == b"SHA-256" else b"SHA-256"
        assert not keys.verify(pub, signature, signed, other_digest)
        if answer["deterministic"]:
            assert keys.sign(priv, signed, hash_alg) == signature
        else:
            ours = keys.sign(priv, signed, hash_alg)
            assert keys.verify(pub, ours, signed, hash_alg)


def test_sha256_with_rsa_is_reproduced_byte_exact() -> None:
    answer = next(a for a in auth_vectors()["pubkey_answers"] if a["jca_algorithm"] == "SHA256withRSA")
    signed = bytes.fromhex(auth_vectors()["inputs"]["signed_bytes_hex"])
    assert keys.sign(rsa_vector_key(), signed, "SHA-256").hex() == answer["signature_hex"]
    assert keys.sign(rsa_vector_key(), signed, b"\x03").hex() == answer["signature_hex"]


@pytest.mark.parametrize("digest", ["SHA-256", "SHA256", "SHA1", "SHA-1", "MD5", b"\x01", b"\x02", b"\x03"])
def test_parse_digest_name_accepts_the_java_names(digest: str | bytes) -> None:
    expected = {"SHA-256": "sha256", "SHA256": "sha256", "SHA1": "sha1", "SHA-1": "sha1", "MD5": "md5"}
    legacy = {b"\x01": "md5", b"\x02": "sha1", b"\x03": "sha256"}
    name = expected[digest] if isinstance(digest, str) else legacy[digest]
    assert keys.parse_digest_name(digest).name == name
    if isinstance(digest, str):
        assert keys.parse_digest_name(digest.encode()).name == name


@pytest.mark.parametrize("digest", [b"sha256", b"SHA-512", b"", b"\x00", b"HMAC-SHA256"])
def test_parse_digest_name_rejects_others(digest: bytes) -> None:
    with pytest.raises(DecodeError, match="unknown digest algorithm"):
        keys.parse_digest_name(digest)


def test_rsa_signatures_are_pkcs1_v15() -> None:
    key = rsa_vector_key()
    for digest, algorithm in (("SHA-256", hashes.SHA256()), ("SHA1", hashes.SHA1()), ("MD5", hashes.MD5())):
        signature = keys.sign(key, b"data", digest)
        key.public_key().verify(signature, b"data", PKCS1v15(), algorithm)
        assert keys.verify(key.public_key(), signature, b"data", digest)


def test_dsa_signatures_are_der_and_reject_md5() -> None:
    key = dsa_vector_key()
    signature = keys.sign(key, b"data", "SHA-256")
    assert signature[0] == 0x30 and len(signature) == signature[1] + 2  # DER SEQUENCE {r, s}
    key.public_key().verify(signature, b"data", hashes.SHA256())
    with pytest.raises(ValueError, match="MD5withDSA"):
        keys.sign(key, b"data", "MD5")
    assert not keys.verify(key.public_key(), signature, b"data", "MD5")


def test_verify_is_false_for_unusable_input() -> None:
    key = rsa_vector_key()
    signature = keys.sign(key, b"data", "SHA-256")
    assert not keys.verify(key.public_key(), signature, b"data", b"nonsense")
    assert not keys.verify(dsa_vector_key().public_key(), signature, b"data", "SHA-256")
    assert not keys.verify(key.public_key(), b"", b"data", "SHA-256")
    dh_pub = keys.public_key_from_bytes(
        bytes.fromhex(
            json.loads((vectors_dir() / "sessions" / "session_vectors.json").read_text())["dh"][
                "client_DH_PUB_KEY_hex"
            ]
        )
    )
    assert not keys.verify(dh_pub, signature, b"data", "SHA-256")


# ---------------------------------------------------------------------------------------------------------
# Interop with the real Java tools


def java_tool(name: str) -> Path:
    tool = HANDLE_JAVA / "bin" / name
    if not tool.is_file():
        pytest.skip(f"Java Handle.Net tools not available at {HANDLE_JAVA}")
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    return tool


def java_resaves_plain(tmp_path: Path, data: bytes, passphrase: bytes) -> bytes:
    """Let Java hdl-keyutil open a key file (passphrase on stdin) and save it unencrypted (menu item 2)."""
    path = tmp_path / "javakey.bin"
    path.write_bytes(data)
    result = subprocess.run(
        [str(java_tool("hdl-keyutil")), str(path)],
        input=passphrase + b"\n2\n3\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"Unable to read private key" not in result.stderr, result.stderr.decode(errors="replace")
    assert b"Private key saved to file" in result.stdout, result.stdout.decode(errors="replace")
    return path.read_bytes()


@pytest.mark.interop
@pytest.mark.parametrize(
    "encryption", [KeyEncryption.DES_ECB, KeyEncryption.DES_CBC, KeyEncryption.PBKDF2_DESEDE_CBC]
)
def test_java_reads_our_legacy_encryption_types(tmp_path: Path, encryption: KeyEncryption) -> None:
    data = keys.write_private_key_file(dsa_vector_key(), PASS, encryption)
    assert java_resaves_plain(tmp_path, data, PASS) == key_file("dsa1024_priv_plain.bin")


@pytest.mark.interop
@pytest.mark.parametrize("name", ["rsa2048", "dsa1024"])
def test_java_reads_our_non_ascii_type4_file(tmp_path: Path, name: str) -> None:
    key = keys.read_private_key_file(key_file(f"{name}_priv_plain.bin"), None)
    data = keys.write_private_key_file(key, NON_ASCII_PASS)
    assert java_resaves_plain(tmp_path, data, NON_ASCII_PASS) == key_file(f"{name}_priv_plain.bin")


@pytest.mark.interop
def test_java_rejects_our_file_with_the_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.bin"
    path.write_bytes(keys.write_private_key_file(dsa_vector_key(), NON_ASCII_PASS))
    result = subprocess.run(
        [str(java_tool("hdl-keyutil")), str(path)],
        input=b"wrong\n3\n",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"Unable to read private key" in result.stderr


# ---------------------------------------------------------------------------------------------------------
# Robustness: arbitrary bytes never escape as anything but KeyFileError / DecodeError


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from([0, 1, 2, 3, 4, 5]),
    body=st.binary(max_size=200),
    passphrase=st.one_of(st.none(), st.binary(max_size=8)),
)
def test_arbitrary_key_files_raise_only_key_file_error(
    kind: int, body: bytes, passphrase: bytes | None
) -> None:
    with contextlib.suppress(KeyFileError):
        keys.read_private_key_file(kind.to_bytes(4, "big") + body, passphrase)


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0, max_value=391), value=st.integers(min_value=0, max_value=255))
def test_mutated_java_file_raises_only_key_file_error(position: int, value: int) -> None:
    data = bytearray(bytes.fromhex("".join(JAVA_DSA_NON_ASCII_TYPE4)))
    data[position] = value
    with contextlib.suppress(KeyFileError):
        keys.read_private_key_file(bytes(data), NON_ASCII_PASS)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=300))
def test_arbitrary_public_keys_raise_only_decode_error(body: bytes) -> None:
    for tag in (b"RSA_PUB_KEY", b"DSA_PUB_KEY", b"DH_PUB_KEY"):
        with contextlib.suppress(DecodeError):
            keys.public_key_from_bytes(Writer().put_utf8(tag).put_int2(0).getvalue() + body)

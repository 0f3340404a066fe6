"""hdlserver.wire.values, handles and pubkey against values.md and the Java-made vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Reader
from hdlserver.wire.handles import (
    HASH_BY_ALL,
    HASH_BY_PREFIX,
    HASH_BY_SUFFIX,
    prefix_handle_of,
    prefix_of,
    server_position,
    site_hash,
)
from hdlserver.wire.pubkey import (
    DHPublicKeyData,
    DSAPublicKeyData,
    RSAPublicKeyData,
    decode_public_key,
    encode_public_key,
    java_bigint_bytes,
)
from hdlserver.wire.values import (
    DEFAULT_PERMISSIONS,
    DEFAULT_TTL,
    PERM_ADMIN_READ,
    PERM_ADMIN_WRITE,
    PERM_PUBLIC_READ,
    PERM_PUBLIC_WRITE,
    TTL_ABSOLUTE,
    TTL_RELATIVE,
    HandleValue,
    ValueReference,
    decode_value,
    decode_values,
    encode_value,
    encode_values,
    filter_values,
    has_type,
    read_value,
    split_encoded_values,
    type_matches_query,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
MISSING = f"Java test vectors not found at {VECTORS} (shared/vectors is not part of a clone)"


def vector_entries(relative: str) -> list:
    """Entries of a vector JSON file for parametrize; one skipped param when the vectors are absent."""
    path = VECTORS / relative
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    return json.loads(path.read_text())


def vector_bytes(relative: str) -> bytes:
    path = VECTORS / relative
    if not path.exists():
        pytest.skip(MISSING)
    return path.read_bytes()


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# --- values.md 1.1 ---------------------------------------------------------------------------------

SPEC_URL_VALUE = h("""00000001 5e0be100 00 00015180 0e 00000003 55524c 00000013
                      687474703a2f2f6578616d706c652e6f72672f 00000000""")


def test_spec_example_value_decodes_field_by_field() -> None:
    v = decode_value(SPEC_URL_VALUE)
    assert v == HandleValue(1, b"URL", b"http://example.org/", timestamp=0x5E0BE100)
    assert (v.ttl_type, v.ttl, v.permissions) == (TTL_RELATIVE, DEFAULT_TTL, DEFAULT_PERMISSIONS)
    assert v.admin_read and v.admin_write and v.public_read and not v.public_write


def test_spec_example_value_encodes_byte_exact() -> None:
    value = HandleValue(1, b"URL", b"http://example.org/", timestamp=0x5E0BE100)
    assert encode_value(value) == SPEC_URL_VALUE


def test_default_permissions_are_1110() -> None:
    assert DEFAULT_PERMISSIONS == PERM_ADMIN_READ | PERM_ADMIN_WRITE | PERM_PUBLIC_READ == 0x0E
    assert PERM_PUBLIC_WRITE == 0x01


@pytest.mark.parametrize("cut", [1, 4, 13, 14, 20, len(SPEC_URL_VALUE) - 1])
def test_truncated_value_is_a_decode_error(cut: int) -> None:
    with pytest.raises(DecodeError):
        decode_value(SPEC_URL_VALUE[:cut])


def test_trailing_bytes_after_a_value_are_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        decode_value(SPEC_URL_VALUE + b"\x00")


def test_reference_count_larger_than_the_data_is_a_decode_error() -> None:
    bad = SPEC_URL_VALUE[:-4] + b"\x7f\xff\xff\xff"
    with pytest.raises(DecodeError):
        decode_value(bad)


# --- handle_values.json ----------------------------------------------------------------------------


def _expected_permissions(e: dict) -> int:
    return ((PERM_ADMIN_READ if e["admin_read"] else 0) | (PERM_ADMIN_WRITE if e["admin_write"] else 0)
            | (PERM_PUBLIC_READ if e["public_read"] else 0) | (PERM_PUBLIC_WRITE if e["public_write"] else 0))


@pytest.mark.parametrize("e", vector_entries("values/handle_values.json"),
                         ids=lambda e: f"{e['index']}-{e['type']}" if e else "missing")
def test_java_value_decodes_to_its_fields(e: dict) -> None:
    v = decode_value(bytes.fromhex(e["encoded_hex"]))
    assert v.index == e["index"]
    assert v.type == e["type"].encode()
    assert v.data == bytes.fromhex(e["data_hex"])
    assert (v.ttl_type, v.ttl, v.timestamp) == (e["ttl_type"], e["ttl"], e["timestamp"])
    assert v.permissions == _expected_permissions(e)
    assert v.references == tuple(ValueReference(r["handle"].encode(), r["index"]) for r in e["references"])


@pytest.mark.parametrize("e", vector_entries("values/handle_values.json"),
                         ids=lambda e: f"{e['index']}-{e['type']}" if e else "missing")
def test_java_value_reencodes_byte_exact(e: dict) -> None:
    encoded = bytes.fromhex(e["encoded_hex"])
    rebuilt = HandleValue(e["index"], e["type"].encode(), bytes.fromhex(e["data_hex"]),
                          _expected_permissions(e), e["ttl_type"], e["ttl"], e["timestamp"],
                          tuple(ValueReference(r["handle"].encode(), r["index"]) for r in e["references"]))
    assert encode_value(rebuilt) == encoded
    assert encode_value(decode_value(encoded)) == encoded


def test_all_java_values_as_a_list_split_into_their_exact_bytes() -> None:
    entries = vector_entries("values/handle_values.json")
    if not isinstance(entries[0], dict):
        pytest.skip(MISSING)
    encoded = [bytes.fromhex(e["encoded_hex"]) for e in entries]
    blob = len(encoded).to_bytes(4, "big") + b"".join(encoded)
    values = decode_values(blob)
    assert encode_values(values) == blob
    assert [raw for _, raw in split_encoded_values(blob)] == encoded
    assert [v for v, _ in split_encoded_values(blob)] == list(values)


def test_read_value_stops_at_the_end_of_one_value() -> None:
    r = Reader(SPEC_URL_VALUE + b"rest")
    assert read_value(r).index == 1
    assert r.rest() == b"rest"


def test_absolute_ttl_and_references_round_trip() -> None:
    v = HandleValue(2, b"EMAIL", b"a@example.org", 0x0F, TTL_ABSOLUTE, 1_800_000_000, 1_700_000_000,
                    (ValueReference(b"TEST/ref", 1), ValueReference(b"0.NA/TEST", 300)))
    assert decode_value(encode_value(v)) == v


def test_same_ignoring_timestamp() -> None:
    a = HandleValue(1, b"URL", b"x", timestamp=5)
    assert a.same_ignoring_timestamp(a.with_timestamp(9))
    assert not a.same_ignoring_timestamp(HandleValue(1, b"URL", b"y", timestamp=5))


# --- values.md 1.4 type matching -------------------------------------------------------------------


@pytest.mark.parametrize(("value_type", "query", "expected"), [
    (b"URL", b"URL", True),
    (b"url", b"URL", True),
    (b"URL.us", b"URL", False),
    (b"URL", b"URL.", True),
    (b"URL.us", b"URL.", True),
    (b"url.jp", b"URL.", True),
    (b"URLX", b"URL.", False),
    (b"EMAIL", b"URL", False),
    (b"HS_SITE.6", b"HS_SITE.", True),
])
def test_query_filter_rule(value_type: bytes, query: bytes, expected: bool) -> None:
    assert type_matches_query(value_type, query) is expected


@pytest.mark.parametrize(("value_type", "wanted", "expected"), [
    (b"HS_ADMIN", b"HS_ADMIN", True),
    (b"hs_admin", b"HS_ADMIN", True),
    (b"HS_ADMIN.x", b"HS_ADMIN", True),
    (b"HS_ADMINX", b"HS_ADMIN", False),
    (b"HS_SITE.PREFIX", b"HS_SITE", True),
    (b"HS_SITE.6", b"HS_SITE", True),
    (b"HS_SIT", b"HS_SITE", False),
])
def test_has_type_rule(value_type: bytes, wanted: bytes, expected: bool) -> None:
    assert has_type(value_type, wanted) is expected


def test_filter_values_by_index_or_type() -> None:
    values = [HandleValue(1, b"URL", b""), HandleValue(2, b"URL.us", b""), HandleValue(3, b"EMAIL", b"")]
    assert filter_values(values, [], []) == values
    assert [v.index for v in filter_values(values, [], [b"URL"])] == [1]
    assert [v.index for v in filter_values(values, [], [b"URL."])] == [1, 2]
    assert [v.index for v in filter_values(values, [3], [b"URL"])] == [1, 3]


# --- values.md 3.2 site hash -----------------------------------------------------------------------

SITE_HASH_TABLE = [
    (b"TEST/1", 916572737, 1869972635, 647626165),
    (b"test/abc", 916572737, 891676978, 938653300),
    (b"0.NA/TEST", 36223079, 916572737, 820313287),
    (b"noslash", 36223079, 923316370, 923316370),
]


@pytest.mark.parametrize(("handle", "by_prefix", "by_suffix", "by_all"), SITE_HASH_TABLE)
def test_site_hash_table_of_the_spec(handle: bytes, by_prefix: int, by_suffix: int, by_all: int) -> None:
    assert site_hash(handle, HASH_BY_PREFIX) == by_prefix
    assert site_hash(handle, HASH_BY_SUFFIX) == by_suffix
    assert site_hash(handle, HASH_BY_ALL) == by_all


@pytest.mark.parametrize(("handle", "by_prefix", "by_suffix", "by_all"), SITE_HASH_TABLE)
def test_server_position_is_hash_mod_n(handle: bytes, by_prefix: int, by_suffix: int, by_all: int) -> None:
    for n in (2, 3, 7):
        assert server_position(handle, HASH_BY_ALL, n) == by_all % n
        assert server_position(handle, HASH_BY_PREFIX, n) == by_prefix % n
        assert server_position(handle, HASH_BY_SUFFIX, n) == by_suffix % n
    assert server_position(handle, HASH_BY_ALL, 1) == 0


def test_handle_parts() -> None:
    assert prefix_of(b"TEST/1") == b"TEST"
    assert prefix_of(b"noslash") == b"noslash"
    assert prefix_handle_of(b"test/1") == b"0.NA/TEST"
    assert prefix_handle_of(b"noslash") == b"0.NA/0.NA"


# --- values.md 5 public keys -----------------------------------------------------------------------

SPEC_RSA_N = int.from_bytes(bytes.fromhex("c0ffee" * 22), "big")


def test_spec_rsa_example_layout() -> None:
    encoded = encode_public_key(RSAPublicKeyData(e=65537, n=SPEC_RSA_N))
    head = h("0000000b 5253415f5055425f4b4559 0000 00000003 010001 00000043 00 " + "c0ffee" * 22)
    assert encoded.startswith(head)
    assert encoded[len(head):] == bytes(4)  # the 4 zero bytes every Java RSA_PUB_KEY ends with
    assert decode_public_key(head) == RSAPublicKeyData(e=65537, n=SPEC_RSA_N)


def test_java_bigint_bytes_is_minimal_twos_complement() -> None:
    assert java_bigint_bytes(0) == b"\x00"
    assert java_bigint_bytes(0x7F) == b"\x7f"
    assert java_bigint_bytes(0x80) == b"\x00\x80"
    assert len(java_bigint_bytes((1 << 1023) | 1)) == 129


def test_unknown_public_key_type_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_public_key(h("00000006 4543445341 00 0000"))


@pytest.mark.parametrize("cut", [3, 10, 17, 20, 40])
def test_truncated_public_key_is_a_decode_error(cut: int) -> None:
    encoded = encode_public_key(RSAPublicKeyData(e=65537, n=SPEC_RSA_N))
    with pytest.raises(DecodeError):
        decode_public_key(encoded[:cut])


def test_rsa_public_key_file_matches_the_pem_key() -> None:
    data = vector_bytes("keys/rsa2048_pub.bin")
    pem = load_pem_public_key(vector_bytes("keys/rsa2048_pub_spki.pem"))
    assert isinstance(pem, rsa.RSAPublicKey)
    key = decode_public_key(data)
    numbers = pem.public_numbers()
    assert key == RSAPublicKeyData(e=numbers.e, n=numbers.n)
    assert key.n.bit_length() == 2048
    assert encode_public_key(key) == data


def test_dsa_public_key_file_matches_the_pem_key() -> None:
    data = vector_bytes("keys/dsa1024_pub.bin")
    pem = load_pem_public_key(vector_bytes("keys/dsa1024_pub_spki.pem"))
    assert isinstance(pem, dsa.DSAPublicKey)
    key = decode_public_key(data)
    numbers = pem.public_numbers()
    params = numbers.parameter_numbers
    assert key == DSAPublicKeyData(q=params.q, p=params.p, g=params.g, y=numbers.y)
    assert encode_public_key(key) == data


def test_dh_public_keys_of_the_session_vectors_round_trip() -> None:
    entries = vector_entries("sessions/session_vectors.json")
    if not isinstance(entries, dict):
        pytest.skip(MISSING)
    dh = entries["dh"]
    p = int(dh["p_hex"], 16)
    for side in ("client", "server"):
        data = bytes.fromhex(dh[f"{side}_DH_PUB_KEY_hex"])
        key = decode_public_key(data)
        assert key == DHPublicKeyData(y=int(dh[f"y_{side}_hex"], 16), p=p, g=dh["g"])
        assert encode_public_key(key) == data


@pytest.mark.parametrize("e", [e for e in vector_entries("values/value_data.json")
                               if not isinstance(e, dict) or e["type"] == "HS_PUBKEY"],
                         ids=lambda e: e["description"][:30] if e else "missing")
def test_pubkey_value_data_round_trips(e: dict) -> None:
    data = bytes.fromhex(e["data_hex"])
    assert encode_public_key(decode_public_key(data)) == data

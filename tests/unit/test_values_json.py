"""hdlserver.jsonform.values_json: the REST JSON form of values (values.md 10) against Java's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hdlserver.jsonform.values_json import (
    JsonFormError,
    data_from_json,
    data_to_json,
    gson_dumps,
    iso_timestamp,
    parse_iso_timestamp,
    record_from_json,
    record_to_json,
    value_from_json,
    value_to_json,
    values_from_json,
    values_to_json,
)
from hdlserver.wire.pubkey import DHPublicKeyData, DSAPublicKeyData, RSAPublicKeyData, encode_public_key
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, encode_admin
from hdlserver.wire.values import (
    DEFAULT_PERMISSIONS,
    DEFAULT_TTL,
    TTL_ABSOLUTE,
    TTL_RELATIVE,
    HandleValue,
    ValueReference,
    decode_value,
    encode_value,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
VALUES = VECTORS / "values"
MISSING = f"Java test vectors not found at {VECTORS} (shared/vectors is not part of a clone)"


def entries(name: str) -> list:
    path = VALUES / name
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    return json.loads(path.read_text())


def vector_text(name: str) -> str:
    path = VALUES / name
    if not path.exists():
        pytest.skip(MISSING)
    return path.read_text()


def java_values() -> list[HandleValue]:
    vectors = json.loads(vector_text("handle_values.json"))
    return [decode_value(bytes.fromhex(e["encoded_hex"])) for e in vectors]


def value_id(e: dict | None) -> str:
    return f"{e['index']}-{e['type']}" if e else "missing"


# --- Java vectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("e", entries("handle_values.json"), ids=value_id)
def test_value_to_json_matches_gson(e: dict) -> None:
    assert value_to_json(decode_value(bytes.fromhex(e["encoded_hex"]))) == e["json"]


@pytest.mark.parametrize("e", entries("handle_values.json"), ids=value_id)
def test_value_from_gson_json_gives_the_java_bytes(e: dict) -> None:
    assert encode_value(value_from_json(e["json"])) == bytes.fromhex(e["encoded_hex"])


def test_record_gson_text_is_reproduced_exactly() -> None:
    text = vector_text("record_gson.json")
    values = java_values()
    assert values_to_json(values) == json.loads(text)
    assert gson_dumps(values_to_json(values), pretty=True) == text
    assert values_from_json(json.loads(text)) == tuple(values)
    assert record_from_json(json.loads(text)) == (None, tuple(values))


def test_record_handle_gson_text_is_reproduced_exactly() -> None:
    text = vector_text("record_handle_gson.json")
    values = java_values()
    assert gson_dumps(record_to_json(b"TEST/vec-record", values), pretty=True) == text
    assert record_from_json(json.loads(text)) == (b"TEST/vec-record", tuple(values))


@pytest.mark.parametrize("e", [e for e in entries("value_data.json")
                               if not isinstance(e, dict) or "json" in e],
                         ids=lambda e: f"{e['type']}: {e['description'][:30]}" if e else "missing")
def test_value_data_json_both_ways(e: dict) -> None:
    data = bytes.fromhex(e["data_hex"])
    out = data_to_json(e["type"].encode(), data)
    assert out["value"] == e["json"]
    assert data_from_json(out) == data


# --- values.md 10 ----------------------------------------------------------------------------------

SPEC_EXAMPLE = {"index": 1, "type": "URL", "data": {"format": "string", "value": "x"}, "permissions": "1100",
                "ttl": "2023-11-14T22:13:20Z", "references": [{"handle": "TEST/R", "index": 2}]}


def test_spec_example() -> None:
    v = value_from_json(SPEC_EXAMPLE)
    refs = (ValueReference(b"TEST/R", 2),)
    assert v == HandleValue(1, b"URL", b"x", 0x0C, TTL_ABSOLUTE, 1_700_000_000, 0, refs)
    assert value_to_json(v) == SPEC_EXAMPLE


def test_minimal_value_takes_the_defaults() -> None:
    v = value_from_json({"index": 3, "type": "DESC", "data": "plain text"})
    assert v == HandleValue(3, b"DESC", b"plain text", DEFAULT_PERMISSIONS, TTL_RELATIVE, DEFAULT_TTL, 0, ())
    assert value_to_json(v) == {"index": 3, "type": "DESC",
                                "data": {"format": "string", "value": "plain text"}, "ttl": 86400}


@pytest.mark.parametrize(("text", "permissions"), [
    ("1110", 0x0E), ("1100", 0x0C), ("0010", 0x02), ("1111", 0x0F), ("0000", 0x00),
    ("0110", 0x06),  # Java would leave adminRead set; all four characters are applied here (product decision)
    ("1010", 0x0A), ("*", 0x0F),
])
def test_value_permissions_use_all_four_characters(text: str, permissions: int) -> None:
    v = value_from_json({"index": 1, "type": "URL", "data": "x", "permissions": text})
    assert v.permissions == permissions


def test_permissions_written_only_when_unusual() -> None:
    assert "permissions" not in value_to_json(HandleValue(1, b"URL", b"x", 0x0E))
    assert "permissions" not in value_to_json(HandleValue(1, b"URL", b"x", 0xFE))  # unused bits are not shown
    assert value_to_json(HandleValue(1, b"URL", b"x", 0x0F))["permissions"] == "1111"
    assert value_to_json(HandleValue(1, b"URL", b"x", 0x08))["permissions"] == "1000"


def test_ttl_and_timestamp_forms() -> None:
    out = value_to_json(HandleValue(1, b"URL", b"x", ttl_type=TTL_ABSOLUTE, ttl=-1, timestamp=1))
    assert out["ttl"] == "1969-12-31T23:59:59Z"
    assert out["timestamp"] == "1970-01-01T00:00:01Z"
    assert value_to_json(HandleValue(1, b"URL", b"x", ttl=0))["ttl"] == 0
    assert "timestamp" not in value_to_json(HandleValue(1, b"URL", b"x"))
    assert "references" not in value_to_json(HandleValue(1, b"URL", b"x"))


@pytest.mark.parametrize(("text", "seconds"), [  # parsed by Java's FastDateFormat.parseUtc to the same values
    ("2023-11-14T22:13:20Z", 1_700_000_000),
    ("2023-11-14T22:13:20.123Z", 1_700_000_000),
    ("2023-11-14T22:13:20+01:00", 1_699_996_400),
    ("2023-11-14", 1_699_920_000),
    ("2023-11-14T22:13:20", 1_700_000_000),
    ("20231114T221320Z", 1_700_000_000),
    ("2023-11-14 22:13:20Z", 1_700_000_000),
    ("2023-11-14T22:13Z", 1_699_999_980),
    ("1901-12-13T20:45:52Z", -(2**31)),
    ("1969-12-31T23:59:59.500Z", 0),  # fractions are cut towards zero, as Java's (int) cast does
])
def test_parse_iso_timestamp(text: str, seconds: int) -> None:
    assert parse_iso_timestamp(text, "t") == seconds


def test_iso_timestamp_extremes() -> None:
    assert iso_timestamp(2**31 - 1) == "2038-01-19T03:14:07Z"
    assert iso_timestamp(-(2**31)) == "1901-12-13T20:45:52Z"


@pytest.mark.parametrize("bad", ["garbage", "2038-01-19T03:14:08Z", "", 5])
def test_bad_timestamps_name_the_field(bad: object) -> None:
    with pytest.raises(JsonFormError, match=r"^value\.timestamp: "):
        value_from_json({"index": 1, "type": "URL", "data": "x", "timestamp": bad})


# --- data formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("data_json", "data"), [
    ("bare", b"bare"),
    ({"format": "STRING", "value": "é"}, "é".encode()),
    ({"format": "base64", "value": "AAEC/v8="}, b"\x00\x01\x02\xfe\xff"),
    ({"format": "Base64", "value": "AAEC_v8"}, b"\x00\x01\x02\xfe\xff"),  # URL-safe, unpadded
    ({"format": "base64", "value": "AAEC\n/v8="}, b"\x00\x01\x02\xfe\xff"),
    ({"format": "hex", "value": "00FFab"}, b"\x00\xff\xab"),
    ({"format": "HEX", "value": ""}, b""),
    ({"format": "admin", "value": {"handle": "0.NA/TEST", "index": 300, "permissions": "*"}},
     encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300))),
    ({"format": "admin", "value": {"handle": "0.NA/TEST", "index": 300}},
     encode_admin(AdminRecord(0, b"0.NA/TEST", 300))),
    ({"format": "admin",
      "value": {"handle": "X", "index": "7", "permissions": [1, 1], "legacyByteLength": True}},
     encode_admin(AdminRecord(3, b"X", 7, legacy_trailer=True))),
    ({"format": "vlist", "value": []}, bytes(4)),
    ({"format": "key", "value": {"kty": "rsa", "n": "AQAB", "e": "Aw"}},
     encode_public_key(RSAPublicKeyData(e=3, n=65537))),
    ({"format": "key", "value": {"kty": "DSA", "y": "BQ", "p": "Bw", "q": "Aw", "g": "Ag"}},
     encode_public_key(DSAPublicKeyData(q=3, p=7, g=2, y=5))),
])
def test_data_input_forms(data_json: object, data: bytes) -> None:
    assert data_from_json(data_json) == data


def _rsa(e: int, n: int) -> bytes:
    return encode_public_key(RSAPublicKeyData(e=e, n=n))


# Format and value written by Java 9.2's GsonUtility for these data (checked with the real jar).
@pytest.mark.parametrize(("vtype", "data", "expected"), [
    (b"HS_ADMIN", bytes.fromhex("0fff00000009302e4e412f544553540000012c0000"),
     {"format": "admin", "value": {"handle": "0.NA/TEST", "index": 300, "permissions": "111111111111",
                                   "legacyByteLength": True}}),
    (b"HS_ADMIN.x", bytes.fromhex("ffff00000009302e4e412f544553540000012c"),
     {"format": "admin", "value": {"handle": "0.NA/TEST", "index": 300, "permissions": "111111111111"}}),
    (b"HS_ADMIN", bytes.fromhex("0fff00000009302e4e412f544553540000012c00"),
     {"format": "base64", "value": "D/8AAAAJMC5OQS9URVNUAAABLAA="}),
    (b"HS_VLIST", bytes.fromhex("0000000100000001410000000100"),
     {"format": "base64", "value": "AAAAAQAAAAFBAAAAAQA="}),
    (b"HS_PUBKEY", bytes.fromhex("0000000a44485f5055425f4b45590000000000010500000001070000000102"),
     {"format": "base64", "value": "AAAACkRIX1BVQl9LRVkAAAAAAAEFAAAAAQcAAAABAg=="}),
    (b"HS_PUBKEY", bytes.fromhex("0000000b5253415f5055425f4b45590000000000010300000001070000"),
     {"format": "base64", "value": "AAAAC1JTQV9QVUJfS0VZAAAAAAABAwAAAAEHAAA="}),
    (b"HS_PUBKEY", encode_public_key(DSAPublicKeyData(q=0, p=0, g=0, y=0)),
     {"format": "key", "value": {"kty": "DSA", "y": "AA", "p": "AA", "q": "AA", "g": "AA"}}),
    (b"X", bytes.fromhex("0913"), {"format": "string", "value": "\t\x13"}),
    (b"X", bytes.fromhex("000102feff"), {"format": "base64", "value": "AAEC/v8="}),
])
def test_data_output_matches_java(vtype: bytes, data: bytes, expected: dict) -> None:
    assert data_to_json(vtype, data) == expected


RSA_ACCEPTANCE = [  # whether Java's KeyFactory accepts the RSA key (measured with the 9.2 jar)
    (65537, (1 << 510) | 1, True), (65537, (1 << 503) | 1, False), (65537, (1 << 504) | 1, True),
    (3, (1 << 511) | 1, True), (2, (1 << 511) | 1, False), (1, (1 << 511) | 1, False),
    (0, (1 << 511) | 1, False), (1 << 511, (1 << 511) | 1, True), ((1 << 511) | 1, (1 << 511) | 1, False),
    (65537, (1 << 16383) | 1, True), (65537, (1 << 16384) | 1, False),
    ((1 << 64) + 1, (1 << 3071) | 1, True), ((1 << 64) + 1, (1 << 3072) | 1, False),
    ((1 << 64) - 1, (1 << 4000) | 1, True), (65537, 7, False),
]


@pytest.mark.parametrize(("e", "n", "key"), RSA_ACCEPTANCE,
                         ids=[f"e{e.bit_length()}b-n{n.bit_length()}b-{k}" for e, n, k in RSA_ACCEPTANCE])
def test_rsa_key_form_only_for_keys_java_accepts(e: int, n: int, key: bool) -> None:
    assert data_to_json(b"HS_PUBKEY", _rsa(e, n))["format"] == ("key" if key else "base64")


def test_dh_keys_have_no_json_key_form() -> None:
    data = encode_public_key(DHPublicKeyData(y=5, p=23, g=2))
    assert data_to_json(b"HS_PUBKEY", data)["format"] == "base64"


def test_text_that_java_would_mangle_is_written_as_base64() -> None:
    # Java writes "string" with a replacement character here and loses the bytes (deliberate difference).
    data = bytes.fromhex("41eda080")
    out = data_to_json(b"X", data)
    assert out == {"format": "base64", "value": "Qe2ggA=="}
    assert data_from_json(out) == data


def test_gson_dumps() -> None:
    assert gson_dumps({"a": [1, {}], "b": "<é>\u2028"}) == '{"a":[1,{}],"b":"<é>\\u2028"}'
    assert gson_dumps({"a": []}, pretty=True) == '{\n  "a": []\n}'


# --- errors name the field -------------------------------------------------------------------------

BASE = {"index": 1, "type": "URL", "data": "x"}


@pytest.mark.parametrize(("change", "where"), [
    ({"index": None}, r"value\.index: missing"),
    ({"index": "one"}, r"value\.index: expected an integer"),
    ({"index": 2**31}, r"value\.index: .* out of range"),
    ({"index": True}, r"value\.index: expected an integer"),
    ({"type": 5}, r"value\.type: expected a string"),
    ({"type": "\ud800"}, r"value\.type: .*surrogate"),
    ({"data": None}, r"value\.data: missing"),
    ({"data": 5}, r"value\.data: expected an object"),
    ({"data": {"value": "x"}}, r"value\.data\.format: missing"),
    ({"data": {"format": "string"}}, r"value\.data\.value: missing"),
    ({"data": {"format": "rot13", "value": "x"}}, r"value\.data\.format: unknown data format 'rot13'"),
    ({"data": {"format": "hex", "value": "abc"}}, r"value\.data\.value: not valid hex"),
    ({"data": {"format": "hex", "value": "zz"}}, r"value\.data\.value: not valid hex"),
    ({"data": {"format": "base64", "value": "A"}}, r"value\.data\.value: not valid base64"),
    ({"data": {"format": "base64", "value": "AA*A"}}, r"value\.data\.value: not valid base64"),
    ({"data": {"format": "admin", "value": {"index": 1}}}, r"value\.data\.value\.handle: missing"),
    ({"data": {"format": "admin", "value": {"handle": "X", "index": 1, "permissions": "2"}}},
     r"value\.data\.value\.permissions: "),
    ({"data": {"format": "vlist", "value": {}}}, r"value\.data\.value: expected an array"),
    ({"data": {"format": "vlist", "value": [{"handle": "X", "index": 1}, None]}},
     r"value\.data\.value\[1\]: expected an object"),
    ({"data": {"format": "key", "value": {"kty": "EC"}}}, r"value\.data\.value\.kty: unsupported"),
    ({"data": {"format": "key", "value": {"kty": "RSA", "n": "AQAB"}}}, r"value\.data\.value\.e: missing"),
    ({"data": {"format": "site", "value": []}}, r"value\.data\.value: expected an object"),
    ({"permissions": "11"}, r"value\.permissions: expected '\*' or 4 characters"),
    ({"permissions": "11a0"}, r"value\.permissions: "),
    ({"permissions": 1110}, r"value\.permissions: expected a string"),
    ({"ttl": "soon"}, r"value\.ttl: not an ISO-8601"),
    ({"ttl": 1.5}, r"value\.ttl: expected an integer"),
    ({"references": {}}, r"value\.references: expected an array"),
    ({"references": [{"handle": "X"}]}, r"value\.references\[0\]\.index: missing"),
])
def test_bad_values_name_the_offending_field(change: dict, where: str) -> None:
    obj = {**BASE, **change}
    obj = {k: v for k, v in obj.items() if not (v is None and k in ("index", "data"))}
    with pytest.raises(JsonFormError, match=f"^{where}"):
        value_from_json(obj)


def test_json_form_error_is_a_value_error() -> None:
    assert issubclass(JsonFormError, ValueError)


def test_list_positions_are_named() -> None:
    with pytest.raises(JsonFormError, match=r"^values\[1\]\.data\.format: unknown"):
        values_from_json([BASE, {**BASE, "data": {"format": "nope", "value": ""}}])
    with pytest.raises(JsonFormError, match=r"^value: expected an object"):
        value_from_json([])


@pytest.mark.parametrize(("obj", "where"), [
    ("x", r"record: expected an object"),
    ({"handle": "X"}, r"record\.values: missing"),
    ({"handle": 5, "values": []}, r"record\.handle: expected a string"),
    ({"values": [{"index": 1}]}, r"record\.values\[0\]\.type: missing"),
])
def test_bad_records(obj: object, where: str) -> None:
    with pytest.raises(JsonFormError, match=f"^{where}"):
        record_from_json(obj)


def test_record_without_handle() -> None:
    assert record_from_json({"values": [BASE]}) == (None, (HandleValue(1, b"URL", b"x"),))

"""hdlserver.wire.valuedata: HS_ADMIN, HS_VLIST, handle references, HS_NAMESPACE, text check, registry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hdlserver.errors import DecodeError
from hdlserver.wire.pubkey import DSAPublicKeyData, RSAPublicKeyData
from hdlserver.wire.site import SiteInfo
from hdlserver.wire.valuedata import (
    ALL_PERMISSIONS,
    PERM_ADD_ADMIN,
    PERM_ADD_DERIVED_PREFIX,
    PERM_ADD_HANDLE,
    PERM_ADD_VALUE,
    PERM_DELETE_DERIVED_PREFIX,
    PERM_DELETE_HANDLE,
    PERM_LIST_HANDLES,
    PERM_MODIFY_ADMIN,
    PERM_MODIFY_VALUE,
    PERM_READ_VALUE,
    PERM_REMOVE_ADMIN,
    PERM_REMOVE_VALUE,
    AdminRecord,
    NamespaceInfo,
    admin_perms_from_batch,
    admin_perms_from_json,
    admin_perms_to_batch,
    admin_perms_to_json,
    decode_admin,
    decode_handle_ref,
    decode_value_data,
    decode_vlist,
    encode_admin,
    encode_handle_ref,
    encode_value_data,
    encode_vlist,
    format_value_reference,
    looks_like_text,
    parse_namespace,
    parse_value_reference_text,
)
from hdlserver.wire.values import ValueReference

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
MISSING = f"Java test vectors not found at {VECTORS} (shared/vectors is not part of a clone)"


def value_data_entries(*types: str) -> list:
    path = VECTORS / "values" / "value_data.json"
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    return [e for e in json.loads(path.read_text()) if not types or e["type"] in types]


def entry_id(e: dict | None) -> str:
    return f"{e['type']}: {e['description'][:40]}" if e else "missing"


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


# --- every value_data.json entry -------------------------------------------------------------------


@pytest.mark.parametrize("e", value_data_entries(), ids=entry_id)
def test_java_value_data_decodes_and_reencodes_byte_exact(e: dict) -> None:
    data = bytes.fromhex(e["data_hex"])
    vtype = e["type"].encode()
    decoded = decode_value_data(vtype, data)
    assert encode_value_data(vtype, decoded) == data


@pytest.mark.parametrize("e", value_data_entries("HS_ADMIN"), ids=entry_id)
def test_java_admin_records(e: dict) -> None:
    rec = decode_admin(bytes.fromhex(e["data_hex"]))
    assert rec.handle == e["admin_handle"].encode()
    assert rec.index == e["admin_index"]
    assert not rec.legacy_trailer
    assert admin_perms_to_batch(rec.permissions) == e["perms12_in_AdminRecord_order"]
    assert admin_perms_from_batch(e["perms12_in_AdminRecord_order"]) == rec.permissions
    assert admin_perms_to_json(rec.permissions) == e["json"]["permissions"]
    assert admin_perms_from_json(e["json"]["permissions"]) == rec.permissions
    assert decode_value_data(b"HS_ADMIN", bytes.fromhex(e["data_hex"])) == rec


@pytest.mark.parametrize("e", value_data_entries("HS_VLIST"), ids=entry_id)
def test_java_value_reference_lists(e: dict) -> None:
    refs = decode_vlist(bytes.fromhex(e["data_hex"]))
    expected = tuple(ValueReference(r["handle"].encode(), r["index"]) for r in e.get("json", []))
    assert refs == expected
    assert encode_vlist(refs) == bytes.fromhex(e["data_hex"])


@pytest.mark.parametrize("e", value_data_entries("HS_NAMESPACE"), ids=entry_id)
def test_java_namespace_fields(e: dict) -> None:
    info = decode_value_data(b"HS_NAMESPACE", bytes.fromhex(e["data_hex"]))
    assert isinstance(info, NamespaceInfo)
    assert info.contact == e["decoded_contact"]
    assert info.status == e["decoded_status"]
    assert info.inactive
    assert info.statusmsg == e["decoded_statusmsg"]
    assert info.template_delimiter == e["decoded_template_delimiter"]
    assert "[" + ", ".join(info.locs) + "]" == e["decoded_locs"]


def test_java_secret_key_values_are_the_stored_bytes() -> None:
    entries = value_data_entries("HS_SECKEY")
    if not isinstance(entries[0], dict):
        pytest.skip(MISSING)
    datas = {bytes.fromhex(e["data_hex"]) for e in entries}
    assert datas == {b"vector-secret", hashlib.sha1(b"vector-secret").hexdigest().encode()}
    for data in datas:
        assert decode_value_data(b"HS_SECKEY", data) == data


@pytest.mark.parametrize("e", value_data_entries("HS_ALIAS", "HS_SERV"), ids=entry_id)
def test_java_handle_references(e: dict) -> None:
    data = bytes.fromhex(e["data_hex"])
    assert decode_value_data(e["type"].encode(), data) == data
    assert data in (b"TEST/vec-1", b"0.NA/TEST")


@pytest.mark.parametrize("e", value_data_entries("HS_PUBKEY"), ids=entry_id)
def test_java_public_keys_decode_to_key_objects(e: dict) -> None:
    key = decode_value_data(b"HS_PUBKEY", bytes.fromhex(e["data_hex"]))
    assert isinstance(key, RSAPublicKeyData | DSAPublicKeyData)


@pytest.mark.parametrize("e", value_data_entries("HS_SITE"), ids=entry_id)
def test_java_site_values_decode_to_site_info(e: dict) -> None:
    site = decode_value_data(b"HS_SITE", bytes.fromhex(e["data_hex"]))
    assert isinstance(site, SiteInfo)
    assert site.serial == e["json"]["serialNumber"]
    assert len(site.servers) == len(e["json"]["servers"])


# --- HS_ADMIN --------------------------------------------------------------------------------------

NO_PREFIX_NO_LIST = PERM_ADD_DERIVED_PREFIX | PERM_DELETE_DERIVED_PREFIX | PERM_LIST_HANDLES
SPEC_ADMIN = h("0fff 00000009 302e4e412f54455354 0000012c")


def test_spec_admin_example() -> None:
    rec = AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)
    assert encode_admin(rec) == SPEC_ADMIN
    assert decode_admin(SPEC_ADMIN) == rec


def test_permission_bits_follow_java_index_order() -> None:
    bits = [PERM_ADD_HANDLE, PERM_DELETE_HANDLE, PERM_ADD_DERIVED_PREFIX, PERM_DELETE_DERIVED_PREFIX,
            PERM_MODIFY_VALUE, PERM_REMOVE_VALUE, PERM_ADD_VALUE, PERM_MODIFY_ADMIN, PERM_REMOVE_ADMIN,
            PERM_ADD_ADMIN, PERM_READ_VALUE, PERM_LIST_HANDLES]
    assert bits == [1 << i for i in range(12)]
    assert sum(bits) == ALL_PERMISSIONS == 0x0FFF


def test_spec_permission_examples() -> None:
    assert ALL_PERMISSIONS & ~NO_PREFIX_NO_LIST == 0x07F3
    assert admin_perms_to_json(0x07F3) == "011111110011"
    assert admin_perms_from_json("011111110011") == 0x07F3


def test_legacy_trailer_is_accepted_and_reencoded_unchanged() -> None:
    legacy = SPEC_ADMIN + b"\x00\x00"
    rec = decode_admin(legacy)
    assert rec == AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300, legacy_trailer=True)
    assert encode_admin(rec) == legacy


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00\x00", b"\x00" * 4])
def test_other_trailing_bytes_after_an_admin_record_are_an_error(extra: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_admin(SPEC_ADMIN + extra)


@pytest.mark.parametrize("cut", [0, 1, 2, 5, 10, len(SPEC_ADMIN) - 1])
def test_truncated_admin_record_is_an_error(cut: int) -> None:
    with pytest.raises(DecodeError):
        decode_admin(SPEC_ADMIN[:cut])


def test_unused_permission_bits_survive_a_round_trip() -> None:
    data = h("ffff 00000001 41 00000001")
    rec = decode_admin(data)
    assert rec.permissions == 0xFFFF
    assert encode_admin(rec) == data
    assert admin_perms_to_json(rec.permissions) == "1" * 12
    assert rec.has(PERM_LIST_HANDLES | PERM_ADD_HANDLE)


def test_batch_flags_are_bit_0_first() -> None:
    # pyhandle's "300:110011111110:0.NA/TEST": everything except the derived-prefix bits and LIST_HANDLES
    perms = admin_perms_from_batch("110011111110")
    assert perms == ALL_PERMISSIONS & ~NO_PREFIX_NO_LIST
    assert admin_perms_from_batch("100000000000") == PERM_ADD_HANDLE
    assert admin_perms_from_batch("000000010000") == PERM_MODIFY_ADMIN  # position 8 (1-based)
    assert admin_perms_from_batch("000000000010") == PERM_READ_VALUE  # position 11
    assert admin_perms_to_batch(PERM_LIST_HANDLES) == "000000000001"


@pytest.mark.parametrize("bad", ["", "11111111111", "1111111111111", "11111111111x", "*"])
def test_bad_batch_flags(bad: str) -> None:
    with pytest.raises(ValueError, match="12 characters"):
        admin_perms_from_batch(bad)


@pytest.mark.parametrize(("form", "perms"), [
    ("*", ALL_PERMISSIONS),
    (True, ALL_PERMISSIONS),
    (False, 0),
    (None, 0),
    ("111111111111", ALL_PERMISSIONS),
    ("1", PERM_ADD_HANDLE),  # right-aligned: the last character is bit 0
    ("10", PERM_DELETE_HANDLE),
    ("1000000000000", 0),  # Java reads only the last 12 characters
    (0x7F3, 0x7F3),
    (0xFFFF, ALL_PERMISSIONS),
    (-1, ALL_PERMISSIONS),
    ([True, 0, "x", None, 1.5, {}, [], "", 0.0, False, 1, 1, 1], 0b110001110101),
])
def test_admin_permission_json_forms(form: object, perms: int) -> None:
    assert admin_perms_from_json(form) == perms


@pytest.mark.parametrize("bad", ["", "12", "abc", {"a": 1}, 1.5])
def test_bad_admin_permission_json(bad: object) -> None:
    with pytest.raises(ValueError, match="admin permissions"):
        admin_perms_from_json(bad)


# --- HS_VLIST --------------------------------------------------------------------------------------

SPEC_VLIST = h("00000002 0000000a 544553542f41444d494e 0000012c 0000000b 544553542f41444d494e32 0000012d")


def test_spec_vlist_example() -> None:
    refs = (ValueReference(b"TEST/ADMIN", 300), ValueReference(b"TEST/ADMIN2", 301))
    assert encode_vlist(refs) == SPEC_VLIST
    assert decode_vlist(SPEC_VLIST) == refs
    assert encode_vlist(()) == bytes(4)


@pytest.mark.parametrize("bad", [SPEC_VLIST + b"\x00", SPEC_VLIST[:-1], SPEC_VLIST[:3],
                                 h("7fffffff 00000001 41 00000001"), h("ffffffff")])
def test_bad_vlists_are_decode_errors(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_vlist(bad)


# --- handle references and the text form -----------------------------------------------------------


def test_handle_references() -> None:
    assert decode_handle_ref("TEST/é".encode()) == "TEST/é".encode()
    assert encode_handle_ref("TEST/é") == "TEST/é".encode()
    assert encode_handle_ref(b"0.NA/TEST") == b"0.NA/TEST"
    with pytest.raises(DecodeError, match="UTF-8"):
        decode_handle_ref(b"TEST/\xff")
    with pytest.raises(DecodeError):
        decode_value_data(b"HS_SERV.PREFIX", b"\xc0\x80")


@pytest.mark.parametrize(("text", "ref"), [
    ("300:0.NA/TEST", ValueReference(b"0.NA/TEST", 300)),
    ("0.NA/TEST", ValueReference(b"0.NA/TEST", 0)),
    ("0:TEST/x", ValueReference(b"TEST/x", 0)),
    ("abc:TEST/x", ValueReference(b"abc:TEST/x", 0)),
    ("1:2:TEST/x", ValueReference(b"2:TEST/x", 1)),
    ("TEST/ü", ValueReference("TEST/ü".encode(), 0)),
])
def test_parse_value_reference_text(text: str, ref: ValueReference) -> None:
    assert parse_value_reference_text(text) == ref


@pytest.mark.parametrize("bad", ["", "300:", "99999999999:TEST/x"])
def test_bad_value_reference_text(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_value_reference_text(bad)


def test_format_value_reference_round_trips() -> None:
    ref = ValueReference(b"0.NA/TEST", 300)
    assert format_value_reference(ref) == "300:0.NA/TEST"
    odd = ValueReference(b"a:b", 0)
    assert parse_value_reference_text(format_value_reference(odd)) == odd


# --- HS_NAMESPACE ----------------------------------------------------------------------------------


def test_namespace_defaults_and_templates() -> None:
    xml = (b'<namespace><template delimiter="@"><foo a="1">x</foo></template>text'
           b'<template ref="10:abc/def"/><locs no_nslocs="true">TEST/l1</locs><locs>TEST/l2</locs>'
           b'</namespace>')
    info = parse_namespace(xml)
    assert info.status == "active" and not info.inactive
    assert info.contact is None and info.statusmsg is None
    assert info.template_delimiter == "@"
    assert info.template_ref is None  # Java reads the first <template> only
    assert info.templates == ('<template delimiter="@"><foo a="1">x</foo></template>',
                              '<template ref="10:abc/def" />')
    assert info.locs == ("TEST/l1", "TEST/l2")
    assert info.no_nslocs
    assert info.xml == xml


def test_namespace_element_names_are_case_sensitive_like_java() -> None:
    info = parse_namespace(b"<NS><CONTACT>x</CONTACT><Status>inactive</Status></NS>")
    assert info.contact is None and info.status == "active"


def test_namespace_entities_are_decoded_and_empty_status_kept() -> None:
    info = parse_namespace(b"<ns><contact>a &amp; b</contact><status></status></ns>")
    assert info.contact == "a & b"
    assert info.status == ""


@pytest.mark.parametrize("bad", [
    b"plain text",
    b"<ns><contact>a</contact>",
    b"<ns></nz>",
    b"",
    b"<ns>\xff</ns>",
])
def test_malformed_namespace_xml_is_a_decode_error(bad: bytes) -> None:
    with pytest.raises(DecodeError, match="HS_NAMESPACE"):
        parse_namespace(bad)


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE ns [<!ENTITY e "zz">]><ns><contact>&e;</contact></ns>',
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><ns>&lol2;</ns>',
    b'<!DOCTYPE ns SYSTEM "http://example.org/ns.dtd"><ns/>',
])
def test_doctype_is_rejected(doc: bytes) -> None:
    with pytest.raises(DecodeError, match="DOCTYPE"):
        parse_namespace(doc)


def test_deep_nesting_is_rejected() -> None:
    deep = b"<ns><template>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</template></ns>"
    with pytest.raises(DecodeError, match="deeper than"):
        parse_namespace(deep)
    assert parse_namespace(b"<ns><template>" + b"<a>" * 90 + b"</a>" * 90 + b"</template></ns>").templates


# --- looks_like_text (values.md 10; expectations observed with Java 9.2's GsonUtility) ---------------


@pytest.mark.parametrize(("hex_data", "text"), [
    ("", True),
    ("687474703a2f2f", True),
    ("09", True), ("0a", True), ("0d", True), ("13", True),  # 0x09-0x13 count as whitespace
    ("00", False), ("08", False), ("14", False), ("1f", False), ("7f", False),
    ("c3a9", True),  # é
    ("c080", False),  # overlong
    ("e08080", False), ("e0a080", True),
    ("f0808080", False), ("f0908080", True),
    ("eda080", True),  # an encoded surrogate passes Java's permissive check
    ("f48f8080", True), ("f4908080", True),  # above U+10FFFF passes too
    ("fc8480808080", True), ("fc8080808080", False),  # 6-byte forms
    ("f8888080804142", True),
    ("80", False), ("fe", False), ("ff", False), ("41e2", False),
])
def test_looks_like_text(hex_data: str, text: bool) -> None:
    assert looks_like_text(bytes.fromhex(hex_data)) is text


# --- registry --------------------------------------------------------------------------------------


def test_registry_uses_has_type() -> None:
    assert isinstance(decode_value_data(b"hs_admin", SPEC_ADMIN), AdminRecord)
    assert isinstance(decode_value_data(b"HS_ADMIN.x", SPEC_ADMIN), AdminRecord)
    assert decode_value_data(b"HS_VLIST", SPEC_VLIST)[1].index == 301
    assert decode_value_data(b"HS_ADMINX", SPEC_ADMIN) == SPEC_ADMIN


def test_site_subtypes_decode_as_sites() -> None:
    data = h("0001020b 00018002 00000000 00000000 00000000")
    for vtype in (b"HS_SITE", b"HS_SITE.6", b"HS_SITE.PREFIX", b"HS_NA_DELEGATE"):
        assert decode_value_data(vtype, data) == SiteInfo(serial=1, primary=True)


def test_unknown_types_keep_their_bytes() -> None:
    data = b"\x00\xffanything"
    assert decode_value_data(b"10320/loc", data) is data
    assert encode_value_data(b"10320/loc", data) is data
    with pytest.raises(TypeError):
        encode_value_data(b"URL", "text")


def test_bad_well_known_data_is_a_decode_error() -> None:
    for vtype in (b"HS_ADMIN", b"HS_VLIST", b"HS_SITE", b"HS_PUBKEY", b"HS_NAMESPACE", b"HS_ALIAS"):
        with pytest.raises(DecodeError):
            decode_value_data(vtype, b"\xff\xfe\xfd")

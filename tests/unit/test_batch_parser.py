"""GenericBatch parser: every line form, both file layouts (Java's and pyhandle's) and each malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hdlserver.batch.operations import (
    Action,
    Authenticate,
    BatchItem,
    HandleOperation,
    HomePrefixes,
    Invalid,
    PrefixLine,
    PublicKeyCredentials,
    SecretKeyCredentials,
    SessionSetup,
)
from hdlserver.batch.parser import LineError, parse_batch, parse_value_line, split_lines
from hdlserver.wire.site import decode_site
from hdlserver.wire.valuedata import ALL_PERMISSIONS, AdminRecord, decode_admin, decode_vlist, encode_admin
from hdlserver.wire.values import HandleValue, ValueReference


def parse(text: str | bytes, files: dict[str, bytes] | None = None) -> list[BatchItem]:
    data = text.encode("utf-8") if isinstance(text, str) else text

    def read_file(path: str) -> bytes:
        if files is None or path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return files[path]

    return list(parse_batch(split_lines(data), read_file))


ADMIN_LINE = "100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/TEST"
ADMIN_VALUE = HandleValue(100, b"HS_ADMIN", encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)))


# --- the two layouts ---------------------------------------------------------------------------------


def test_java_layout_with_blank_lines() -> None:
    items = parse(f"AUTHENTICATE SECKEY:300:0.NA/TEST\nsecret\n\nCREATE TEST/a\n{ADMIN_LINE}\n"
                  "1 URL 86400 1110 UTF8 http://example.org/x\n\nREMOVE 1,2:TEST/a\n\nDELETE TEST/a\n\n")
    assert items == [
        Authenticate(1, SecretKeyCredentials("0.NA/TEST", 300, b"secret")),
        HandleOperation(4, Action.CREATE, "TEST/a", (ADMIN_VALUE, HandleValue(1, b"URL", b"http://example.org/x"))),
        HandleOperation(8, Action.REMOVE, "TEST/a", indexes=(1, 2)),
        HandleOperation(10, Action.DELETE, "TEST/a"),
    ]


def test_pyhandle_layout_without_blank_lines_between_blocks() -> None:
    text = ("\nAUTHENTICATE SECKEY:300:0.NA/TEST\nsecret\nCREATE TEST/p\n"
            "100 HS_ADMIN 86400 1110 ADMIN 300:110011111110:0.NA/TEST\n\n"
            "ADD TEST/p\n1 URL 86400 1110 UTF8 http://e.org/1\nADD TEST/p\n2 EMAIL 86400 1110 UTF8 a@e.org\n"
            "MODIFY TEST/p\n1 URL 86400 1110 UTF8 http://e.org/2\nREMOVE 2:TEST/p\nDELETE TEST/q")
    items = parse(text)
    assert [(type(i).__name__, getattr(i, "line", 0)) for i in items] == [
        ("Authenticate", 2), ("HandleOperation", 4), ("HandleOperation", 7), ("HandleOperation", 9),
        ("HandleOperation", 11), ("HandleOperation", 13), ("HandleOperation", 14)]
    ops = [i for i in items if isinstance(i, HandleOperation)]
    assert [o.action for o in ops] == [Action.CREATE, Action.ADD, Action.ADD, Action.MODIFY, Action.REMOVE,
                                       Action.DELETE]
    assert decode_admin(ops[0].values[0].data).permissions == 0x07F3  # the flags are bit 0 first
    assert ops[2].values == (HandleValue(2, b"EMAIL", b"a@e.org"),)
    assert ops[4].indexes == (2,) and ops[5].handle == "TEST/q"


def test_keywords_are_case_insensitive_and_crlf_and_bom_are_accepted() -> None:
    items = parse(b"\xef\xbb\xbfcreate TEST/a\r\n" + ADMIN_LINE.replace("ADMIN 300", "admin 300").encode()
                  + b"\r\n\r\ndelete TEST/a\r\n")
    assert items == [HandleOperation(1, Action.CREATE, "TEST/a", (ADMIN_VALUE,)),
                     HandleOperation(4, Action.DELETE, "TEST/a")]


# --- value lines -------------------------------------------------------------------------------------


def test_utf8_value_keeps_inner_spaces_and_trims_the_ends() -> None:
    value = parse_value_line("7 DESC 3600 1101 UTF8   a   description  with spaces  ")
    assert value == HandleValue(7, b"DESC", b"a   description  with spaces", permissions=0x0D, ttl=3600)


def test_utf8_value_may_be_empty_and_non_ascii() -> None:
    assert parse_value_line("1 DESC 86400 1110 UTF8").data == b""
    assert parse_value_line("1 DESC 86400 1110 UTF8 Grüße").data == "Grüße".encode()


@pytest.mark.parametrize(("perm", "bits"), [("1110", 0x0E), ("1100", 0x0C), ("0001", 0x01), ("0000", 0)])
def test_permission_characters_are_admin_read_write_public_read_write(perm: str, bits: int) -> None:
    assert parse_value_line(f"1 URL 86400 {perm} UTF8 x").permissions == bits


def test_admin_value_flags_in_genericbatch_bit_order() -> None:
    # position 1 = ADD_HANDLE (bit 0) ... position 12 = LIST_HANDLES (bit 11); position 11 is READ_VALUE
    value = parse_value_line("100 HS_ADMIN 86400 1110 ADMIN 301:100000000010:0.NA/TEST")
    assert decode_admin(value.data) == AdminRecord(0x0001 | 0x0400, b"0.NA/TEST", 301)


def test_list_value_with_and_without_trailing_semicolon() -> None:
    refs = (ValueReference(b"0.NA/TEST", 300), ValueReference(b"TEST/group", 301))
    for line in ("5 HS_VLIST 86400 1110 LIST 300:0.NA/TEST;301:TEST/group",
                 "5 HS_VLIST 86400 1110 LIST 300:0.NA/TEST; 301:TEST/group;"):
        assert decode_vlist(parse_value_line(line).data) == refs


def test_file_value_reads_the_bytes() -> None:
    items = parse("ADD TEST/a\n301 HS_PUBKEY 86400 1110 FILE /keys/pub.bin\n", {"/keys/pub.bin": b"\x00\x01key"})
    assert isinstance(items[0], HandleOperation)
    assert items[0].values[0].data == b"\x00\x01key"


def test_file_value_hs_site_json_is_stored_in_binary_form(tmp_path: Path) -> None:
    site_json = {"version": 1, "protocolVersion": "2.11", "serialNumber": 3, "primarySite": True,
                 "multiPrimary": False, "servers": [{"serverId": 1, "address": "127.0.0.1",
                 "publicKey": {"format": "base64", "value": "AQI="},
                 "interfaces": [{"query": True, "admin": True, "protocol": "TCP", "port": 2641}]}]}
    items = parse("ADD 0.NA/TEST\n2 HS_SITE 86400 1110 FILE site.json\n",
                  {"site.json": json.dumps(site_json).encode()})
    assert isinstance(items[0], HandleOperation)
    site = decode_site(items[0].values[0].data)
    assert site.serial == 3 and site.servers[0].interfaces[0].port == 2641


def test_negative_and_signed_numbers_are_sent_for_the_server_to_judge() -> None:
    value = parse_value_line("+5 URL -1 1110 UTF8 x")
    assert (value.index, value.ttl) == (5, -1)


@pytest.mark.parametrize(("line", "message"), [
    ("x URL 86400 1110 UTF8 a", "value index 'x' is not an integer"),
    ("1 URL forever 1110 UTF8 a", "ttl 'forever' is not an integer"),
    ("1 URL 99999999999 1110 UTF8 a", "ttl 99999999999 does not fit in 32 bits"),
    ("1 URL 86400 111 UTF8 a", "permissions '111' must be 4 characters"),
    ("1 URL 86400 11x0 UTF8 a", "permissions '11x0' must be 4 characters"),
    ("1 URL 86400 1110 BASE64 AAAA", "unknown data kind 'BASE64'"),
    ("1 URL 86400 1110", "a value line needs"),
    ("100 HS_ADMIN 86400 1110 ADMIN 300:111111111111", "ADMIN data must be"),
    ("100 HS_ADMIN 86400 1110 ADMIN x:111111111111:0.NA/T", "admin index 'x' is not an integer"),
    ("100 HS_ADMIN 86400 1110 ADMIN 300:1111:0.NA/T", "admin permissions must be 12 characters"),
    ("5 HS_VLIST 86400 1110 LIST ;;", "LIST data names no"),
    ("5 HS_VLIST 86400 1110 LIST 300", "LIST entry '300' must be <index>:<handle>"),
    ("5 HS_VLIST 86400 1110 LIST q:TEST/x", "LIST index 'q' is not an integer"),
    ("5 HS_PUBKEY 86400 1110 FILE", "FILE data names no file"),
    ("5 HS_PUBKEY 86400 1110 FILE /no/such/file", "cannot read file /no/such/file: No such file or directory"),
])
def test_malformed_value_lines(line: str, message: str) -> None:
    with pytest.raises(LineError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        parse_value_line(line, lambda p: (_ for _ in ()).throw(FileNotFoundError(2, "No such file or directory")))


def test_malformed_site_json_file_names_the_problem() -> None:
    items = parse("ADD 0.NA/TEST\n2 HS_SITE 86400 1110 FILE s.json\n", {"s.json": b"{not json"})
    assert isinstance(items[0], Invalid) and items[0].line == 2 and "invalid JSON" in items[0].reason


# --- malformed operations: reported with their line, nothing half-parsed is produced ----------------


def test_bad_value_line_invalidates_only_its_operation() -> None:
    items = parse(f"CREATE TEST/a\n{ADMIN_LINE}\n1 URL 86400 1110 UTF8 ok\n2 URL zz 1110 UTF8 bad\n"
                  "3 URL 86400 1110 UTF8 skipped with its block\n\nDELETE TEST/b\n")
    assert items == [Invalid(4, "CREATE TEST/a (line 1): ttl 'zz' is not an integer", operation=True),
                     HandleOperation(7, Action.DELETE, "TEST/b")]


def test_unknown_operation_skips_its_block() -> None:
    items = parse(f"CRAETE TEST/a\n{ADMIN_LINE}\n\nDELETE TEST/a\n")
    assert isinstance(items[0], Invalid) and items[0].line == 1 and "unknown operation 'CRAETE'" in items[0].reason
    assert items[1:] == [HandleOperation(4, Action.DELETE, "TEST/a")]


def test_non_utf8_line_is_named_and_only_its_block_skipped() -> None:
    items = parse(b"CREATE TEST/a\n1 URL 86400 1110 UTF8 caf\xe9\n\nDELETE TEST/a\n\xff\xfe\nDELETE TEST/b\n")
    assert items[0] == Invalid(2, "CREATE TEST/a (line 1): not valid UTF-8 (byte 26 of the line)", operation=True)
    assert items[1] == HandleOperation(4, Action.DELETE, "TEST/a")
    assert items[2] == Invalid(5, "not valid UTF-8 (byte 1 of the line)")
    assert items[3] == HandleOperation(6, Action.DELETE, "TEST/b")


@pytest.mark.parametrize("text", ["CREATE TEST/a\n\nDELETE TEST/b", "CREATE TEST/a\nDELETE TEST/b", "CREATE TEST/a"])
def test_create_without_values(text: str) -> None:
    items = parse(text)
    assert items[0] == Invalid(1, "CREATE TEST/a: no handle values follow", operation=True)


def test_operations_without_a_handle() -> None:
    items = parse(f"CREATE\n{ADMIN_LINE}\n\nDELETE\nADD   \n")
    assert [i.reason for i in items if isinstance(i, Invalid)] == [
        "CREATE: no handle after CREATE", "DELETE: no handle after DELETE", "ADD: no handle after ADD"]


@pytest.mark.parametrize(("line", "message"), [
    ("REMOVE TEST/a", "REMOVE needs <index>[,<index>...]:<handle>"),
    ("REMOVE 1:", "REMOVE needs"),
    ("REMOVE 1,x:TEST/a", "REMOVE TEST/a: value index 'x' is not an integer"),
])
def test_malformed_remove(line: str, message: str) -> None:
    (item,) = parse(line)
    assert isinstance(item, Invalid) and item.line == 1 and item.reason.startswith(message)


# --- AUTHENTICATE ------------------------------------------------------------------------------------


def test_authenticate_pubkey_with_and_without_passphrase() -> None:
    items = parse("AUTHENTICATE PUBKEY:301:0.NA/TEST\n/k/admpriv.bin\n\n"
                  "AUTHENTICATE pubkey:302:0.NA/TEST\n/k/enc.bin | my pass \n")
    assert items == [Authenticate(1, PublicKeyCredentials("0.NA/TEST", 301, "/k/admpriv.bin", None)),
                     Authenticate(4, PublicKeyCredentials("0.NA/TEST", 302, "/k/enc.bin", b"my pass"))]


@pytest.mark.parametrize("text", ["AUTHENTICATE SECKEY:300:0.NA/TEST", "AUTHENTICATE SECKEY:300:0.NA/TEST\n\n",
                                  "AUTHENTICATE SECKEY:300:0.NA/TEST\nDELETE TEST/a"])
def test_authenticate_missing_password_line(text: str) -> None:
    items = parse(text)
    assert items[0] == Invalid(1, "AUTHENTICATE SECKEY:300:0.NA/TEST: the password line is missing")
    assert items[1:] == ([HandleOperation(2, Action.DELETE, "TEST/a")] if "DELETE" in text else [])


def test_authenticate_missing_key_file_line() -> None:
    (item,) = parse("AUTHENTICATE PUBKEY:301:0.NA/TEST\n")
    assert item == Invalid(1, "AUTHENTICATE PUBKEY:301:0.NA/TEST: the key file line is missing")


@pytest.mark.parametrize(("line", "message"), [
    ("AUTHENTICATE PASSWORD:300:0.NA/TEST", "AUTHENTICATE needs SECKEY:<index>:<handle>"),
    ("AUTHENTICATE SECKEY:300", "AUTHENTICATE needs"),
    ("AUTHENTICATE SECKEY:abc:0.NA/TEST", "AUTHENTICATE: identity index 'abc' is not an integer"),
])
def test_malformed_authenticate(line: str, message: str) -> None:
    item = parse(line + "\nsecret\n")[0]
    assert isinstance(item, Invalid) and item.line == 1 and item.reason.startswith(message)


def test_authenticate_non_utf8_password_line() -> None:
    (item,) = parse(b"AUTHENTICATE SECKEY:300:0.NA/TEST\n\xff\n")
    assert item == Invalid(2, "password line of AUTHENTICATE SECKEY: not valid UTF-8 (byte 1 of the line)")


# --- HOME / UNHOME and SESSIONSETUP ------------------------------------------------------------------


def test_home_and_unhome_blocks() -> None:
    items = parse("HOME 127.0.0.1:2641:TCP\n0.NA/A\n0.na/B\nnot-a-prefix\n\nUNHOME [::1]:2641:udp\n0.NA/C\n")
    assert items == [
        Invalid(4, "HOME: 'not-a-prefix' is not a prefix handle (0.NA/<prefix>)"),
        HomePrefixes(1, True, "127.0.0.1", 2641, "tcp", (PrefixLine(2, "0.NA/A"), PrefixLine(3, "0.na/B"))),
        HomePrefixes(6, False, "::1", 2641, "udp", (PrefixLine(7, "0.NA/C"),)),
    ]


@pytest.mark.parametrize("line", ["HOME 127.0.0.1:2641", "HOME 127.0.0.1:2641:smtp", "HOME localhost"])
def test_malformed_home_line(line: str) -> None:
    items = parse(line + "\n0.NA/A\n\nDELETE TEST/a\n")
    assert isinstance(items[0], Invalid) and items[0].line == 1 and "HOME needs <address>:<port>" in items[0].reason
    assert items[1:] == [HandleOperation(4, Action.DELETE, "TEST/a")]


def test_session_setup_block() -> None:
    items = parse("SESSIONSETUP\nUSESESSION:1\nOPTIONS:10\nTIMEOUT:2\n\nSESSIONSETUP\nUSESESSION:0\n")
    assert items == [SessionSetup(1, True, encrypted=True, authenticated=False, timeout=7200),
                     SessionSetup(6, False)]


def test_session_setup_exchange_key_lines_and_bad_lines() -> None:
    items = parse("SESSIONSETUP\nUSESESSION:1\nPUBEXNGKEYREF:300:0.NA/TEST\nPRIVEXNGKEYFILE:/k\nPASSPHRASE:x\n"
                  "OPTIONS:2\nTIMEOUT:soon\nCOLOUR:blue\n")
    assert items[:3] == [
        Invalid(6, "SESSIONSETUP: OPTIONS '2' must be at least 2 characters 0/1 (encrypted, authenticated)"),
        Invalid(7, "SESSIONSETUP: TIMEOUT (hours) 'soon' is not an integer"),
        Invalid(8, "SESSIONSETUP: unknown session setup line 'COLOUR:blue'"),
    ]
    assert items[3] == SessionSetup(1, True, exchange_key=True)

"""siteinfo.json / siteinfo.bin: hdlserver.jsonform.site_json and hdlserver.config.siteinfo (values.md 9)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hdlserver.config.siteinfo import (
    load_site_info,
    read_site_info_file,
    save_site_info_bin,
    save_site_info_json,
    site_info_json_text,
)
from hdlserver.errors import ConfigError
from hdlserver.jsonform.site_json import site_from_json, site_to_json
from hdlserver.jsonform.values_json import JsonFormError, value_from_json
from hdlserver.wire.handles import HASH_BY_ALL, HASH_BY_PREFIX
from hdlserver.wire.pubkey import RSAPublicKeyData, encode_public_key
from hdlserver.wire.site import (
    IF_ADMIN,
    IF_ADMIN_AND_QUERY,
    IF_OUT_OF_SERVICE,
    IF_QUERY,
    PROTO_HTTP,
    PROTO_HTTPS,
    PROTO_TCP,
    PROTO_UDP,
    Interface,
    ServerInfo,
    SiteInfo,
    address_from_text,
    decode_site,
    encode_site,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
VALUES = VECTORS / "values"
MISSING = f"Java test vectors not found at {VECTORS} (shared/vectors is not part of a clone)"
PAIRS = ["siteinfo", "siteinfo_multi"]


def pair(name: str) -> tuple[bytes, str]:
    if not VALUES.exists():
        pytest.skip(MISSING)
    return (VALUES / f"{name}.bin").read_bytes(), (VALUES / f"{name}.json").read_text()


KEY = {"format": "hex", "value": "0102"}


def one_server(**server: object) -> dict:
    base: dict = {"serverId": 1, "address": "192.0.2.1", "publicKey": KEY}
    return {"servers": [{**base, **server}]}


# --- Java vectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAIRS)
def test_bin_to_json_matches_java_text(name: str) -> None:
    data, text = pair(name)
    site = decode_site(data)
    assert site_to_json(site) == json.loads(text)
    assert site_info_json_text(site) == text


@pytest.mark.parametrize("name", PAIRS)
def test_json_to_bin_matches_java_bytes(name: str) -> None:
    data, text = pair(name)
    assert encode_site(site_from_json(json.loads(text))) == data


@pytest.mark.parametrize("name", PAIRS)
def test_save_writes_what_java_writes(name: str, tmp_path: Path) -> None:
    data, text = pair(name)
    site = decode_site(data)
    save_site_info_json(tmp_path / "siteinfo.json", site)
    save_site_info_bin(tmp_path / "siteinfo.bin", site)
    assert (tmp_path / "siteinfo.json").read_text() == text
    assert (tmp_path / "siteinfo.bin").read_bytes() == data
    assert not list(tmp_path.glob("*.tmp"))


# --- JSON input forms (expected bytes produced by Java 9.2's GsonUtility + Encoder) ---------------------


def test_empty_object_takes_java_defaults() -> None:
    site = site_from_json({})
    assert site == SiteInfo(serial=0, primary=False, multi_primary=False, hash_option=HASH_BY_ALL)
    assert encode_site(site).hex().upper() == "0001020B00000002000000000000000000000000"


def test_mixed_and_legacy_forms_like_java() -> None:
    obj = {
        "servers": [
            {"serverId": 1, "address": "::ffff:1.2.3.4", "publicKey": KEY,
             "interfaces": [{"query": True, "admin": False, "protocol": "7", "port": 1}]},
            {"serverId": 2, "address": "1.2.3.4", "publicKey": "abc"},  # a bare string is UTF-8 text
            {"ServerId": 3, "Address": "1.2.3.4", "PublicKey": "abcd", "Port": 5},  # legacy: hex key
        ],
        "hashFilter": "x", "hashOption": 0, "attributes": {"a": ["1", "2"], "b": "3"},
    }
    expected = ("0001020B000000000000000178000000030000000161000000013100000001610000000132000000016200"
                "0000013300000003000000010000000000000000000000000102030400000002010200000001020700000001"
                "000000020000000000000000000000000102030400000003616263000000000000000300000000000000000000"
                "00000102030400000002ABCD00000000")
    assert encode_site(site_from_json(obj)).hex().upper() == expected


def test_negative_protocol_number_like_java() -> None:
    interface = {"query": True, "admin": False, "protocol": -1, "port": 1}
    obj = one_server(address="1.2.3.4", interfaces=[interface])
    site = site_from_json(obj)
    assert encode_site(site).hex().upper() == ("0001020B00000002000000000000000000000001000000010000000000"
                                               "000000000000000102030400000002010200000001" "02FF00000001")
    assert site_to_json(site)["servers"][0]["interfaces"][0]["protocol"] == -1


def test_legacy_capitalised_site() -> None:
    interface = {"Query": True, "Admin": True, "Protocol": "TCP", "Port": 2641}
    obj = {"Version": 1, "ProtocolVersion": "2.10", "SerialNumber": 4, "PrimarySite": True,
           "MultiPrimary": True, "HashOption": 0, "Attributes": [{"name": "desc", "value": "old"}],
           "ServerList": [{"ServerId": 9, "Address": "192.0.2.9", "PublicKey": "0102",
                           "InterfaceList": [interface]}]}
    site = site_from_json(obj)
    assert site == SiteInfo(1, 2, 10, 4, True, True, HASH_BY_PREFIX, b"", ((b"desc", b"old"),),
                            (ServerInfo(9, address_from_text("192.0.2.9"), b"\x01\x02",
                                        (Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, 2641),)),))


@pytest.mark.parametrize(("key_json", "key"), [
    ({"format": "base64", "value": "AQI="}, b"\x01\x02"),
    ({"format": "hex", "value": "0102"}, b"\x01\x02"),
    ({"format": "string", "value": "ab"}, b"ab"),
    ("ab", b"ab"),
    ({"format": "key", "value": {"kty": "RSA", "n": "AQAB", "e": "Aw"}},
     encode_public_key(RSAPublicKeyData(e=3, n=65537))),
])
def test_public_key_forms(key_json: object, key: bytes) -> None:
    assert site_from_json(one_server(publicKey=key_json)).servers[0].public_key == key


def test_interface_forms() -> None:
    interfaces = [
        {"query": True, "admin": True, "protocol": "HTTPS", "port": 443},
        {"query": "true", "protocol": "udp", "port": "2641"},
        {"admin": True, "protocol": 2, "port": 8000},
        {"protocol": "TCP", "port": 1},
    ]
    site = site_from_json({"serverList": [{"serverId": 1, "address": "::1", "publicKey": KEY,
                                           "interfaceList": interfaces}]})
    assert site.servers[0].interfaces == (Interface(IF_ADMIN_AND_QUERY, PROTO_HTTPS, 443),
                                          Interface(IF_QUERY, PROTO_UDP, 2641),
                                          Interface(IF_ADMIN, PROTO_HTTP, 8000),
                                          Interface(IF_OUT_OF_SERVICE, PROTO_TCP, 1))


def test_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_getaddrinfo(host: str, *_args: object, **_kwargs: object) -> list:
        calls.append(host)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::5%eth0", 0, 0, 1)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.77", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert site_from_json(one_server(address="[2001:db8::1]")).servers[0].address_text() == "2001:db8::1"
    assert site_from_json(one_server(address="10.0.0.1")).servers[0].address_text() == "10.0.0.1"
    assert calls == []  # IP literals are never resolved
    assert site_from_json(one_server(address="hdl.example.org")).servers[0].address_text() == "192.0.2.77"
    assert calls == ["hdl.example.org"]


def test_host_names_can_be_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", mock_never_called)
    with pytest.raises(JsonFormError, match=r"^site\.servers\[0\]\.address: 'hdl\.example\.org' is not an IP"):
        site_from_json(one_server(address="hdl.example.org"), resolve_host_names=False)
    value = {"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": one_server(address="h.example")}}
    with pytest.raises(JsonFormError, match=r"^value\.data\.value\.servers\[0\]\.address: 'h\.example' is not"):
        value_from_json(value, resolve_host_names=False)
    site = site_from_json(one_server(address="2001:db8::1"), resolve_host_names=False)
    assert site.servers[0].address_text() == "2001:db8::1"
    # Java's rule: the first 12 bytes are zero, so ::1 reads back as the IPv4 address 0.0.0.1
    assert site_from_json(one_server(address="::1")).servers[0].address_text() == "0.0.0.1"


def mock_never_called(*_args: object, **_kwargs: object) -> list:
    raise AssertionError("getaddrinfo must not be called")


def test_unresolvable_host_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*_args: object, **_kwargs: object) -> list:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", failing)
    with pytest.raises(JsonFormError, match=r"^site\.servers\[0\]\.address: cannot resolve host name"):
        site_from_json(one_server(address="nowhere.invalid"))


# --- JSON output -----------------------------------------------------------------------------------


def test_output_keys_and_signed_bytes() -> None:
    site = SiteInfo(serial=3, hash_option=0xFF, hash_filter=b"f",
                    servers=(ServerInfo(1, address_from_text("2001:db8::2"), b"\x00\x01",
                                        (Interface(IF_QUERY, 0xFF, 1),)),))
    out = site_to_json(site)
    assert list(out) == ["version", "protocolVersion", "serialNumber", "primarySite", "multiPrimary",
                         "hashOption", "hashFilter", "attributes", "servers"]
    assert out["hashOption"] == -1
    assert out["hashFilter"] == "f"
    assert out["servers"][0] == {"serverId": 1, "address": "2001:db8::2",
                                 "publicKey": {"format": "base64", "value": "AAE="},
                                 "interfaces": [{"query": True, "admin": False, "protocol": -1, "port": 1}]}
    assert site_from_json(out) == site
    assert "hashOption" not in site_to_json(SiteInfo())
    assert "hashFilter" not in site_to_json(SiteInfo())


# --- bad JSON names the field ----------------------------------------------------------------------


@pytest.mark.parametrize(("obj", "where"), [
    ([], r"site: expected an object"),
    ({"protocolVersion": "2"}, r"site\.protocolVersion: expected \"major\.minor\""),
    ({"protocolVersion": "2.x"}, r"site\.protocolVersion: expected an integer"),
    ({"serialNumber": 70000}, r"site\.serialNumber: 70000 is out of range"),
    ({"primarySite": "yes"}, r"site\.primarySite: expected true or false"),
    ({"attributes": [{"value": "x"}]}, r"site\.attributes\[0\]\.name: missing"),
    ({"attributes": {"a": [1]}}, r"site\.attributes\.a\[0\]: expected a string"),
    ({"servers": {}}, r"site\.servers: expected an array"),
    ({"servers": [{"address": "1.2.3.4", "publicKey": KEY}]}, r"site\.servers\[0\]\.serverId: missing"),
    ({"servers": [{"serverId": 1, "publicKey": KEY}]}, r"site\.servers\[0\]\.address: missing"),
    ({"servers": [{"serverId": 1, "address": "1.2.3.4"}]}, r"site\.servers\[0\]\.publicKey: missing"),
    ({"servers": [{"serverId": 1, "address": "", "publicKey": KEY}]}, r"site\.servers\[0\]\.address: empty"),
    ({"servers": [{"ServerId": 1, "Address": "1.2.3.4", "PublicKey": "xyz"}]},
     r"site\.servers\[0\]\.publicKey: not valid hex"),
    (one_server(interfaces=[{"protocol": "SCTP", "port": 1}]),
     r"site\.servers\[0\]\.interfaces\[0\]\.protocol: expected UDP, TCP"),
    (one_server(interfaces=[{"protocol": "TCP"}]), r"site\.servers\[0\]\.interfaces\[0\]\.port: missing"),
    (one_server(interfaces=[{"protocol": 300, "port": 1}]), r"site\.servers\[0\]\.interfaces\[0\]\.protocol"),
    (one_server(publicKey={"format": "site", "value": {}}), r"site\.servers\[0\]\.publicKey\.format: expected one of"),
    (one_server(publicKey={"value": "00"}), r"site\.servers\[0\]\.publicKey\.format: missing"),
])
def test_bad_site_json(obj: object, where: str) -> None:
    with pytest.raises(JsonFormError, match=f"^{where}"):
        site_from_json(obj)


# --- server directory loading ----------------------------------------------------------------------

SITE_A = SiteInfo(serial=5, servers=(ServerInfo(1, address_from_text("192.0.2.1"), b"\x01",
                                                (Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, 2641),)),))
SITE_B = SiteInfo(serial=6)


def test_json_only(tmp_path: Path) -> None:
    save_site_info_json(tmp_path / "siteinfo.json", SITE_A)
    assert load_site_info(tmp_path) == SITE_A


def test_bin_only(tmp_path: Path) -> None:
    save_site_info_bin(tmp_path / "siteinfo.bin", SITE_A)
    assert load_site_info(tmp_path) == SITE_A


def test_bin_wins_over_json(tmp_path: Path) -> None:
    save_site_info_json(tmp_path / "siteinfo.json", SITE_A)
    save_site_info_bin(tmp_path / "siteinfo.bin", SITE_B)
    assert load_site_info(tmp_path) == SITE_B


def test_neither_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"neither siteinfo\.bin nor siteinfo\.json") as info:
        load_site_info(tmp_path)
    assert info.value.path == str(tmp_path)


def test_named_file_is_sniffed(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(b"\xef\xbb\xbf  " + site_info_json_text(SITE_A).encode())
    save_site_info_bin(tmp_path / "b.dat", SITE_B)
    assert load_site_info(tmp_path, file_name="a.json") == SITE_A
    assert load_site_info(tmp_path, file_name="b.dat") == SITE_B
    assert read_site_info_file(tmp_path / "b.dat") == SITE_B
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_site_info(tmp_path, file_name="absent.json")
    assert info.value.path == str(tmp_path / "absent.json")


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "siteinfo.json").write_text('{\n  "version": 1,\n  oops\n}')
    with pytest.raises(ConfigError, match="invalid JSON") as info:
        load_site_info(tmp_path)
    assert info.value.path == str(tmp_path / "siteinfo.json")
    assert info.value.line == 3


def test_invalid_site_json_names_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "siteinfo.json").write_text(json.dumps({"servers": [{"serverId": 1}]}))
    with pytest.raises(ConfigError, match=r"site\.servers\[0\]\.address: missing") as info:
        load_site_info(tmp_path)
    assert info.value.path == str(tmp_path / "siteinfo.json")


def test_non_utf8_json(tmp_path: Path) -> None:
    (tmp_path / "siteinfo.json").write_bytes(b'{"desc": "\xff"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_site_info(tmp_path)


@pytest.mark.parametrize("data", [b"", b"\x00\x01", encode_site(SITE_A) + b"\x00", encode_site(SITE_A)[:-1]])
def test_invalid_bin_names_the_file(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "siteinfo.bin").write_bytes(data)
    save_site_info_json(tmp_path / "siteinfo.json", SITE_A)  # never consulted: the .bin wins
    with pytest.raises(ConfigError, match="not a valid binary site record") as info:
        load_site_info(tmp_path)
    assert info.value.path == str(tmp_path / "siteinfo.bin")


def test_unwritable_destination(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write"):
        save_site_info_json(tmp_path / "missing-dir" / "siteinfo.json", SITE_A)

"""hdlserver.wire.site: the HS_SITE record (values.md 3) against the spec example and the Java vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hdlserver.errors import DecodeError
from hdlserver.wire.handles import HASH_BY_ALL, HASH_BY_PREFIX, HASH_BY_SUFFIX
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
    address_to_text,
    decode_site,
    encode_site,
)

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
MISSING = f"Java test vectors not found at {VECTORS} (shared/vectors is not part of a clone)"
PROTOCOLS = {"UDP": PROTO_UDP, "TCP": PROTO_TCP, "HTTP": PROTO_HTTP, "HTTPS": PROTO_HTTPS}


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def site_entries() -> list:
    path = VECTORS / "values" / "value_data.json"
    if not path.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    return [e for e in json.loads(path.read_text()) if e["type"] == "HS_SITE"]


def site_files() -> list:
    names = ["siteinfo", "siteinfo_multi"]
    if not (VECTORS / "values").exists():
        return [pytest.param(n, marks=pytest.mark.skip(reason=MISSING)) for n in names]
    return names


# --- values.md 3.1 example -------------------------------------------------------------------------

SPEC_SITE = h("""0001020b 00018002 00000000 00000001 00000004 64657363 00000001 74000000 01000000
                 01000000 00000000 00000000 007f0000 01000000 02010200 00000203 0100000a 51020000 000a51""")
SPEC_SITE_INFO = SiteInfo(
    data_format_version=1, major=2, minor=11, serial=1, primary=True, multi_primary=False,
    hash_option=HASH_BY_ALL, hash_filter=b"", attributes=((b"desc", b"t"),),
    servers=(ServerInfo(1, bytes(12) + bytes([127, 0, 0, 1]), b"\x01\x02",
                        (Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, 2641),
                         Interface(IF_QUERY, PROTO_UDP, 2641))),),
)


def test_spec_site_example_encodes_byte_exact() -> None:
    assert encode_site(SPEC_SITE_INFO) == SPEC_SITE


def test_spec_site_example_decodes() -> None:
    site = decode_site(SPEC_SITE)
    assert site == SPEC_SITE_INFO
    assert site.servers[0].address_text() == "127.0.0.1"
    assert site.attribute(b"desc") == b"t"
    assert site.attribute(b"domain") is None


def test_defaults_are_a_primary_2_11_site_hashed_by_all() -> None:
    assert encode_site(SiteInfo()) == h("0001 02 0b 0001 80 02 00000000 00000000 00000000")


def test_primary_mask_bits() -> None:
    for primary, multi, mask in [(True, False, 0x80), (True, True, 0xC0), (False, True, 0x40),
                                 (False, False, 0)]:
        data = encode_site(SiteInfo(primary=primary, multi_primary=multi))
        assert data[6] == mask
        assert decode_site(data) == SiteInfo(primary=primary, multi_primary=multi)


def test_int2_fields_are_signed_like_java() -> None:
    data = h("ffff 02 0b ffff 80 02 00000000 00000000 00000000")
    site = decode_site(data)
    assert (site.data_format_version, site.serial) == (-1, -1)
    assert encode_site(site) == data


def test_hash_filter_and_unknown_attributes_are_kept() -> None:
    site = SiteInfo(hash_option=HASH_BY_SUFFIX, hash_filter=b"\x00\xff",
                    attributes=((b"x-unknown", b"\xfe"), (b"desc", b""), (b"desc", b"twice")))
    assert decode_site(encode_site(site)) == site


# --- bad input -------------------------------------------------------------------------------------


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        decode_site(SPEC_SITE + b"\x00")


def test_every_truncation_is_a_decode_error() -> None:
    for cut in range(len(SPEC_SITE)):
        with pytest.raises(DecodeError):
            decode_site(SPEC_SITE[:cut])


@pytest.mark.parametrize("data", [
    h("0001020b 00018002 00000000 7fffffff"),  # attribute count far beyond the data
    h("0001020b 00018002 00000000 00000000 7fffffff"),  # server count
    h("0001020b 00018002 00000000 00000000 ffffffff"),  # negative count
    h("0001020b 00018002 ffffffff 00000000 00000000"),  # negative hash filter length
    h("0001020b 00018002 00000000 00000000 00000001 00000001") + bytes(16) + h("00000000 7fffffff"),
])
def test_impossible_counts_are_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_site(data)


# --- Java vectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("e", site_entries(), ids=lambda e: e["description"][:40] if e else "missing")
def test_java_site_records(e: dict) -> None:
    data = bytes.fromhex(e["data_hex"])
    site = decode_site(data)
    assert encode_site(site) == data
    j = e["json"]
    assert (site.data_format_version, f"{site.major}.{site.minor}") == (j["version"], j["protocolVersion"])
    assert site.serial == j["serialNumber"]
    assert (site.primary, site.multi_primary) == (j["primarySite"], j["multiPrimary"])
    assert site.hash_option == j.get("hashOption", HASH_BY_ALL)
    assert site.attributes == tuple((a["name"].encode(), a["value"].encode()) for a in j["attributes"])
    assert len(site.servers) == len(j["servers"])
    for server, sj in zip(site.servers, j["servers"], strict=True):
        assert server.server_id == sj["serverId"]
        assert server.address_text() == sj["address"]
        assert server.address == address_from_text(sj["address"])
        assert server.interfaces == tuple(
            Interface((IF_QUERY if i["query"] else 0) | (IF_ADMIN if i["admin"] else 0),
                      PROTOCOLS[i["protocol"]], i["port"]) for i in sj["interfaces"])


@pytest.mark.parametrize("name", site_files())
def test_java_siteinfo_bin_files_round_trip(name: str) -> None:
    data = (VECTORS / "values" / f"{name}.bin").read_bytes()
    site = decode_site(data)
    assert encode_site(site) == data
    assert site.servers


# --- addresses -------------------------------------------------------------------------------------

# Written by Java 9.2's ServerInfo.getAddressString (Util.rfcIpRepr for IPv6).
JAVA_ADDRESS_TEXT = [
    ("0000000000000000000000007f000001", "127.0.0.1"),
    ("00000000000000000000000000000000", "0.0.0.0"),
    ("000000000000000000000000ffffffff", "255.255.255.255"),
    ("00000000000000000000ffff01020304", "::ffff:102:304"),
    ("20010db8000000000000000000000002", "2001:db8::2"),
    ("20010db8000000010000000000000001", "2001:db8:0:1::1"),
    ("20010db8000000000001000000000001", "2001:db8::1:0:0:1"),
    ("abcd0db8000000000001000000000001", "abcd:db8::1:0:0:1"),
    ("00010000000000000000000000000000", "1:0:0:0:0:0:0:0"),
    ("fe800000000000000000000000000000", "fe80:0:0:0:0:0:0:0"),
    ("20010db8000000000000000100000000", "2001:db8::1:0:0"),
    ("00000000000000000000000100000000", "::1:0:0"),
    ("20010000000000010000000000000000", "2001::1:0:0:0:0"),
    ("20010db8000100010001000100000000", "2001:db8:1:1:1:1:0:0"),
    ("20010db8000100000001000100010001", "2001:db8:1:0:1:1:1:1"),
    ("20010db8000000010001000000000001", "2001:db8:0:1:1::1"),
    ("00000000000000010000000000000000", "::1:0:0:0:0"),
]


@pytest.mark.parametrize(("hex_address", "text"), JAVA_ADDRESS_TEXT)
def test_address_text_matches_java(hex_address: str, text: str) -> None:
    address = bytes.fromhex(hex_address)
    assert address_to_text(address) == text
    assert ServerInfo(1, address, b"").address_text() == text


@pytest.mark.parametrize(("text", "hex_address"), [
    ("127.0.0.1", "0000000000000000000000007f000001"),
    ("2001:db8::2", "20010db8000000000000000000000002"),
    ("2001:DB8:0:0:0:0:0:2", "20010db8000000000000000000000002"),
    ("::1", "00000000000000000000000000000001"),
    ("::ffff:1.2.3.4", "00000000000000000000000001020304"),  # Java's InetAddress unmaps it
])
def test_address_from_text(text: str, hex_address: str) -> None:
    assert address_from_text(text) == bytes.fromhex(hex_address)
    assert ServerInfo.address_from_text(text) == bytes.fromhex(hex_address)


@pytest.mark.parametrize("bad", ["", "example.org", "1.2.3", "1.2.3.4.5", "2001:db8:::1"])
def test_address_from_text_rejects_non_literals(bad: str) -> None:
    with pytest.raises(ValueError):
        address_from_text(bad)


def test_server_address_must_be_16_bytes() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        ServerInfo(1, bytes(4), b"")


# --- helpers ---------------------------------------------------------------------------------------


def test_interface_roles() -> None:
    assert [(Interface(t, PROTO_TCP, 1).admin, Interface(t, PROTO_TCP, 1).query)
            for t in (IF_OUT_OF_SERVICE, IF_ADMIN, IF_QUERY, IF_ADMIN_AND_QUERY)] == [
        (False, False), (True, False), (False, True), (True, True)]
    assert Interface(IF_QUERY, PROTO_HTTPS, 443).protocol_name == "HTTPS"
    assert Interface(IF_QUERY, 9, 443).protocol_name == "9"


def _server(server_id: int, *interfaces: Interface) -> ServerInfo:
    return ServerInfo(server_id, address_from_text(f"192.0.2.{server_id}"), b"", interfaces)


def test_server_by_id_and_interface_for() -> None:
    site = SiteInfo(servers=(_server(1, Interface(IF_QUERY, PROTO_UDP, 2641)),
                             _server(7, Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, 2641),
                                     Interface(IF_ADMIN, PROTO_TCP, 2642))))
    assert site.server_by_id(7) is site.servers[1]
    assert site.server_by_id(3) is None
    assert site.interface_for(PROTO_TCP, 2642) == Interface(IF_ADMIN, PROTO_TCP, 2642)
    assert site.interface_for(PROTO_UDP, 2641) == Interface(IF_QUERY, PROTO_UDP, 2641)
    assert site.interface_for(PROTO_UDP, 2641, server_id=7) is None
    assert site.interface_for(PROTO_HTTP, 8000) is None
    assert site.servers[1].interface_for(PROTO_TCP, 2641) == Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, 2641)


@pytest.mark.parametrize(("hash_option", "handle", "h_value"), [
    (HASH_BY_ALL, b"TEST/1", 647626165),
    (HASH_BY_PREFIX, b"test/abc", 916572737),
    (HASH_BY_SUFFIX, b"0.NA/TEST", 916572737),
    (HASH_BY_ALL, b"noslash", 923316370),
])
def test_responsible_server_uses_the_spec_hash(hash_option: int, handle: bytes, h_value: int) -> None:
    servers = tuple(_server(i) for i in range(1, 6))
    site = SiteInfo(hash_option=hash_option, servers=servers)
    assert site.responsible_server(handle) is servers[h_value % 5]
    assert SiteInfo(servers=servers[:1]).responsible_server(handle) is servers[0]


def test_responsible_server_of_an_empty_site() -> None:
    with pytest.raises(ValueError, match="no servers"):
        SiteInfo().responsible_server(b"TEST/1")

"""Files both ways between hdlserver and the Java tools: site information (JSON and binary) and key files.

Java's ``hdl-convert-siteinfo IN -o OUT`` turns a binary site record into pretty-printed JSON and JSON
into the binary record; it decides by looking at the input. Our side is hdlserver.config.siteinfo,
hdlserver.jsonform.site_json and hdlserver.wire.site.

Key files: tests/unit/test_keygen_cli.py already runs Java hdl-keygen (RSA plain and encrypted, DSA
encrypted) against hdlserver.auth.keys, and Java hdl-keyutil / hdl-convert-key on the files our
hdl-keygen writes; only the remaining case, a plain DSA key from Java, is here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from java import JavaServer, run_java
from servers import setup_server_dir

from hdlserver.auth import keys
from hdlserver.config.siteinfo import (
    load_site_info,
    read_site_info_file,
    save_site_info_bin,
    save_site_info_json,
    site_info_json_text,
)
from hdlserver.jsonform.site_json import site_from_json
from hdlserver.wire.handles import HASH_BY_PREFIX
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

pytestmark = pytest.mark.interop


def convert_siteinfo(source: Path, target: Path) -> bytes:
    run = run_java("hdl-convert-siteinfo", source, "-o", target)
    assert run.returncode == 0, run.describe()
    assert target.is_file(), run.describe()
    return target.read_bytes()


@pytest.fixture(scope="module")
def our_server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server directory made by our hdl-setup-server (not started)."""
    directory = tmp_path_factory.mktemp("setup") / "srv"
    setup_server_dir(directory)
    return directory


def test_java_converts_our_siteinfo_json_to_our_binary_record(our_server_dir: Path, tmp_path: Path) -> None:
    site = load_site_info(our_server_dir)
    data = convert_siteinfo(our_server_dir / "siteinfo.json", tmp_path / "siteinfo.bin")
    assert data == encode_site(site)
    assert read_site_info_file(tmp_path / "siteinfo.bin") == site


def test_java_json_of_our_binary_record_is_our_siteinfo_json(our_server_dir: Path, tmp_path: Path) -> None:
    """Our siteinfo.bin, converted to JSON by Java: byte for byte the siteinfo.json our setup wrote."""
    site = load_site_info(our_server_dir)
    save_site_info_bin(tmp_path / "siteinfo.bin", site)
    text = convert_siteinfo(tmp_path / "siteinfo.bin", tmp_path / "siteinfo.json").decode("utf-8")
    assert text == (our_server_dir / "siteinfo.json").read_text(encoding="utf-8")
    assert site_from_json(json.loads(text)) == site


def test_we_read_javas_siteinfo_json_as_java_does(java_server: JavaServer, tmp_path: Path) -> None:
    """The siteinfo.json Java's SimpleSetup wrote (hdl-local-server-setup then edited it with awk): our
    reading equals Java's own binary encoding of it, and our JSON writer reproduces Java's JSON text."""
    ours = load_site_info(java_server.directory)
    data = convert_siteinfo(java_server.siteinfo, tmp_path / "siteinfo.bin")
    assert decode_site(data) == ours
    assert encode_site(ours) == data
    java_text = convert_siteinfo(tmp_path / "siteinfo.bin", tmp_path / "siteinfo.json").decode("utf-8")
    assert site_info_json_text(ours) == java_text


def unusual_site() -> SiteInfo:
    """A record that uses what SimpleSetup never writes: two servers, IPv6, a DSA key, HTTP(S) and
    out-of-service interfaces, repeated attributes, a hash filter, hashing by prefix, a secondary site."""
    rsa_public = keys.public_key_to_bytes(keys.generate_key_pair("RSA", 1024).public_key())
    dsa_public = keys.public_key_to_bytes(keys.generate_key_pair("DSA", 1024).public_key())
    return SiteInfo(
        serial=32000, primary=False, multi_primary=True, hash_option=HASH_BY_PREFIX, hash_filter=b"x",
        attributes=((b"desc", b"interop site \xc3\xa9"), (b"alt_addr.1", b"192.0.2.77"), (b"desc", b"second")),
        servers=(
            ServerInfo(1, address_from_text("192.0.2.10"), rsa_public, (
                Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, 2641), Interface(IF_QUERY, PROTO_UDP, 2641),
                Interface(IF_ADMIN_AND_QUERY, PROTO_HTTP, 8000))),
            ServerInfo(7, address_from_text("2001:db8::1:0:0:1"), dsa_public, (
                Interface(IF_QUERY, PROTO_TCP, 65535), Interface(IF_OUT_OF_SERVICE, PROTO_HTTPS, 8443),
                Interface(IF_ADMIN, PROTO_UDP, 1))),
        ),
    )


def test_unusual_site_record_round_trips_through_java(tmp_path: Path) -> None:
    site = unusual_site()
    save_site_info_json(tmp_path / "ours.json", site)
    assert convert_siteinfo(tmp_path / "ours.json", tmp_path / "java.bin") == encode_site(site)
    save_site_info_bin(tmp_path / "ours.bin", site)
    text = convert_siteinfo(tmp_path / "ours.bin", tmp_path / "java.json").decode("utf-8")
    assert site_from_json(json.loads(text)) == site
    assert text == site_info_json_text(site)


def test_java_keygen_plain_dsa_key_reads_with_our_code(tmp_path: Path) -> None:
    private_file, public_file = tmp_path / "priv.bin", tmp_path / "pub.bin"
    run = run_java("hdl-keygen", "-alg", "DSA", private_file, public_file, input_text="n\n")
    assert run.returncode == 0, run.describe()
    assert "algorithm=DSA; keysize=1024" in run.stdout, run.describe()
    data = private_file.read_bytes()
    assert not keys.is_encrypted_key_file(data)
    private = keys.load_private_key(private_file)
    public = keys.load_public_key(public_file)
    assert keys.keys_match(private, public)
    assert private.key_size == 1024
    # Our encodings of Java's keys are byte for byte Java's files.
    assert keys.write_private_key_file(private, None) == data
    assert keys.public_key_to_bytes(public) == public_file.read_bytes()
    signature = keys.sign(private, b"interop", "SHA-256")
    assert keys.verify(public, signature, b"interop", "SHA-256")

"""Value data codecs, HS_SITE and the JSON forms round-trip; decoders raise only DecodeError."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from hdlserver.errors import DecodeError
from hdlserver.jsonform.site_json import site_from_json, site_to_json
from hdlserver.jsonform.values_json import (
    JsonFormError,
    gson_dumps,
    public_key_data_to_json,
    record_from_json,
    value_from_json,
    value_to_json,
)
from hdlserver.wire.pubkey import DSAPublicKeyData, RSAPublicKeyData, decode_public_key, encode_public_key
from hdlserver.wire.site import Interface, ServerInfo, SiteInfo, decode_site, encode_site
from hdlserver.wire.valuedata import (
    ALL_PERMISSIONS,
    AdminRecord,
    decode_admin,
    decode_value_data,
    decode_vlist,
    encode_admin,
    encode_value_data,
    encode_vlist,
)
from hdlserver.wire.values import TTL_ABSOLUTE, TTL_RELATIVE, HandleValue, ValueReference

int4 = st.integers(-(2**31), 2**31 - 1)
int2 = st.integers(-(2**15), 2**15 - 1)
byte = st.integers(0, 255)
utf8_text = st.text(max_size=30).map(lambda s: s.encode("utf-8"))  # st.text never yields surrogates
references = st.builds(ValueReference, utf8_text, int4)


# --- strategies ------------------------------------------------------------------------------------


def admin_records(json_safe: bool = False) -> st.SearchStrategy[AdminRecord]:
    perms = st.integers(0, ALL_PERMISSIONS) if json_safe else st.integers(0, 0xFFFF)
    handle = utf8_text if json_safe else st.binary(max_size=30)
    return st.builds(AdminRecord, perms, handle, int4, st.booleans())


def _ipv4(raw: bytes) -> bytes:
    return bytes(12) + raw


def _not_ipv4_or_mapped(raw: bytes) -> bool:
    return raw[:12] != bytes(12) and raw[:12] != bytes(10) + b"\xff\xff"


addresses = st.one_of(st.binary(min_size=4, max_size=4).map(_ipv4),
                      st.binary(min_size=16, max_size=16).filter(_not_ipv4_or_mapped))

rsa_keys = st.builds(RSAPublicKeyData, e=st.integers(3, 2**64), n=st.integers(2**504, 2**2048)).filter(
    lambda k: k.e < k.n)
dsa_keys = st.builds(DSAPublicKeyData, q=st.integers(0, 2**160), p=st.integers(0, 2**1024),
                     g=st.integers(0, 2**1024), y=st.integers(0, 2**1024))
canonical_keys = st.one_of(rsa_keys, dsa_keys).map(encode_public_key)


def _json_safe_key(data: bytes) -> bool:
    """Bytes the JSON form gives back unchanged: written as base64, or a canonical key encoding."""
    if public_key_data_to_json(data) is None:
        return True
    return encode_public_key(decode_public_key(data)) == data


interfaces = st.builds(Interface, st.integers(0, 3), byte, int4)


def servers(json_safe: bool) -> st.SearchStrategy[ServerInfo]:
    key = st.one_of(st.binary(max_size=40), canonical_keys)
    if json_safe:
        key = key.filter(_json_safe_key)
        address = addresses
        iface = interfaces
    else:
        address = st.binary(min_size=16, max_size=16)
        iface = st.builds(Interface, byte, byte, int4)
    return st.builds(ServerInfo, int4, address, key, st.lists(iface, max_size=3).map(tuple))


def sites(json_safe: bool = False) -> st.SearchStrategy[SiteInfo]:
    text = utf8_text if json_safe else st.binary(max_size=20)
    return st.builds(
        SiteInfo, int2, byte, byte, int2, st.booleans(), st.booleans(), byte, text,
        st.lists(st.tuples(text, text), max_size=3).map(tuple),
        st.lists(servers(json_safe), max_size=3).map(tuple),
    )


def typed_data() -> st.SearchStrategy[tuple[bytes, bytes]]:
    """(type, data) pairs whose data survives the JSON format Java would choose for it."""
    return st.one_of(
        st.tuples(utf8_text.filter(lambda t: not t.upper().startswith(b"HS_")), st.binary(max_size=40)),
        st.tuples(st.just(b"HS_ADMIN"), admin_records(json_safe=True).map(encode_admin)),
        st.tuples(st.just(b"HS_VLIST"), st.lists(st.builds(ValueReference, utf8_text, int4), max_size=3)
                  .map(encode_vlist)),
        st.tuples(st.sampled_from([b"HS_SITE", b"HS_SITE.6", b"HS_SITE.PREFIX", b"HS_NA_DELEGATE"]),
                  sites(json_safe=True).map(encode_site)),
        st.tuples(st.just(b"HS_PUBKEY"), canonical_keys),
        st.tuples(st.just(b"HS_SECKEY"), st.binary(max_size=40)),
    )


@st.composite
def json_safe_values(draw: st.DrawFn) -> HandleValue:
    vtype, data = draw(typed_data())
    return HandleValue(draw(int4), vtype, data, draw(st.integers(0, 15)),
                       draw(st.sampled_from([TTL_RELATIVE, TTL_ABSOLUTE])), draw(int4), draw(int4),
                       tuple(draw(st.lists(references, max_size=3))))


# --- round trips -----------------------------------------------------------------------------------


@given(admin_records())
def test_admin_record_round_trip(rec: AdminRecord) -> None:
    assert decode_admin(encode_admin(rec)) == rec
    assert decode_value_data(b"HS_ADMIN", encode_value_data(b"HS_ADMIN", rec)) == rec


@given(st.lists(st.builds(ValueReference, st.binary(max_size=30), int4), max_size=5).map(tuple))
def test_vlist_round_trip(refs: tuple[ValueReference, ...]) -> None:
    assert decode_vlist(encode_vlist(refs)) == refs


@given(sites())
def test_site_binary_round_trip(site: SiteInfo) -> None:
    data = encode_site(site)
    assert decode_site(data) == site
    assert encode_site(decode_site(data)) == data


@given(sites(json_safe=True))
def test_site_json_round_trip(site: SiteInfo) -> None:
    text = gson_dumps(site_to_json(site), pretty=True)
    assert site_from_json(json.loads(text)) == site


@given(json_safe_values())
def test_value_json_round_trip(value: HandleValue) -> None:
    text = gson_dumps(value_to_json(value))
    assert value_from_json(json.loads(text)) == value


@given(st.lists(json_safe_values(), max_size=3))
def test_record_json_round_trip(values: list[HandleValue]) -> None:
    obj = {"handle": "TEST/x", "values": [value_to_json(v) for v in values]}
    assert record_from_json(obj) == (b"TEST/x", tuple(values))


# --- decoder invariant: bytes decode or raise DecodeError, nothing else -------------------------------


def _mutated(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Valid encodings with one byte changed, truncated or extended: near-valid input reaches deep."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(valid))
        action = draw(st.sampled_from(["flip", "cut", "extend"]))
        if action == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(byte)
        elif action == "cut":
            del data[draw(st.integers(0, len(data))):]
        else:
            data += draw(st.binary(min_size=1, max_size=4))
        return bytes(data)

    return mutate()


def _decodes_or_decode_error(decode: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(data)


@given(st.one_of(st.binary(max_size=200), _mutated(sites().map(encode_site))))
def test_decode_site_raises_only_decode_error(data: bytes) -> None:
    _decodes_or_decode_error(decode_site, data)


@given(st.one_of(st.binary(max_size=60), _mutated(admin_records().map(encode_admin))))
def test_decode_admin_raises_only_decode_error(data: bytes) -> None:
    _decodes_or_decode_error(decode_admin, data)


@given(st.one_of(st.binary(max_size=80),
                 _mutated(st.lists(references, max_size=4).map(encode_vlist))))
def test_decode_vlist_raises_only_decode_error(data: bytes) -> None:
    _decodes_or_decode_error(decode_vlist, data)


WELL_KNOWN = [b"HS_ADMIN", b"HS_VLIST", b"HS_SITE", b"HS_SITE.PREFIX", b"HS_NA_DELEGATE", b"HS_PUBKEY",
              b"HS_SECKEY", b"HS_SERV", b"HS_SERV.PREFIX", b"HS_ALIAS", b"HS_NAMESPACE", b"URL", b"10320/loc"]


@given(st.sampled_from(WELL_KNOWN),
       st.one_of(st.binary(max_size=120), _mutated(typed_data().map(lambda td: td[1])),
                 _mutated(st.just(b"<ns><contact>x</contact><template delimiter='@'/></ns>"))))
def test_decode_value_data_raises_only_decode_error(vtype: bytes, data: bytes) -> None:
    try:
        decoded = decode_value_data(vtype, data)
    except DecodeError:
        return
    if vtype in (b"URL", b"10320/loc", b"HS_SECKEY"):
        assert decoded == data


def no_network() -> mock._patch:
    """Host names in random JSON must not reach a resolver."""
    return mock.patch.object(socket, "getaddrinfo", side_effect=socket.gaierror(-2, "no network in tests"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["index", "type", "data", "format", "value", "permissions", "ttl", "timestamp",
                         "references", "handle", "servers", "address", "publicKey", "kty", "n", "e"]),
        inner, max_size=6),
    max_leaves=20,
)


@given(json_values)
def test_json_readers_raise_only_json_form_error(obj: object) -> None:
    with no_network():
        readers: tuple[Callable[[object], object], ...] = (value_from_json, site_from_json, record_from_json)
        for reader in readers:
            with contextlib.suppress(JsonFormError):
                reader(obj)


@given(st.sampled_from(["admin", "vlist", "site", "key", "hex", "base64", "string"]), json_values)
def test_typed_data_readers_raise_only_json_form_error(fmt: str, value: object) -> None:
    obj = {"index": 1, "type": "X", "data": {"format": fmt, "value": value}}
    with no_network(), contextlib.suppress(JsonFormError):
        value_from_json(obj)


"""siteinfo.json and the ``site`` data format: the JSON form of HS_SITE records (values.md section 9).

Output matches Java's ``GsonUtility`` (key order, optional keys, signed byte fields). Input accepts what
Java reads, including the legacy capitalised keys of older Handle.Net versions.
"""

from __future__ import annotations

import socket

from hdlserver.jsonform.values_json import (
    INT4_MAX,
    INT4_MIN,
    JsonFormError,
    binary_to_json,
    data_from_json,
    expect_array,
    expect_bool,
    expect_int,
    expect_object,
    expect_str,
    hex_decode,
    kind_of,
    public_key_data_to_json,
    require,
    text_of,
    typed,
    utf8,
)
from hdlserver.wire.handles import HASH_BY_ALL
from hdlserver.wire.site import (
    IF_ADMIN,
    IF_QUERY,
    PROTOCOL_NAMES,
    Interface,
    ServerInfo,
    SiteInfo,
    address_from_text,
)

_PROTOCOLS_BY_NAME = {name: code for code, name in PROTOCOL_NAMES.items()}
_LEGACY_MARKERS = ("ServerList", "Address", "Port")
_KEY_FORMATS = ("key", "base64", "hex", "string")


def _signed8(b: int) -> int:
    """Java prints byte fields signed."""
    b &= 0xFF
    return b - 0x100 if b >= 0x80 else b


def _signed16(n: int) -> int:
    n &= 0xFFFF
    return n - 0x10000 if n >= 0x8000 else n


def _byte(v: object, where: str) -> int:
    return expect_int(v, where, -0x80, 0xFF) & 0xFF


def _int2(v: object, where: str) -> int:
    """An int2 field, kept signed as Java's decoder reads it back."""
    return _signed16(expect_int(v, where, -0x8000, 0xFFFF))


def _lower_case_if_needed(obj: dict) -> tuple[dict, bool]:
    """Java lower-cases the first letter of every key of an object written in the legacy capitalised form."""
    if not any(k in obj for k in _LEGACY_MARKERS):
        return obj, False
    return {k[:1].lower() + k[1:]: v for k, v in obj.items()}, True


# --- output ----------------------------------------------------------------------------------------


def interface_to_json(iface: Interface) -> dict:
    protocol: str | int = PROTOCOL_NAMES.get(iface.protocol, _signed8(iface.protocol))
    return {"query": iface.query, "admin": iface.admin, "protocol": protocol, "port": iface.port}


def server_to_json(server: ServerInfo) -> dict:
    key = public_key_data_to_json(server.public_key)
    return {
        "serverId": server.server_id,
        "address": server.address_text(),
        # Java writes a server key it cannot turn into a key object as base64, never as a string.
        "publicKey": typed("key", key) if key is not None else binary_to_json(server.public_key),
        "interfaces": [interface_to_json(i) for i in server.interfaces],
    }


def site_to_json(site: SiteInfo) -> dict:
    out: dict = {
        "version": site.data_format_version,
        "protocolVersion": f"{_signed8(site.major)}.{_signed8(site.minor)}",
        "serialNumber": site.serial,
        "primarySite": site.primary,
        "multiPrimary": site.multi_primary,
    }
    if site.hash_option != HASH_BY_ALL:
        out["hashOption"] = _signed8(site.hash_option)
    if site.hash_filter:
        out["hashFilter"] = text_of(site.hash_filter)
    out["attributes"] = [{"name": text_of(n), "value": text_of(v)} for n, v in site.attributes]
    out["servers"] = [server_to_json(s) for s in site.servers]
    return out


# --- input -----------------------------------------------------------------------------------------


def resolve_address(text: str, where: str, resolve_host_names: bool = True) -> bytes:
    """16-byte address of an IP literal or, failing that, of a host name (first IPv4 result preferred,
    as Java's ``InetAddress.getByName`` does)."""
    literal = text.strip()
    if literal.startswith("[") and literal.endswith("]"):
        literal = literal[1:-1]
    if not literal:
        raise JsonFormError(f"{where}: empty address")
    try:
        return address_from_text(literal)
    except ValueError:
        pass
    if not resolve_host_names:
        raise JsonFormError(f"{where}: {literal!r} is not an IP address (host names are not resolved here)")
    try:
        infos = socket.getaddrinfo(literal, None, proto=socket.IPPROTO_TCP)
    except (OSError, ValueError) as e:
        raise JsonFormError(f"{where}: cannot resolve host name {literal!r}: {e}") from None
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family:
                return address_from_text(info[4][0].split("%")[0])  # drop an IPv6 zone id
    raise JsonFormError(f"{where}: host name {literal!r} has no IPv4 or IPv6 address")


def _protocol(v: object, where: str) -> int:
    if isinstance(v, str) and v.upper() in _PROTOCOLS_BY_NAME:
        return _PROTOCOLS_BY_NAME[v.upper()]
    if isinstance(v, str | int) and not isinstance(v, bool):
        try:
            return _byte(v, where)
        except JsonFormError:
            pass
    raise JsonFormError(f"{where}: expected UDP, TCP, HTTP, HTTPS or a protocol number, "
                        f"got {kind_of(v)} {v!r}")


def interface_from_json(obj: object, where: str) -> Interface:
    obj, _ = _lower_case_if_needed(expect_object(obj, where))
    query = obj.get("query") is not None and expect_bool(obj["query"], f"{where}.query")
    admin = obj.get("admin") is not None and expect_bool(obj["admin"], f"{where}.admin")
    itype = (IF_QUERY if query else 0) | (IF_ADMIN if admin else 0)
    protocol = _protocol(require(obj, "protocol", where), f"{where}.protocol")
    return Interface(itype, protocol, expect_int(require(obj, "port", where), f"{where}.port"))


def _public_key_from_json(obj: object, where: str, legacy: bool) -> bytes:
    if legacy and isinstance(obj, str):
        return hex_decode(obj, where)  # the legacy form wrote keys as hex
    fmt = obj.get("format") if isinstance(obj, dict) else None
    if isinstance(fmt, str) and fmt.lower() not in _KEY_FORMATS:
        # Java would take any data format here; refusing the structured ones keeps nesting (and recursion) flat.
        raise JsonFormError(f"{where}.format: expected one of {', '.join(_KEY_FORMATS)} for a public key")
    return data_from_json(obj, where)


def server_from_json(obj: object, where: str, resolve_host_names: bool = True) -> ServerInfo:
    obj, legacy = _lower_case_if_needed(expect_object(obj, where))
    server_id = expect_int(require(obj, "serverId", where), f"{where}.serverId", INT4_MIN, INT4_MAX)
    awhere = f"{where}.address"
    address = resolve_address(expect_str(require(obj, "address", where), awhere), awhere, resolve_host_names)
    public_key = _public_key_from_json(require(obj, "publicKey", where), f"{where}.publicKey", legacy)
    interfaces_json = obj.get("interfaces", obj.get("interfaceList"))
    iwhere = f"{where}.interfaces"
    interfaces: tuple[Interface, ...] = ()
    if interfaces_json is not None:
        interfaces = tuple(interface_from_json(i, f"{iwhere}[{n}]")
                           for n, i in enumerate(expect_array(interfaces_json, iwhere)))
    return ServerInfo(server_id, address, public_key, interfaces)


def _attributes_from_json(obj: object, where: str) -> tuple[tuple[bytes, bytes], ...]:
    """An array of ``{"name", "value"}``, or an object ``{name: value or [values]}``."""
    out: list[tuple[bytes, bytes]] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            iw = f"{where}[{i}]"
            item = expect_object(item, iw)
            name = expect_str(require(item, "name", iw), f"{iw}.name")
            value = expect_str(require(item, "value", iw), f"{iw}.value")
            out.append((utf8(name, f"{iw}.name"), utf8(value, f"{iw}.value")))
        return tuple(out)
    for name, values in expect_object(obj, where).items():
        iw = f"{where}.{name}"
        items = values if isinstance(values, list) else [values]
        for j, value in enumerate(items):
            vw = f"{iw}[{j}]" if isinstance(values, list) else iw
            out.append((utf8(name, iw), utf8(expect_str(value, vw), vw)))
    return tuple(out)


def _protocol_version(v: object, where: str) -> tuple[int, int]:
    s = expect_str(v, where)
    major, dot, minor = s.partition(".")
    if not dot:
        raise JsonFormError(f"{where}: expected \"major.minor\", got {s!r}")
    return _byte(major, where), _byte(minor, where)


def site_from_json(obj: object, where: str = "site", *, resolve_host_names: bool = True) -> SiteInfo:
    """A SiteInfo from its JSON form. Missing keys take Java's defaults (serial 0, not primary).

    Server addresses that are not IP literals are looked up with ``socket.getaddrinfo`` (blocking), or
    refused when ``resolve_host_names`` is False.
    """
    obj, _ = _lower_case_if_needed(expect_object(obj, where))

    def get(key: str) -> object:
        return obj.get(key)

    version = _int2(get("version"), f"{where}.version") if get("version") is not None else 1
    major, minor = 2, 11
    if get("protocolVersion") is not None:
        major, minor = _protocol_version(get("protocolVersion"), f"{where}.protocolVersion")
    serial = _int2(get("serialNumber"), f"{where}.serialNumber") if get("serialNumber") is not None else 0
    primary = get("primarySite") is not None and expect_bool(get("primarySite"), f"{where}.primarySite")
    multi = get("multiPrimary") is not None and expect_bool(get("multiPrimary"), f"{where}.multiPrimary")
    hash_option = HASH_BY_ALL
    if get("hashOption") is not None:
        hash_option = _byte(get("hashOption"), f"{where}.hashOption")
    hash_filter = b""
    if get("hashFilter") is not None:
        hash_filter = utf8(expect_str(get("hashFilter"), f"{where}.hashFilter"), f"{where}.hashFilter")
    attributes: tuple[tuple[bytes, bytes], ...] = ()
    if get("attributes") is not None:
        attributes = _attributes_from_json(get("attributes"), f"{where}.attributes")
    servers_json = get("servers") if get("servers") is not None else get("serverList")
    swhere = f"{where}.servers"
    servers: tuple[ServerInfo, ...] = ()
    if servers_json is not None:
        servers = tuple(server_from_json(s, f"{swhere}[{i}]", resolve_host_names)
                        for i, s in enumerate(expect_array(servers_json, swhere)))
    return SiteInfo(version, major, minor, serial, primary, multi, hash_option, hash_filter, attributes,
                    servers)


__all__ = [
    "JsonFormError",
    "interface_from_json",
    "interface_to_json",
    "resolve_address",
    "server_from_json",
    "server_to_json",
    "site_from_json",
    "site_to_json",
]

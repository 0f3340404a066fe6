"""The HS_SITE site information record (values.md section 3).

Used for HS_SITE / HS_SITE.6 / HS_SITE.PREFIX / HS_NA_DELEGATE value data, GET_SITE_INFO response bodies
and siteinfo.bin. ``encode_site`` writes exactly what Java's ``Encoder.encodeSiteInfoRecord`` writes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.handles import HASH_BY_ALL, server_position

# Interface types (bit 0 = admin, bit 1 = query).
IF_OUT_OF_SERVICE = 0
IF_ADMIN = 1
IF_QUERY = 2
IF_ADMIN_AND_QUERY = 3

# Interface protocols.
PROTO_UDP = 0
PROTO_TCP = 1
PROTO_HTTP = 2
PROTO_HTTPS = 3
PROTOCOL_NAMES = {PROTO_UDP: "UDP", PROTO_TCP: "TCP", PROTO_HTTP: "HTTP", PROTO_HTTPS: "HTTPS"}

PRIMARY_MASK = 0x80
MULTI_PRIMARY_MASK = 0x40

ADDRESS_LENGTH = 16
_IPV4_PREFIX = bytes(12)


@dataclass(frozen=True, slots=True)
class Interface:
    type: int
    protocol: int
    port: int

    @property
    def admin(self) -> bool:
        return bool(self.type & IF_ADMIN)

    @property
    def query(self) -> bool:
        return bool(self.type & IF_QUERY)

    @property
    def protocol_name(self) -> str:
        return PROTOCOL_NAMES.get(self.protocol, str(self.protocol))


def address_from_text(text: str) -> bytes:
    """The 16-byte HS_SITE address of an IP literal (ValueError for anything else).

    IPv4 becomes 12 zero bytes + the address. Like Java's ``InetAddress``, an IPv4-mapped IPv6 literal
    (``::ffff:a.b.c.d``) is taken as the IPv4 address.
    """
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is None:
            return ip.packed
        ip = ip.ipv4_mapped
    return _IPV4_PREFIX + ip.packed


def _ipv6_text(address: bytes) -> str:
    """Java ``Util.rfcIpRepr``: RFC 5952 style (lower-case hex, no leading zeros, the longest run of at
    least two zero groups as "::", the first one on a tie), except that a run reaching the end of the
    address is never compressed and IPv4-mapped addresses are not written as dotted quads."""
    groups = [int.from_bytes(address[i : i + 2], "big") for i in range(0, ADDRESS_LENGTH, 2)]
    best_start, best_len = -1, 1
    run_start = None
    for i, g in enumerate(groups):
        if g == 0:
            if run_start is None:
                run_start = i
        elif run_start is not None:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = None
    text = [format(g, "x") for g in groups]
    if best_start < 0:
        return ":".join(text)
    return ":".join(text[:best_start]) + "::" + ":".join(text[best_start + best_len :])


def address_to_text(address: bytes) -> str:
    """Java ``ServerInfo.getAddressString``: IPv4 iff the first 12 bytes are zero."""
    if address[:12] == _IPV4_PREFIX:
        return ".".join(str(b) for b in address[12:])
    return _ipv6_text(address)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    server_id: int
    address: bytes
    public_key: bytes
    interfaces: tuple[Interface, ...] = ()

    address_from_text = staticmethod(address_from_text)

    def __post_init__(self) -> None:
        if len(self.address) != ADDRESS_LENGTH:
            raise ValueError(f"server address must be {ADDRESS_LENGTH} bytes, got {len(self.address)}")

    def address_text(self) -> str:
        return address_to_text(self.address)

    @property
    def is_ipv4(self) -> bool:
        return self.address[:12] == _IPV4_PREFIX

    def interface_for(self, protocol: int, port: int) -> Interface | None:
        return next((i for i in self.interfaces if i.protocol == protocol and i.port == port), None)


@dataclass(frozen=True, slots=True)
class SiteInfo:
    data_format_version: int = 1
    major: int = 2
    minor: int = 11
    serial: int = 1
    primary: bool = True
    multi_primary: bool = False
    hash_option: int = HASH_BY_ALL
    hash_filter: bytes = b""
    attributes: tuple[tuple[bytes, bytes], ...] = ()
    servers: tuple[ServerInfo, ...] = ()

    def attribute(self, name: bytes) -> bytes | None:
        """Value of the first attribute called ``name`` (case-sensitive), or None."""
        return next((v for n, v in self.attributes if n == name), None)

    def server_by_id(self, server_id: int) -> ServerInfo | None:
        return next((s for s in self.servers if s.server_id == server_id), None)

    def responsible_server(self, handle: bytes) -> ServerInfo:
        """The server of this site that holds ``handle`` (values.md 3.2)."""
        if not self.servers:
            raise ValueError("site has no servers")
        return self.servers[server_position(handle, self.hash_option, len(self.servers))]

    def interface_for(self, protocol: int, port: int, server_id: int | None = None) -> Interface | None:
        """The first interface with this protocol and port, on the server ``server_id`` or any server."""
        for server in self.servers:
            if server_id is None or server.server_id == server_id:
                found = server.interface_for(protocol, port)
                if found is not None:
                    return found
        return None


_MIN_SERVER_SIZE = 4 + ADDRESS_LENGTH + 4 + 4
_INTERFACE_SIZE = 6


def read_site(r: Reader) -> SiteInfo:
    version = r.get_int2()
    major = r.get_byte()
    minor = r.get_byte()
    serial = r.get_int2()
    mask = r.get_byte()
    hash_option = r.get_byte()
    hash_filter = r.get_byte_array()
    n_attributes = r.get_count(8, "site attribute")
    attributes = tuple((r.get_byte_array(), r.get_byte_array()) for _ in range(n_attributes))
    n_servers = r.get_count(_MIN_SERVER_SIZE, "site server")
    servers = []
    for _ in range(n_servers):
        server_id = r.get_int4()
        address = r.get_raw(ADDRESS_LENGTH)
        public_key = r.get_byte_array()
        n_interfaces = r.get_count(_INTERFACE_SIZE, "server interface")
        interfaces = tuple(Interface(r.get_byte(), r.get_byte(), r.get_int4()) for _ in range(n_interfaces))
        servers.append(ServerInfo(server_id, address, public_key, interfaces))
    return SiteInfo(version, major, minor, serial, bool(mask & PRIMARY_MASK), bool(mask & MULTI_PRIMARY_MASK),
                    hash_option, hash_filter, attributes, tuple(servers))


def decode_site(data: bytes) -> SiteInfo:
    """Decode a whole site record; trailing bytes are an error, as in Java."""
    r = Reader(data)
    site = read_site(r)
    if r.remaining:
        raise DecodeError(f"{r.remaining} unexpected trailing bytes after the site information record")
    return site


def write_site(w: Writer, site: SiteInfo) -> None:
    mask = (PRIMARY_MASK if site.primary else 0) | (MULTI_PRIMARY_MASK if site.multi_primary else 0)
    w.put_int2(site.data_format_version).put_byte(site.major).put_byte(site.minor).put_int2(site.serial)
    w.put_byte(mask).put_byte(site.hash_option).put_byte_array(site.hash_filter)
    w.put_int4(len(site.attributes))
    for name, value in site.attributes:
        w.put_byte_array(name).put_byte_array(value)
    w.put_int4(len(site.servers))
    for server in site.servers:
        w.put_int4(server.server_id).put_raw(server.address).put_byte_array(server.public_key)
        w.put_int4(len(server.interfaces))
        for iface in server.interfaces:
            w.put_byte(iface.type).put_byte(iface.protocol).put_int4(iface.port)


def encode_site(site: SiteInfo) -> bytes:
    w = Writer()
    write_site(w, site)
    return w.getvalue()

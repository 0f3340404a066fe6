"""``hdl-qresolver HANDLE``: resolve a handle and print its values the way a person wants to read them."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from hdlserver.cli.common import fail
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.client.transport import ClientTimeout
from hdlserver.config.siteinfo import load_site_info
from hdlserver.errors import DecodeError, HandleError
from hdlserver.jsonform.values_json import value_to_json
from hdlserver.wire.pubkey import DHPublicKeyData, DSAPublicKeyData, RSAPublicKeyData
from hdlserver.wire.site import SiteInfo
from hdlserver.wire.valuedata import AdminRecord, admin_perms_to_json, decode_value_data, looks_like_text
from hdlserver.wire.values import TTL_ABSOLUTE, HandleValue, ValueReference


def parse_server(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-qresolver", description=__doc__)
    p.add_argument("handle")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--server", type=parse_server, action="append", metavar="HOST:PORT",
                        help="server to ask (repeatable; default 127.0.0.1:2641)")
    target.add_argument("--site", type=Path, metavar="DIR_OR_FILE",
                        help="ask the servers of a site: a server directory or a siteinfo.json/.bin file")
    proto = p.add_mutually_exclusive_group()
    proto.add_argument("--tcp", action="store_true", help="TCP only")
    proto.add_argument("--udp", action="store_true", help="UDP only")
    p.add_argument("--type", action="append", default=[], help="only values of this type (repeatable)")
    p.add_argument("--index", action="append", type=int, default=[], help="only this index (repeatable)")
    p.add_argument("--json", action="store_true", help="print the values in the REST JSON form")
    return p


def describe_data(value: HandleValue) -> str:
    try:
        decoded = decode_value_data(value.type, value.data)
    except DecodeError:
        decoded = value.data  # a malformed well-known value: show its bytes
    if isinstance(decoded, AdminRecord):
        perms = admin_perms_to_json(decoded.permissions)
        return f"admin {decoded.index}:{decoded.handle.decode('utf-8', 'replace')} permissions={perms}"
    if isinstance(decoded, tuple) and all(isinstance(r, ValueReference) for r in decoded):
        return "list " + ", ".join(f"{r.index}:{r.handle.decode('utf-8', 'replace')}" for r in decoded)
    if isinstance(decoded, SiteInfo):
        servers = ", ".join(f"{s.server_id}@{s.address_text()}" for s in decoded.servers)
        return f"site serial={decoded.serial} primary={decoded.primary} servers={servers}"
    if isinstance(decoded, RSAPublicKeyData):
        return f"RSA public key ({decoded.n.bit_length()} bits)"
    if isinstance(decoded, DSAPublicKeyData):
        return f"DSA public key ({decoded.p.bit_length()} bits)"
    if isinstance(decoded, DHPublicKeyData):
        return "DH public key"
    if looks_like_text(value.data):
        return value.data.decode("utf-8", "replace")
    return f"<{len(value.data)} bytes> {value.data[:32].hex()}" + ("..." if len(value.data) > 32 else "")


def format_value(value: HandleValue) -> str:
    perms = "".join("1" if value.permissions & bit else "0" for bit in (8, 4, 2, 1))
    if value.ttl_type == TTL_ABSOLUTE:
        ttl = "until " + datetime.fromtimestamp(value.ttl, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        ttl = f"{value.ttl}s"
    stamp = datetime.fromtimestamp(value.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value.timestamp else "-"
    line = (f"  index={value.index} type={value.type.decode('utf-8', 'replace')} "
            f"perms={perms} ttl={ttl} timestamp={stamp}\n    {describe_data(value)}")
    if value.references:
        refs = ", ".join(f"{r.index}:{r.handle.decode('utf-8', 'replace')}" for r in value.references)
        line += f"\n    references: {refs}"
    return line


def make_resolver(args: argparse.Namespace) -> Resolver:
    udp, tcp = not args.tcp, not args.udp
    if args.site:
        path: Path = args.site
        site = load_site_info(path) if path.is_dir() else load_site_info(path.parent, file_name=path.name)
        return Resolver.for_site(site, udp=udp, tcp=tcp)
    return Resolver(args.server or [("127.0.0.1", 2641)], udp=udp, tcp=tcp)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        resolver = make_resolver(args)
        result = resolver.resolve(args.handle, types=args.type, indexes=args.index)
    except HandleResponseError as exc:
        return fail(str(exc))
    except ClientTimeout as exc:
        return fail(f"server unreachable: {exc}", 2)
    except (HandleError, OSError) as exc:
        return fail(str(exc), 2)
    if args.json:
        print(json.dumps({"handle": result.handle.decode("utf-8", "replace"),
                          "values": [value_to_json(v) for v in result.values]}, indent=2))
        return 0
    print(f"Handle: {result.handle.decode('utf-8', 'replace')}  "
          f"({len(result.values)} values, {result.transport} {result.server[0]}:{result.server[1]})")
    for value in result.values:
        print(format_value(value))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

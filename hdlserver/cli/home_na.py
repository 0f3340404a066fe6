"""``hdl-home-na AUTH_HANDLE AUTH_INDEX PRIVKEY SERVER_IP SERVER_TCP_PORT PREFIX...``: home each prefix
(``0.NA/<prefix>``) on every server of the site that SERVER_IP:SERVER_TCP_PORT belongs to, authenticated
with that public key (as Java's HomeNA). ``--unhome`` unhomes them instead."""

from __future__ import annotations

import argparse

from hdlserver.batch.executor import describe_error
from hdlserver.batch.identity_options import add_identity_arguments, identity_from_args
from hdlserver.batch.routing import RoutingError, admin_interface
from hdlserver.batch.site_fetch import fetch_site_info
from hdlserver.cli.common import fail
from hdlserver.client.admin import AdminClient
from hdlserver.errors import HandleError, KeyFileError
from hdlserver.wire.handles import to_prefix_handle


def port_argument(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a TCP port, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-home-na", description=__doc__)
    add_identity_arguments(p)
    p.add_argument("server_ip", metavar="SERVER_IP", help="address of a server of the site")
    p.add_argument("server_port", metavar="SERVER_TCP_PORT", type=port_argument, help="its TCP port")
    p.add_argument("prefixes", metavar="PREFIX", nargs="+", help="prefix handles, e.g. 0.NA/TEST (or TEST)")
    p.add_argument("--unhome", action="store_true", help="unhome the prefixes instead of homing them")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        identity = identity_from_args(args)
    except KeyFileError as exc:
        return fail(str(exc), 2)
    where = f"{args.server_ip}:{args.server_port}"
    try:
        site = fetch_site_info(args.server_ip, args.server_port, "tcp")
        addresses = [admin_interface(server) for server in site.servers]
    except (HandleError, OSError) as exc:
        return fail(f"cannot get the site information of {where}: {describe_error(exc)}", 2)
    if not site.primary:
        return fail(f"{where} is not a primary server: prefixes are homed on primary sites only", 2)
    verb = "unhome" if args.unhome else "home"
    failed = 0
    for prefix in args.prefixes:
        prefix_handle = to_prefix_handle(prefix.encode("utf-8"))
        try:
            for address in addresses:
                with AdminClient(address, identity, session=True) as client:  # as Java HomeNA
                    if args.unhome:
                        client.unhome_prefix(prefix_handle)
                    else:
                        client.home_prefix(prefix_handle)
        except (HandleError, OSError, RoutingError) as exc:
            failed += 1
            print(f"error: cannot {verb} {prefix}: {describe_error(exc)}")
            continue
        print(f"{verb}d {prefix_handle.decode('utf-8', 'replace')}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hdl-list [-s] AUTH_HANDLE AUTH_INDEX PRIVKEY PREFIX``: list the handles under PREFIX (``TEST`` or
``0.NA/TEST``) on every server of its site, authenticated with that public key (as Java's HDLList).
``-s`` also prints each handle's values."""

from __future__ import annotations

import argparse
import sys

from hdlserver.batch.executor import describe_error
from hdlserver.batch.identity_options import add_identity_arguments, identity_from_args
from hdlserver.batch.routing import RoutingError
from hdlserver.batch.target_options import add_target_options, router_from_args
from hdlserver.cli.common import fail
from hdlserver.cli.qresolver import format_value
from hdlserver.client.admin import AdminClient
from hdlserver.client.resolver import Resolver
from hdlserver.errors import ConfigError, HandleError, KeyFileError
from hdlserver.wire.handles import NA_PREFIX, to_prefix_handle


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-list", description=__doc__)
    p.add_argument("-s", dest="show_values", action="store_true", help="also print every handle's values")
    add_identity_arguments(p)
    p.add_argument("prefix", metavar="PREFIX", help="the prefix whose handles to list, e.g. 0.NA/TEST or TEST")
    add_target_options(p)
    return p


def print_values(resolver: Resolver, handle: bytes) -> None:
    try:
        values = resolver.resolve(handle, public_only=False).values
    except (HandleError, OSError) as exc:
        print(f"  {describe_error(exc)}")
        return
    for value in values:
        print(format_value(value))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prefix_handle = to_prefix_handle(args.prefix.encode("utf-8"))
    # Handles of prefix P live on the site of any handle P/x.
    sample_handle = prefix_handle[len(NA_PREFIX):] + b"/x"
    try:
        identity = identity_from_args(args)
        router = router_from_args(args)
        servers = router.site_servers(sample_handle)
    except (KeyFileError, ConfigError, RoutingError) as exc:
        return fail(str(exc), 2)
    failed = False
    for address in servers:
        try:
            with AdminClient(address, identity) as client:
                handles = client.list_handles(prefix_handle)
        except (HandleError, OSError) as exc:
            failed = True
            print(f"error: listing on {address[0]}:{address[1]}: {describe_error(exc)}", file=sys.stderr)
            continue
        resolver = Resolver([address])
        for handle in handles:
            if args.show_values:
                print()
            print(handle.decode("utf-8", "replace"))
            if args.show_values:
                print_values(resolver, handle)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

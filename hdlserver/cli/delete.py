"""``hdl-delete AUTH_HANDLE AUTH_INDEX PRIVKEY FILE``: delete the handles listed in FILE (one per line;
``-`` reads them from standard input), authenticated with that public key (as Java's HDLDelete).
Prints ``deleted HANDLE`` or ``error deleting 'HANDLE': <why>`` per handle; exits 1 if any failed."""

from __future__ import annotations

import argparse
import sys

from hdlserver.batch.executor import describe_error
from hdlserver.batch.identity_options import add_identity_arguments, identity_from_args
from hdlserver.batch.routing import Address, RoutingError
from hdlserver.batch.target_options import add_target_options, router_from_args
from hdlserver.cli.common import fail
from hdlserver.client.admin import AdminClient
from hdlserver.errors import ConfigError, HandleError, KeyFileError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-delete", description=__doc__)
    add_identity_arguments(p)
    p.add_argument("file", metavar="FILE", help="file with the handles to delete, one per line ('-': stdin)")
    add_target_options(p)
    return p


def read_handles(name: str) -> list[str]:
    if name == "-":
        return [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    with open(name, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handles = read_handles(args.file)
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}", 2)
    try:
        identity = identity_from_args(args)
        router = router_from_args(args)
    except (KeyFileError, ConfigError, RoutingError) as exc:
        return fail(str(exc), 2)
    clients: dict[Address, AdminClient] = {}
    failed = 0
    try:
        for handle in handles:
            try:
                address = router.admin_server(handle.encode("utf-8"))
                if address not in clients:
                    clients[address] = AdminClient(address, identity)
                clients[address].delete_handle(handle)
            except (HandleError, OSError) as exc:
                failed += 1
                print(f"error deleting '{handle}': {describe_error(exc)}")
                continue
            print(f"deleted {handle}")
    finally:
        for client in clients.values():
            client.close()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hdl-create AUTH_HANDLE AUTH_INDEX PRIVKEY HANDLE``: create HANDLE with one HS_ADMIN value (index 100)
giving AUTH_INDEX:AUTH_HANDLE every permission, authenticated with that public key (as Java's HDLCreate)."""

from __future__ import annotations

import argparse

from hdlserver.batch.executor import describe_error
from hdlserver.batch.identity_options import add_identity_arguments, identity_from_args
from hdlserver.batch.routing import RoutingError
from hdlserver.batch.target_options import add_target_options, router_from_args
from hdlserver.cli.common import fail
from hdlserver.client.admin import AdminClient
from hdlserver.errors import ConfigError, HandleError, KeyFileError
from hdlserver.wire.valuedata import ALL_PERMISSIONS, HS_ADMIN, AdminRecord, encode_admin
from hdlserver.wire.values import HandleValue

ADMIN_VALUE_INDEX = 100


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-create", description=__doc__)
    add_identity_arguments(p)
    p.add_argument("handle", metavar="HANDLE", help="the handle to create, e.g. TEST/new")
    add_target_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        identity = identity_from_args(args)
        router = router_from_args(args)
    except (KeyFileError, ConfigError, RoutingError) as exc:
        return fail(str(exc), 2)
    handle = args.handle.encode("utf-8")
    admin = HandleValue(ADMIN_VALUE_INDEX, HS_ADMIN, encode_admin(AdminRecord(ALL_PERMISSIONS, identity.handle,
                                                                             identity.index)))
    try:
        with AdminClient(router.admin_server(handle), identity, session=True) as client:  # as Java HDLCreate
            created = client.create_handle(handle, [admin])
    except (HandleError, OSError) as exc:
        return fail(f"cannot create {args.handle}: {describe_error(exc)}")
    print(f"created {created.decode('utf-8', 'replace')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hdl-setup-server DIR``: create a server directory without questions (compare Java's SimpleSetup)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hdlserver.cli.common import add_passphrase_options, fail, passphrase_from
from hdlserver.errors import HandleError
from hdlserver.setup import SetupOptions, read_admin_public_key, setup_server_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-setup-server", description=__doc__)
    p.add_argument("server_dir", type=Path, help="directory to create (must not hold a config.dct yet)")
    p.add_argument("--prefix", action="append", dest="prefixes", metavar="PREFIX",
                   help="prefix to home (repeatable; e.g. 20.500.12345); default DEMO")
    p.add_argument("--bind-address", default="0.0.0.0", help="address the listeners bind to (default all)")
    p.add_argument("--public-address", default="127.0.0.1",
                   help="address advertised in siteinfo.json for clients (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=2641, help="UDP and TCP port (default 2641)")
    p.add_argument("--http-port", type=int, metavar="PORT",
                   help="also configure an HTTP interface (hdl_http) on this port and advertise it")
    p.add_argument("--server-id", type=int, default=1)
    p.add_argument("--description", default="hdlserver")
    p.add_argument("--admin-secret", help="HS_SECKEY of the administrator (index 300 of 0.NA/<prefix>)")
    p.add_argument("--admin-secret-env", metavar="VAR", help="take the administrator secret from VAR")
    p.add_argument("--no-admin-key", action="store_true", help="do not create the admpriv.bin/admpub.bin pair")
    p.add_argument("--admin-public-key", type=Path, metavar="FILE",
                   help="the administrator's public key (PEM, or a Java public key file such as admpub.bin) "
                   "for HS_PUBKEY at index 301, instead of generating an administrator key pair")
    p.add_argument("--key-algorithm", choices=["RSA", "DSA"], default="RSA")
    p.add_argument("--key-bits", type=int, help="key size (default 2048 for RSA, 1024 for DSA)")
    add_passphrase_options(p, "server private key", "server-passphrase")
    add_passphrase_options(p, "administrator private key", "admin-passphrase")
    p.add_argument("--partitions", type=int, default=4, help="LMDB partitions of the store (default 4)")
    p.add_argument("--case-sensitive", action="store_true")
    p.add_argument("--no-access-log", action="store_true")
    p.add_argument("--no-root-prefix", action="store_true",
                   help="do not home 0.NA/0.NA (prefix handles then live elsewhere, e.g. at the GHR)")
    p.add_argument("--sample-handle", action="store_true", help="also create <prefix>/hello with a URL")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    secret = args.admin_secret
    if args.admin_secret_env:
        secret = os.environ.get(args.admin_secret_env)
        if secret is None:
            return fail(f"environment variable {args.admin_secret_env} is not set")
    if not 0 < args.port < 65536:
        return fail(f"port {args.port} is out of range")
    admin_public_key = None
    if args.admin_public_key is not None:
        if args.no_admin_key:
            return fail("--admin-public-key and --no-admin-key contradict each other")
        try:
            admin_public_key = read_admin_public_key(args.admin_public_key.read_bytes(), str(args.admin_public_key))
        except OSError as exc:
            return fail(f"cannot read {args.admin_public_key}: {exc.strerror or exc}")
        except HandleError as exc:
            return fail(str(exc))
    opts = SetupOptions(
        server_dir=args.server_dir, prefixes=args.prefixes or ["DEMO"], bind_address=args.bind_address,
        public_address=args.public_address, port=args.port, server_id=args.server_id,
        description=args.description, admin_secret=secret, admin_key=not args.no_admin_key,
        admin_public_key=admin_public_key, http_port=args.http_port,
        key_algorithm=args.key_algorithm, key_bits=args.key_bits,
        server_key_passphrase=passphrase_from(args, "server-passphrase"),
        admin_key_passphrase=passphrase_from(args, "admin-passphrase"), partitions=args.partitions,
        case_sensitive=args.case_sensitive, log_accesses=not args.no_access_log,
        serve_prefix_handles=not args.no_root_prefix, sample_handle=args.sample_handle)
    try:
        result = setup_server_dir(opts)
    except (HandleError, OSError, ValueError) as exc:
        return fail(str(exc))
    print(f"Server directory {result.server_dir} created.")
    print(f"Homed prefixes: {', '.join(result.prefix_handles)}")
    print(f"Administrators: {', '.join(result.admin_identities)}")
    if result.sample_handle:
        print(f"Sample handle: {result.sample_handle}")
    print(f"Start it with: hdl-server {result.server_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

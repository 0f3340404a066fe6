"""``hdl-server DIR``: run a handle server from a Handle.Net style server directory.

With ``--init`` a missing server directory is created first (an embedded default: RSA keys, prefix
DEMO, a sample handle DEMO/hello, an administrator secret in admin_secret.txt), so one command
gives a working server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hdlserver.auth import keys
from hdlserver.cli.common import add_passphrase_options, fail, passphrase_from
from hdlserver.errors import ConfigError, HandleError
from hdlserver.metrics import metrics_config
from hdlserver.net import loop
from hdlserver.net.logs import log_directory, setup_logging
from hdlserver.net.server import serve
from hdlserver.serverdir import PASSPHRASE_ENV, open_server_state, read_passphrase_from_stdin
from hdlserver.setup import SetupOptions, generate_admin_secret, setup_server_dir

ADMIN_SECRET_FILE = "admin_secret.txt"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-server", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("server_dir", type=Path, help="the server directory (config.dct, siteinfo.json, keys)")
    p.add_argument("--init", action="store_true",
                   help="create the server directory with the embedded defaults if it has no config.dct")
    p.add_argument("--prefix", default="DEMO", help="prefix used by --init (default DEMO)")
    p.add_argument("--port", type=int, default=2641, help="UDP/TCP port used by --init (default 2641)")
    p.add_argument("--bind-address", default="127.0.0.1", help="bind address used by --init (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, default=8000,
                   help="HTTP/HTTPS port (REST API, tunnel, proxy) used by --init (default 8000; 0: none)")
    add_passphrase_options(p, "server private key", "passphrase")
    p.add_argument("--log-stdout", action="store_true", help="log to standard output instead of logs/")
    p.add_argument("--pid-file", type=Path, help="write the process id here while running")
    p.add_argument("--ready-file", type=Path,
                   help="write 'label host port' lines here once the listeners are up (for scripts and tests)")
    p.add_argument("--no-uvloop", action="store_true", help="use the stdlib asyncio event loop")
    p.add_argument("--verbose", action="store_true")
    return p


def initialise(args: argparse.Namespace) -> None:
    secret = generate_admin_secret()
    result = setup_server_dir(SetupOptions(
        server_dir=args.server_dir, prefixes=[args.prefix], bind_address=args.bind_address,
        public_address=args.bind_address if args.bind_address != "0.0.0.0" else "127.0.0.1",
        port=args.port, http_port=args.http_port or None, admin_secret=secret, sample_handle=True))
    secret_file = args.server_dir / ADMIN_SECRET_FILE
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    print(f"Initialised {result.server_dir}: prefix {result.prefix_handles[0]}, sample handle "
          f"{result.sample_handle}, administrator {result.admin_identities[0]} "
          f"(secret in {secret_file})", flush=True)


def server_key_passphrase(server_dir: Path, given: bytes | None) -> bytes | None:
    """The passphrase of an encrypted privkey.bin: ``given`` (an option), else $HDL_SERVER_PASSPHRASE (read by
    open_server_state), else a line on standard input (a terminal prompts).

    Nothing on standard input -- /dev/null under systemd or in a container -- is a ConfigError that says how to
    give the passphrase, rather than an attempt with an empty one ("wrong passphrase").
    """
    if given is not None or PASSPHRASE_ENV in os.environ:
        return given
    path = server_dir / "privkey.bin"
    try:
        encrypted = keys.is_encrypted_key_file(path.read_bytes())
    except (OSError, HandleError):
        return None  # open_server_state reports a missing or unreadable key
    if not encrypted:
        return None
    passphrase = read_passphrase_from_stdin()
    if not passphrase:
        raise ConfigError(f"privkey.bin is encrypted and no passphrase was given: set {PASSPHRASE_ENV}, or start "
                          f"with --passphrase-file FILE or --passphrase-env VAR", str(path))
    return passphrase


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server_dir: Path = args.server_dir
    try:
        if not (server_dir / "config.dct").exists():
            if not args.init:
                return fail(f"{server_dir} has no config.dct: create it with hdl-setup-server {server_dir}, "
                            f"or start with hdl-server --init {server_dir}")
            initialise(args)
        passphrase = server_key_passphrase(server_dir, passphrase_from(args, "passphrase"))
        state = open_server_state(server_dir, passphrase=passphrase)
    except (HandleError, OSError) as exc:
        return fail(str(exc))
    try:
        metrics_config(state.settings)  # read again by the listeners; checked here to fail before they start
    except HandleError as exc:
        state.store.close()
        return fail(str(exc))
    interfaces = ", ".join(f"{i.kind.upper()} {i.bind_address or '*'}:{i.bind_port}"
                           for i in state.settings.interfaces)
    # Before the logs take over standard error, so a terminal shows it.
    print(f"hdlserver serving {server_dir} on {interfaces}", file=sys.stderr, flush=True)
    save = state.settings.logging
    try:
        logs = setup_logging(None if args.log_stdout else log_directory(server_dir, save),
                             to_stdout=args.log_stdout, verbose=args.verbose, save=save)
    except HandleError as exc:
        state.store.close()
        return fail(str(exc))
    for warning in state.settings.warnings:
        logging.getLogger("hdlserver.config").warning("%s", warning)
    try:
        loop.run(serve(state, server_dir, ready_file=args.ready_file, pid_file=args.pid_file,
                       on_hangup=logs.reopen), use_uvloop=not args.no_uvloop)
    except OSError as exc:
        state.store.close()
        logs.stop()  # restores standard error, which may be redirected into the error log
        return fail(f"cannot start the listeners: {exc}")
    finally:
        logs.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

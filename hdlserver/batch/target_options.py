"""The command-line options every hdl-* admin tool shares to say where requests go (see ``routing``).

Without an option the tools do what the Java tools do: read the Java client configuration directory
(``-Dnet.handle.configDir=`` in $JAVA_OPTS, else ~/.handle).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hdlserver.batch.routing import (
    FixedRouter,
    PrefixRouter,
    Router,
    RoutingError,
    SiteRouter,
    java_config_dir,
    router_from_config_dir,
)
from hdlserver.client.resolver import Resolver
from hdlserver.config.siteinfo import load_site_info, read_site_info_file


def host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def add_target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where requests go (default: the Java client configuration directory)")
    target = group.add_mutually_exclusive_group()
    target.add_argument("--server", type=host_port, metavar="HOST:PORT",
                        help="send every request to this server's TCP interface")
    target.add_argument("--siteinfo", type=Path, metavar="FILE_OR_DIR",
                        help="send requests to this site: a siteinfo.json/.bin file or a server directory")
    target.add_argument("--resolver", type=host_port, metavar="HOST:PORT",
                        help="find each prefix's site by resolving 0.NA/<prefix> at this server")
    target.add_argument("--config-dir", type=Path, metavar="DIR",
                        help="a Java client configuration directory (resolver_site, local_nas)")


def router_from_args(args: argparse.Namespace) -> Router:
    """Raises ConfigError / RoutingError with a readable message when no server can be found."""
    if args.server:
        return FixedRouter(args.server)
    if args.siteinfo:
        path: Path = args.siteinfo
        return SiteRouter(load_site_info(path) if path.is_dir() else read_site_info_file(path))
    if args.resolver:
        return PrefixRouter(Resolver([args.resolver]))
    config_dir = args.config_dir or java_config_dir()
    if config_dir is None:
        raise RoutingError("no server given: use --server HOST:PORT, --siteinfo FILE, --resolver HOST:PORT or "
                           "--config-dir DIR (or set JAVA_OPTS=-Dnet.handle.configDir=DIR as for the Java tools)")
    return router_from_config_dir(config_dir, Resolver.for_site)

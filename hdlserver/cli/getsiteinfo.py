"""``hdl-getsiteinfo SERVER PORT OUTPUT_FILE``: ask a server for its site information (TCP, then the HTTP
tunnel on the same port, as Java's GetSiteInfo) and write it in binary form (siteinfo.bin)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hdlserver.batch.executor import describe_error
from hdlserver.batch.site_fetch import fetch_site_info
from hdlserver.cli.common import fail
from hdlserver.cli.home_na import port_argument
from hdlserver.config.siteinfo import save_site_info_bin
from hdlserver.errors import ConfigError, HandleError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-getsiteinfo", description=__doc__)
    p.add_argument("server", metavar="SERVER", help="server address")
    p.add_argument("port", metavar="PORT", type=port_argument, help="its TCP (or HTTP) port")
    p.add_argument("output", metavar="OUTPUT_FILE", type=Path, help="where to write the binary site record")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        site = fetch_site_info(args.server, args.port, "tcp")
    except (HandleError, OSError) as tcp_exc:
        try:
            site = fetch_site_info(args.server, args.port, "http")
        except (HandleError, OSError):
            return fail(f"cannot get the site information of {args.server}:{args.port}: {describe_error(tcp_exc)}")
    try:
        save_site_info_bin(args.output, site)
    except ConfigError as exc:
        return fail(str(exc))
    print(f"wrote the site information of {args.server}:{args.port} (serial {site.serial}, "
          f"{len(site.servers)} server{'s' if len(site.servers) != 1 else ''}) to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hdl-convert-siteinfo [INPUT] [-o OUTPUT]``: convert site information between the binary form
(siteinfo.bin) and JSON (siteinfo.json), whichever INPUT is (as Java's SiteInfoConverter). INPUT and
OUTPUT default to standard input and output (``-`` also means them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hdlserver.cli.common import fail
from hdlserver.config.siteinfo import site_info_from_bin, site_info_from_json_text, site_info_json_text
from hdlserver.errors import ConfigError
from hdlserver.wire.site import encode_site


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-convert-siteinfo", description=__doc__)
    p.add_argument("input", metavar="INPUT", nargs="?", default="-", help="siteinfo.bin or siteinfo.json")
    p.add_argument("-o", "-output", "--output", dest="output", metavar="OUTPUT", default="-",
                   help="where to write the converted record")
    return p


def convert(data: bytes, name: str) -> bytes:
    """JSON in -> binary out; binary in -> JSON out (Java's test: a JSON text starts with '{')."""
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return encode_site(site_info_from_json_text(data, Path(name)))
    return site_info_json_text(site_info_from_bin(data, Path(name))).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = sys.stdin.buffer.read() if args.input == "-" else Path(args.input).read_bytes()
    except OSError as exc:
        return fail(f"cannot read {args.input}: {exc.strerror or exc}")
    try:
        out = convert(data, "<stdin>" if args.input == "-" else args.input)
    except ConfigError as exc:
        return fail(str(exc))
    try:
        if args.output == "-":
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        else:
            Path(args.output).write_bytes(out)
    except OSError as exc:
        return fail(f"cannot write {args.output}: {exc.strerror or exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

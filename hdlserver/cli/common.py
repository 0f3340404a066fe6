"""Helpers shared by the command-line tools: passphrase sources and error reporting."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_passphrase_options(parser: argparse.ArgumentParser, what: str, dest: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{dest}-file", metavar="FILE", help=f"read the {what} passphrase from FILE (first line)")
    group.add_argument(f"--{dest}-env", metavar="VAR", help=f"read the {what} passphrase from environment VAR")


def passphrase_from(args: argparse.Namespace, dest: str) -> bytes | None:
    path = getattr(args, f"{dest.replace('-', '_')}_file")
    var = getattr(args, f"{dest.replace('-', '_')}_env")
    if path:
        try:
            lines = Path(path).read_bytes().splitlines()
        except OSError as exc:
            raise SystemExit(f"error: cannot read passphrase file {path}: {exc.strerror}") from exc
        if not lines or not lines[0]:
            raise SystemExit(f"error: passphrase file {path} is empty")
        return lines[0]
    if var:
        if var not in os.environ:
            raise SystemExit(f"error: environment variable {var} is not set")
        return os.environ[var].encode("utf-8")
    return None


def fail(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code

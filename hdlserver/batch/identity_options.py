"""The identity arguments of hdl-create, hdl-delete, hdl-list and hdl-home-na, in the Java tools' order:
``<auth handle> <auth index> <privkey>``, with the key file's passphrase asked for when it is encrypted."""

from __future__ import annotations

import argparse
import getpass
import sys

from hdlserver.auth import keys
from hdlserver.cli.common import add_passphrase_options, passphrase_from
from hdlserver.client.admin import PublicKeyIdentity


def index_argument(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**31:
        raise argparse.ArgumentTypeError(f"expected a value index (a whole number), got {text!r}")
    return int(text)


def add_identity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("auth_handle", metavar="AUTH_HANDLE", help="the handle holding your public key, e.g. 0.NA/TEST")
    parser.add_argument("auth_index", metavar="AUTH_INDEX", type=index_argument,
                        help="the index of your HS_PUBKEY value in that handle, e.g. 301")
    parser.add_argument("privkey", metavar="PRIVKEY", help="your private key file (Java key file or PEM)")
    add_passphrase_options(parser, "private key", "passphrase")


def _ask_passphrase() -> bytes:
    """As Java's ``Util.getPassphrase``: a prompt on a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        return getpass.getpass("passphrase: ").encode("utf-8")
    return sys.stdin.buffer.readline().rstrip(b"\r\n")


def identity_from_args(args: argparse.Namespace) -> PublicKeyIdentity:
    """Raises KeyFileError (unreadable file, wrong passphrase, ...) with the file's name in the message."""
    passphrase = passphrase_from(args, "passphrase")
    try:
        data = keys.load_private_key(args.privkey, passphrase)
    except keys.PassphraseRequiredError:
        data = keys.load_private_key(args.privkey, _ask_passphrase())
    return PublicKeyIdentity(args.auth_handle.encode("utf-8"), args.auth_index, data)

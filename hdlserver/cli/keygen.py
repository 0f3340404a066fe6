"""hdl-keygen: generate a key pair and write it as Java Handle.Net key files (values.md 5 and 6.2).

Same positional arguments and ``-alg``/``-keysize`` flags as the Java ``hdl-keygen``; the private key file
is type 4 (PBKDF2 + AES-128-CBC) when a passphrase is given, type 1 (plain) otherwise, and the public key
file is the bare HS_PUBKEY encoding, so the Java server and tools read both.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from hdlserver.auth.keys import (
    DEFAULT_KEY_BITS,
    PrivateKey,
    generate_key_pair,
    private_key_to_pem,
    public_key_to_bytes,
    public_key_to_pem,
    write_private_key_file,
    write_secret_file,
)

PROG = "hdl-keygen"
PROMPT_ATTEMPTS = 3

EPILOG = """\
Passphrase: --passphrase-file (first line of the file), --passphrase-env or --no-encrypt; without
any of them the passphrase is asked twice on a terminal, or read as one line from a non-terminal
stdin. An empty passphrase means no encryption.
"""


class UsageError(Exception):
    """A problem to report as ``hdl-keygen: error: ...`` with a non-zero exit status."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate a public/private key pair in the Handle.Net (Java) key file formats.",
        epilog=EPILOG,
        allow_abbrev=False,
    )
    parser.add_argument(
        "-alg",
        "--alg",
        dest="algorithm",
        type=_algorithm,
        default="RSA",
        metavar="{RSA,DSA}",
        help="key algorithm (default RSA)",
    )
    parser.add_argument(
        "-keysize",
        "--keysize",
        dest="bits",
        type=_key_size,
        metavar="N",
        help="key size in bits (default {RSA} for RSA, {DSA} for DSA)".format_map(DEFAULT_KEY_BITS),
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--passphrase-file", metavar="F", help="read the passphrase from the first line of F")
    source.add_argument(
        "--passphrase-env", metavar="VAR", help="take the passphrase from environment variable VAR"
    )
    source.add_argument("--no-encrypt", action="store_true", help="write the private key unencrypted")
    parser.add_argument(
        "--pem",
        action="store_true",
        help="also write PEM copies (PKCS#8 private key, encrypted when a passphrase is set; "
        "SubjectPublicKeyInfo public key) next to the key files, with the suffix .pem",
    )
    parser.add_argument(
        "privkey_file", metavar="PRIVKEY_FILE", help="private key file to write (e.g. privkey.bin)"
    )
    parser.add_argument(
        "pubkey_file", metavar="PUBKEY_FILE", help="public key file to write (e.g. pubkey.bin)"
    )
    return parser


def _algorithm(text: str) -> str:
    alg = text.upper()
    if alg not in DEFAULT_KEY_BITS:
        raise argparse.ArgumentTypeError(f"unsupported algorithm {text!r}: use RSA or DSA")
    return alg


def _key_size(text: str) -> int:
    try:
        bits = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"key size {text!r} is not a number") from None
    if bits <= 0:
        raise argparse.ArgumentTypeError(f"key size must be a positive number of bits, not {bits}")
    return bits


# ---------------------------------------------------------------------------------------------------------
# Passphrase sources


def _strip_line_end(line: bytes) -> bytes:
    return line.removesuffix(b"\n").removesuffix(b"\r")


def _nonempty(passphrase: bytes, where: str) -> bytes:
    if not passphrase:
        raise UsageError(f"{where} is empty; use --no-encrypt for an unencrypted private key")
    return passphrase


def passphrase_from_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            first_line = f.readline()
    except OSError as exc:
        raise UsageError(f"cannot read passphrase file {path}: {exc.strerror or exc}") from exc
    return _nonempty(_strip_line_end(first_line), f"passphrase file {path}")


def passphrase_from_env(name: str) -> bytes:
    value = os.environ.get(name)
    if value is None:
        raise UsageError(f"environment variable {name} is not set")
    return _nonempty(os.fsencode(value), f"environment variable {name}")


def passphrase_from_stream(stream: BinaryIO) -> bytes:
    """One line of raw bytes, read the way Java's ``Util.getPassphrase`` does: up to LF, CRs dropped."""
    try:
        line = stream.readline()
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the passphrase from standard input: {exc}") from exc
    return line.removesuffix(b"\n").replace(b"\r", b"")


def passphrase_from_prompt(ask: Callable[[str], str]) -> bytes:
    """Ask twice on the terminal, as the Java tool does; an empty answer means no encryption."""
    for _ in range(PROMPT_ATTEMPTS):
        first = ask("Passphrase for the private key (empty for no encryption): ")
        second = ask("Re-enter the passphrase: ")
        if first == second:
            return first.encode("utf-8", "surrogateescape")
        print("Passphrases do not match! Try again.", file=sys.stderr)
    raise UsageError(f"passphrases did not match {PROMPT_ATTEMPTS} times")


# Scripts written for the Java hdl-keygen first answer "Would you like to encrypt your private key? (y/n)";
# taking that answer as the passphrase would silently encrypt the key with "y".
_JAVA_DIALOG_ANSWERS = (b"y", b"n", b"yes", b"no")


def choose_passphrase(args: argparse.Namespace) -> bytes | None:
    if args.no_encrypt:
        return None
    if args.passphrase_file is not None:
        return passphrase_from_file(args.passphrase_file)
    if args.passphrase_env is not None:
        return passphrase_from_env(args.passphrase_env)
    stdin = sys.stdin
    if stdin is None:
        passphrase = b""
    elif stdin.isatty():
        passphrase = passphrase_from_prompt(getpass.getpass)
    else:
        passphrase = passphrase_from_stream(stdin.buffer)
        if passphrase.lower() in _JAVA_DIALOG_ANSWERS:
            raise UsageError(
                f"the passphrase read from stdin is {passphrase.decode()!r}, an answer to the Java tool's "
                "'encrypt? (y/n)' question; this hdl-keygen reads the passphrase line itself "
                "(empty line or --no-encrypt for no encryption)"
            )
    if not passphrase:
        print(f"{PROG}: no passphrase given: the private key is written unencrypted", file=sys.stderr)
        return None
    return passphrase


# ---------------------------------------------------------------------------------------------------------
# Output files


def pem_twin(path: Path) -> Path:
    """Where ``--pem`` puts the PEM copy of a key file: same name with the suffix .pem."""
    return path.with_name(path.name + ".pem") if path.suffix == ".pem" else path.with_suffix(".pem")


def planned_outputs(
    args: argparse.Namespace, key: PrivateKey, passphrase: bytes | None
) -> list[tuple[Path, bytes, bool]]:
    """(path, contents, secret) for every file to write, private key first."""
    priv_path, pub_path = Path(args.privkey_file), Path(args.pubkey_file)
    outputs = [
        (priv_path, write_private_key_file(key, passphrase), True),
        (pub_path, public_key_to_bytes(key.public_key()), False),
    ]
    if args.pem:
        outputs.append((pem_twin(priv_path), private_key_to_pem(key, passphrase), True))
        outputs.append((pem_twin(pub_path), public_key_to_pem(key.public_key()), False))
    return outputs


def check_targets(paths: list[Path]) -> None:
    """Fail before the (slow) key generation when an output obviously cannot be written."""
    seen: dict[Path, Path] = {}
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(f"{seen[resolved]} and {path} are the same file; give distinct output files")
        seen[resolved] = path
        if path.is_dir():
            raise UsageError(f"cannot write {path}: it is a directory")
        parent = path.parent
        if not parent.is_dir():
            raise UsageError(f"cannot write {path}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"cannot write {path}: directory {parent} is not writable")


def write_outputs(outputs: list[tuple[Path, bytes, bool]]) -> None:
    for path, data, secret in outputs:
        try:
            if secret:
                write_secret_file(path, data)
            else:
                path.write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace) -> None:
    priv_path, pub_path = Path(args.privkey_file), Path(args.pubkey_file)
    targets = [priv_path, pub_path] + ([pem_twin(priv_path), pem_twin(pub_path)] if args.pem else [])
    check_targets(targets)
    passphrase = choose_passphrase(args)
    bits = args.bits or DEFAULT_KEY_BITS[args.algorithm]
    print(f"Generating keys; algorithm={args.algorithm}; keysize={bits}")
    try:
        key = generate_key_pair(args.algorithm, bits)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    outputs = planned_outputs(args, key, passphrase)
    write_outputs(outputs)
    protection = "encrypted with PBKDF2-HMAC-SHA1 + AES-128-CBC" if passphrase else "NOT encrypted"
    print(f"Private key written to {priv_path} ({protection})")
    print(f"Public key written to {pub_path}")
    for path, _, _ in outputs[2:]:
        print(f"PEM copy written to {path}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2): report the status instead of exiting
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    try:
        run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

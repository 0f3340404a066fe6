"""hdl-keyutil: change the encryption of a Java Handle.Net private key file, and convert keys to/from PEM.

``hdl-keyutil KEYFILE`` is the Java ``KeyUtil`` dialogue: the current passphrase (when the file is encrypted),
then a menu (1 encrypt, 2 save without encryption, 3 exit, 6/7 the legacy DES encodings), answered on a
terminal or from piped stdin lines exactly as scripts written for the Java tool answer it. The key file is
rewritten in place, as Java does.

The non-interactive forms take one action flag:

* ``--decrypt KEYFILE``: write the key unencrypted (type 1);
* ``--encrypt KEYFILE``: write it encrypted with a new passphrase (type 4, or ``--scheme`` des-cbc/des-ecb);
* ``--to-pem FILE``: a Java private key file to PKCS#8 PEM (encrypted when a new passphrase is given), or a
  Java public key file (pubkey.bin) to SubjectPublicKeyInfo PEM;
* ``--from-pem FILE``: a PKCS#8/OpenSSL private key PEM to a Java key file, or a public key PEM to pubkey.bin.

Output goes to ``-o OUT`` (``-`` is stdout for PEM), by default back into the input file for --encrypt and
--decrypt. Files are replaced atomically and private keys are written owner-only.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import dsa, rsa

from hdlserver.auth import keys
from hdlserver.auth.keys import KeyEncryption, PassphraseRequiredError, WrongPassphraseError
from hdlserver.cli.keygen import UsageError, passphrase_from_env, passphrase_from_file
from hdlserver.errors import DecodeError, KeyFileError

PROG = "hdl-keyutil"
PROMPT_ATTEMPTS = 3

# The key file types the Java KeyUtil menu writes: 1 is the current PBKDF2+AES, 6 and 7 the encodings of
# Handle.Net 6 and 7 software (observed with the 9.2 tool: type 0 DES-ECB and type 2 DES-CBC).
MENU_ENCRYPTIONS = {"1": KeyEncryption.PBKDF2_AES_CBC, "6": KeyEncryption.DES_ECB, "7": KeyEncryption.DES_CBC}
SCHEMES = {"pbkdf2-aes": KeyEncryption.PBKDF2_AES_CBC, "des-cbc": KeyEncryption.DES_CBC,
           "des-ecb": KeyEncryption.DES_ECB}

MENU = """
Choose an operation:
  1: Encrypt private key with passphrase
  2: Save private key without encryption
  3: Exit
  --------------------------------------------------------------------------
  6: Encrypt private key using encryption compatible with version 6 software
  7: Encrypt private key using encryption compatible with version 7 software
  (only needed if you will use this key with old versions of the software)"""

EPILOG = """\
Passphrases: the current one from --passphrase-file/--passphrase-env, the new one from
--new-passphrase-file/--new-passphrase-env; otherwise they are asked on the terminal, or read one line
each from a non-terminal stdin (current first, then new). An empty new passphrase means no encryption.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Encrypt or decrypt a Handle.Net private key file; convert keys between the Handle.Net "
        "(Java) formats and PEM. Without an action flag, runs the Java KeyUtil menu on KEYFILE.",
        epilog=EPILOG,
        allow_abbrev=False,
    )
    action = parser.add_mutually_exclusive_group()
    for flag, help_text in (
        ("--decrypt", "write the private key without encryption"),
        ("--encrypt", "write the private key encrypted with a new passphrase"),
        ("--to-pem", "convert a Java private/public key file to PKCS#8/SubjectPublicKeyInfo PEM"),
        ("--from-pem", "convert a PEM private/public key to a Java key file"),
    ):
        action.add_argument(flag, dest="action", action="store_const", const=flag[2:], help=help_text)
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="output file ('-' = stdout, PEM only); default: KEYFILE for --encrypt/--decrypt")
    parser.add_argument("--scheme", choices=sorted(SCHEMES), default="pbkdf2-aes",
                        help="key file encryption for --encrypt and --from-pem (default pbkdf2-aes, type 4; "
                        "des-cbc and des-ecb are only for Handle.Net 7 and 6 software)")
    for dest, what in (("passphrase", "current"), ("new_passphrase", "new")):
        group = parser.add_mutually_exclusive_group()
        flag = dest.replace("_", "-")
        group.add_argument(f"--{flag}-file", dest=f"{dest}_file", metavar="F",
                           help=f"read the {what} passphrase from the first line of F")
        group.add_argument(f"--{flag}-env", dest=f"{dest}_env", metavar="VAR",
                           help=f"take the {what} passphrase from environment variable VAR")
    parser.add_argument("keyfile", metavar="KEYFILE", help="the key file to read")
    return parser


# ---------------------------------------------------------------------------------------------------------
# Talking to the user


@dataclass
class Console:
    """Prompts and answers: getpass/input on a terminal, otherwise one raw line of stdin per answer."""

    interactive: bool
    ask_secret: Callable[[str], str] = getpass.getpass
    ask_line: Callable[[str], str] = input

    def line(self, prompt: str, *, secret: bool = False) -> bytes | None:
        """The answer without its line end; None at end of input."""
        if self.interactive:
            try:
                answer = (self.ask_secret if secret else self.ask_line)(prompt)
            except EOFError:
                return None
            return answer.encode("utf-8", "surrogateescape")
        if prompt:
            print(prompt, flush=True)
        stream = sys.stdin.buffer if sys.stdin is not None else None
        if stream is None:
            return None
        raw = stream.readline()
        if not raw:
            return None
        return raw.removesuffix(b"\n").replace(b"\r", b"")  # as Java's Util.getPassphrase reads a line


def default_console() -> Console:
    return Console(interactive=sys.stdin is not None and sys.stdin.isatty())


def option_passphrase(args: argparse.Namespace, dest: str) -> bytes | None:
    path, var = getattr(args, f"{dest}_file"), getattr(args, f"{dest}_env")
    if path is not None:
        return passphrase_from_file(path)
    if var is not None:
        return passphrase_from_env(var)
    return None


def current_passphrase(args: argparse.Namespace, console: Console) -> bytes:
    given = option_passphrase(args, "passphrase")
    if given is not None:
        return given
    answer = console.line("Enter the passphrase for this private key: ", secret=True)
    if answer is None:
        raise UsageError("the key file is encrypted and no passphrase was given")
    return answer


def new_passphrase(args: argparse.Namespace, console: Console) -> bytes | None:
    """The new passphrase (None = no encryption), asked twice like Java; piped answers get no retry."""
    given = option_passphrase(args, "new_passphrase")
    if given is not None:
        return given
    for _ in range(PROMPT_ATTEMPTS):
        first = console.line("Please enter a new private key passphrase: ", secret=True)
        if first is None:
            raise UsageError("no new passphrase given")
        if console.line("Please re-enter the private key passphrase: ", secret=True) == first:
            return first or None
        if not console.interactive:
            raise UsageError("the two new passphrases read from stdin differ")
        print("Passphrases do not match! Try again.", file=sys.stderr)
    raise UsageError(f"passphrases did not match {PROMPT_ATTEMPTS} times")


# ---------------------------------------------------------------------------------------------------------
# Reading and writing keys


def read_input(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def is_java_private_key_file(data: bytes) -> bool:
    """Private key files start with an encryption type 0-4; public key files with a string length."""
    return len(data) >= 4 and keys.key_file_encryption(data) in set(KeyEncryption)


def decode_java_private(path: Path, data: bytes, args: argparse.Namespace, console: Console) -> keys.PrivateKey:
    passphrase = current_passphrase(args, console) if keys.is_encrypted_key_file(data) else None
    return _located(path, lambda: keys.read_private_key_file(data, passphrase))


def decode_pem_private(path: Path, data: bytes, args: argparse.Namespace, console: Console) -> keys.PrivateKey:
    passphrase = current_passphrase(args, console) if b"ENCRYPTED" in data else None
    return _located(path, lambda: keys.private_key_from_pem(data, passphrase))


T = TypeVar("T")


def _located(path: Path, load: Callable[[], T]) -> T:
    try:
        return load()
    except (PassphraseRequiredError, WrongPassphraseError) as exc:
        raise UsageError(str(type(exc)(path))) from None
    except (KeyFileError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    except DecodeError as exc:
        raise UsageError(f"{path}: not a key file: {exc}") from None


def write_output(target: str, data: bytes, *, secret: bool) -> None:
    """Replace ``target`` atomically (a crash leaves the old key file), owner-only for private keys."""
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    path = Path(target)
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            if not secret:
                os.fchmod(f.fileno(), 0o644)
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------------------------------------------------
# Actions


def run_menu(path: Path, args: argparse.Namespace, console: Console) -> None:
    """The Java KeyUtil dialogue; the file is rewritten after each save choice, until 3 or end of input."""
    data = read_input(path)
    if not is_java_private_key_file(data):
        raise UsageError(f"{path}: not a Handle.Net private key file")
    key = decode_java_private(path, data, args, console)
    while True:
        print(MENU)
        choice = console.line("")
        if choice is None or choice.strip() == b"3":
            return
        pick = choice.strip().decode("latin-1")
        if pick == "2":
            write_output(str(path), keys.write_private_key_file(key, None, KeyEncryption.NONE), secret=True)
        elif pick in MENU_ENCRYPTIONS:
            passphrase = new_passphrase(args, console)
            write_output(str(path), keys.write_private_key_file(key, passphrase, MENU_ENCRYPTIONS[pick]), secret=True)
        else:
            print("Huh?  Please enter 1, 2, 3, 6, or 7")
            continue
        print(f"Private key saved to file: {path}")


def run_reencrypt(path: Path, args: argparse.Namespace, console: Console, *, encrypt: bool) -> str:
    data = read_input(path)
    if not is_java_private_key_file(data):
        raise UsageError(f"{path}: not a Handle.Net private key file")
    key = decode_java_private(path, data, args, console)
    target = args.output or str(path)
    if target == "-":
        raise UsageError("a key file cannot be written to stdout; give -o OUT")
    if not encrypt:
        write_output(target, keys.write_private_key_file(key, None, KeyEncryption.NONE), secret=True)
        return f"Private key saved to file: {target} (NOT encrypted)"
    passphrase = new_passphrase(args, console)
    if passphrase is None:
        raise UsageError("--encrypt needs a non-empty new passphrase (use --decrypt for no encryption)")
    write_output(target, keys.write_private_key_file(key, passphrase, SCHEMES[args.scheme]), secret=True)
    return f"Private key saved to file: {target} (encrypted, {args.scheme})"


def run_to_pem(path: Path, args: argparse.Namespace, console: Console) -> str:
    data = read_input(path)
    target = args.output or "-"
    if is_java_private_key_file(data):
        key = decode_java_private(path, data, args, console)
        write_output(target, keys.private_key_to_pem(key, option_passphrase(args, "new_passphrase")), secret=True)
        return f"PKCS#8 private key written to {target}"
    public = _located(path, lambda: keys.public_key_from_bytes(data))
    if not isinstance(public, rsa.RSAPublicKey | dsa.DSAPublicKey):
        raise UsageError(f"{path}: only RSA and DSA keys can be converted")
    write_output(target, keys.public_key_to_pem(public), secret=False)
    return f"SubjectPublicKeyInfo public key written to {target}"


def run_from_pem(path: Path, args: argparse.Namespace, console: Console) -> str:
    data = read_input(path)
    if args.output in (None, "-"):
        raise UsageError("--from-pem writes a binary key file: give -o OUT")
    if b"-----BEGIN PUBLIC KEY-----" in data:
        public = _located(path, lambda: keys.public_key_from_pem(data))
        if not isinstance(public, rsa.RSAPublicKey | dsa.DSAPublicKey):
            raise UsageError(f"{path}: only RSA and DSA keys can be converted")
        write_output(args.output, keys.public_key_to_bytes(public), secret=False)
        return f"Public key written to {args.output}"
    if b"PRIVATE KEY-----" not in data:
        raise UsageError(f"{path}: not a PEM public or private key")
    key = decode_pem_private(path, data, args, console)
    passphrase = option_passphrase(args, "new_passphrase")
    write_output(args.output, keys.write_private_key_file(key, passphrase, SCHEMES[args.scheme]), secret=True)
    protection = f"encrypted, {args.scheme}" if passphrase else "NOT encrypted"
    return f"Private key written to {args.output} ({protection})"


def run(args: argparse.Namespace, console: Console) -> str | None:
    path = Path(args.keyfile)
    if args.action is None:
        run_menu(path, args, console)
        return None
    if args.action in ("encrypt", "decrypt"):
        return run_reencrypt(path, args, console, encrypt=args.action == "encrypt")
    if args.action == "to-pem":
        return run_to_pem(path, args, console)
    return run_from_pem(path, args, console)


def main(argv: list[str] | None = None, console: Console | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2): report the status instead of exiting
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    try:
        summary = run(args, console or default_console())
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    if summary:
        # Keep stdout clean when it carries the PEM itself.
        pem_on_stdout = args.output == "-" or (args.action == "to-pem" and args.output is None)
        print(summary, file=sys.stderr if pem_on_stdout else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""hdl-keyutil (hdlserver.cli.keyutil) against the Java-made key files of ../shared/vectors/keys and Java's tools."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from interop.java import JAVA_BIN, missing_java

from hdlserver.auth import keys
from hdlserver.auth.keys import KeyEncryption
from hdlserver.cli import keyutil

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "keys"
PASS = "vector-pass"
KEY_NAMES = ("rsa2048", "dsa1024")

pytestmark = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"key vectors not found at {VECTORS}")


def vector(name: str, kind: str) -> Path:
    suffix = {"plain": "_priv_plain.bin", "enc": "_priv_enc.bin", "pub": "_pub.bin",
              "pem": "_priv_pkcs8.pem", "pub_pem": "_pub_spki.pem"}[kind]
    return VECTORS / f"{name}{suffix}"


def writable_copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def run_tool(args: list[str | Path], stdin: bytes = b"", env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[bytes]:
    """hdl-keyutil as a subprocess with a piped (non-terminal) stdin, as scripts run it."""
    return subprocess.run([sys.executable, "-m", "hdlserver.cli.keyutil", *map(str, args)], input=stdin,
                          capture_output=True, timeout=60, env={**os.environ, **(env or {})}, check=False)


def passphrase_file(tmp_path: Path, text: str, name: str = "pass.txt") -> Path:
    path = tmp_path / name
    path.write_text(text + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------
# Byte compatibility with the Java-made files


@pytest.mark.parametrize("name", KEY_NAMES)
def test_decrypt_java_encrypted_file_gives_javas_plain_file(tmp_path: Path, name: str) -> None:
    out = tmp_path / "plain.bin"
    status = keyutil.main(["--decrypt", str(vector(name, "enc")), "-o", str(out),
                           "--passphrase-file", str(passphrase_file(tmp_path, PASS))])
    assert status == 0
    assert out.read_bytes() == vector(name, "plain").read_bytes()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", KEY_NAMES)
def test_to_pem_matches_javas_pkcs8_and_spki(tmp_path: Path, name: str) -> None:
    env_name = "KEYUTIL_TEST_PASS"
    os.environ[env_name] = PASS
    try:
        assert keyutil.main(["--to-pem", str(vector(name, "enc")), "--passphrase-env", env_name,
                             "-o", str(tmp_path / "priv.pem")]) == 0
    finally:
        del os.environ[env_name]
    assert (tmp_path / "priv.pem").read_bytes() == vector(name, "pem").read_bytes()
    assert keyutil.main(["--to-pem", str(vector(name, "pub")), "-o", str(tmp_path / "pub.pem")]) == 0
    assert (tmp_path / "pub.pem").read_bytes() == vector(name, "pub_pem").read_bytes()


@pytest.mark.parametrize("name", KEY_NAMES)
def test_from_pem_gives_javas_key_files(tmp_path: Path, name: str) -> None:
    assert keyutil.main(["--from-pem", str(vector(name, "pem")), "-o", str(tmp_path / "priv.bin")]) == 0
    assert (tmp_path / "priv.bin").read_bytes() == vector(name, "plain").read_bytes()
    assert keyutil.main(["--from-pem", str(vector(name, "pub_pem")), "-o", str(tmp_path / "pub.bin")]) == 0
    assert (tmp_path / "pub.bin").read_bytes() == vector(name, "pub").read_bytes()


def test_pem_to_stdout_keeps_stdout_clean(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert keyutil.main(["--to-pem", str(vector("rsa2048", "pub"))]) == 0
    out, err = capsysbinary.readouterr()
    assert out == vector("rsa2048", "pub_pem").read_bytes()
    assert b"written to -" in err


@pytest.mark.parametrize("scheme,encryption", sorted(keyutil.SCHEMES.items()))
@pytest.mark.parametrize("name", KEY_NAMES)
def test_encrypt_in_place_round_trips(tmp_path: Path, name: str, scheme: str, encryption: KeyEncryption) -> None:
    path = writable_copy(vector(name, "plain"), tmp_path / "key.bin")
    assert keyutil.main(["--encrypt", str(path), "--scheme", scheme,
                         "--new-passphrase-file", str(passphrase_file(tmp_path, "new-pass"))]) == 0
    data = path.read_bytes()
    assert keys.key_file_encryption(data) == encryption
    key = keys.read_private_key_file(data, b"new-pass")
    assert keys.write_private_key_file(key, None) == vector(name, "plain").read_bytes()


def test_encrypted_pem_round_trip(tmp_path: Path) -> None:
    new = passphrase_file(tmp_path, "pem-pass", "new.txt")
    assert keyutil.main(["--to-pem", str(vector("dsa1024", "plain")), "--new-passphrase-file", str(new),
                         "-o", str(tmp_path / "enc.pem")]) == 0
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "enc.pem").read_bytes()
    assert keyutil.main(["--from-pem", str(tmp_path / "enc.pem"), "--passphrase-file", str(new),
                         "-o", str(tmp_path / "back.bin")]) == 0
    assert (tmp_path / "back.bin").read_bytes() == vector("dsa1024", "plain").read_bytes()


# ---------------------------------------------------------------------------------------------------------
# The Java KeyUtil dialogue, answered from piped stdin


def test_menu_dialogue_as_scripts_answer_java(tmp_path: Path) -> None:
    path = writable_copy(vector("rsa2048", "enc"), tmp_path / "key.bin")
    result = run_tool([path], stdin=f"{PASS}\nbogus\n7\nlegacy\nlegacy\n2\n3\n".encode())
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "Enter the passphrase for this private key:" in out
    assert "Huh?  Please enter 1, 2, 3, 6, or 7" in out
    assert out.count(f"Private key saved to file: {path}") == 2
    assert path.read_bytes() == vector("rsa2048", "plain").read_bytes()  # the last save (2) wins


def test_menu_on_plain_file_asks_no_passphrase(tmp_path: Path) -> None:
    path = writable_copy(vector("dsa1024", "plain"), tmp_path / "key.bin")
    result = run_tool([path], stdin=b"1\nfresh\nfresh\n")  # end of input ends the dialogue like 3
    assert result.returncode == 0, result.stderr
    assert b"Enter the passphrase" not in result.stdout
    data = path.read_bytes()
    assert keys.key_file_encryption(data) == KeyEncryption.PBKDF2_AES_CBC
    assert keys.read_private_key_file(data, b"fresh")


def test_menu_mismatched_new_passphrases_change_nothing(tmp_path: Path) -> None:
    path = writable_copy(vector("dsa1024", "plain"), tmp_path / "key.bin")
    result = run_tool([path], stdin=b"1\none\ntwo\n")
    assert result.returncode == 1
    assert b"the two new passphrases read from stdin differ" in result.stderr
    assert path.read_bytes() == vector("dsa1024", "plain").read_bytes()


# ---------------------------------------------------------------------------------------------------------
# Failures: a readable message, a non-zero status, nothing written


@pytest.mark.parametrize("args", [
    ["--decrypt"], ["--to-pem"], [],
])
def test_wrong_passphrase_is_refused(tmp_path: Path, args: list[str]) -> None:
    path = writable_copy(vector("rsa2048", "enc"), tmp_path / "key.bin")
    result = run_tool([*args, path, "-o", tmp_path / "out"] if args else [path], stdin=b"not-the-pass\n2\n")
    assert result.returncode == 1
    assert f"hdl-keyutil: error: {path}: wrong passphrase or corrupt key file".encode() in result.stderr
    assert path.read_bytes() == vector("rsa2048", "enc").read_bytes()
    assert not (tmp_path / "out").exists()


def test_missing_passphrase_is_refused(tmp_path: Path) -> None:
    result = run_tool(["--decrypt", vector("rsa2048", "enc"), "-o", tmp_path / "out"], stdin=b"")
    assert result.returncode == 1
    assert b"the key file is encrypted and no passphrase was given" in result.stderr
    assert not (tmp_path / "out").exists()


def test_wrong_pem_passphrase_is_refused(tmp_path: Path) -> None:
    pem = tmp_path / "enc.pem"
    pem.write_bytes(keys.private_key_to_pem(keys.load_private_key(vector("dsa1024", "plain")), b"right"))
    result = run_tool(["--from-pem", pem, "-o", tmp_path / "out.bin"], stdin=b"wrong\n")
    assert result.returncode == 1
    assert b"wrong passphrase" in result.stderr
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("args,message", [
    (["--decrypt", "{pub}"], "not a Handle.Net private key file"),
    (["--from-pem", "{plain}", "-o", "{out}"], "not a PEM public or private key"),
    (["--from-pem", "{pem}"], "give -o OUT"),
    (["--decrypt", "{plain}", "-o", "-"], "cannot be written to stdout"),
    (["--decrypt", "{missing}"], "cannot read"),
    (["--to-pem", "{corrupt}", "-o", "{out}"], "not a key file: truncated"),
    (["--encrypt", "{plain}", "-o", "{out}", "--new-passphrase-env", "KEYUTIL_EMPTY"], "is empty"),
    (["--decrypt", "{plain}", "-o", "{tmp}"], "it is a directory"),
])
def test_bad_input_is_reported(tmp_path: Path, args: list[str], message: str) -> None:
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(b"\x00\x00\x00\x0bRSA_PUB_K")
    names = {"pub": vector("rsa2048", "pub"), "plain": vector("rsa2048", "plain"), "pem": vector("rsa2048", "pem"),
             "out": tmp_path / "out", "missing": tmp_path / "missing.bin", "corrupt": corrupt, "tmp": tmp_path}
    result = run_tool([a.format(**names) for a in args], env={"KEYUTIL_EMPTY": ""})
    assert result.returncode == 1
    assert message in result.stderr.decode(), result.stderr
    assert not (tmp_path / "out").exists()


def test_usage_error_status() -> None:
    assert keyutil.main(["--encrypt", "--decrypt", "x"]) == 2


# ---------------------------------------------------------------------------------------------------------
# Java reads what we wrote


def java_resaves_plain(path: Path, passphrase: bytes) -> bytes:
    """Java hdl-keyutil decrypts the file (passphrase on stdin) and saves it unencrypted (menu item 2)."""
    result = subprocess.run([str(JAVA_BIN / "hdl-keyutil"), str(path)], input=passphrase + b"\n2\n3\n",
                            capture_output=True, timeout=60, check=False)
    assert b"Unable to read private key" not in result.stderr + result.stdout, result.stderr
    assert b"Private key saved to file" in result.stdout, result.stdout
    return path.read_bytes()


@pytest.mark.interop
@pytest.mark.skipif(missing_java() is not None, reason=str(missing_java()))
@pytest.mark.parametrize("scheme", sorted(keyutil.SCHEMES))
def test_java_keyutil_decrypts_our_files(tmp_path: Path, scheme: str) -> None:
    path = writable_copy(vector("rsa2048", "plain"), tmp_path / "key.bin")
    assert keyutil.main(["--encrypt", str(path), "--scheme", scheme,
                         "--new-passphrase-file", str(passphrase_file(tmp_path, "ours"))]) == 0
    assert java_resaves_plain(path, b"ours") == vector("rsa2048", "plain").read_bytes()


# ---------------------------------------------------------------------------------------------------------
# On a terminal: getpass prompts, asked twice, retried on a mismatch


def terminal(answers: list[str]) -> keyutil.Console:
    pending = iter(answers)
    return keyutil.Console(interactive=True, ask_secret=lambda _prompt: next(pending),
                           ask_line=lambda _prompt: next(pending))


def test_terminal_prompts_with_one_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "key.bin"
    console = terminal([PASS, "new-one", "typo", "new-one", "new-one"])
    assert keyutil.main(["--encrypt", str(vector("dsa1024", "enc")), "-o", str(out)], console) == 0
    assert "Passphrases do not match! Try again." in capsys.readouterr().err
    assert keys.read_private_key_file(out.read_bytes(), b"new-one")


def test_terminal_gives_up_after_three_mismatches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "key.bin"
    console = terminal(["a", "b", "c", "d", "e", "f"])
    assert keyutil.main(["--encrypt", str(vector("dsa1024", "plain")), "-o", str(out)], console) == 1
    assert "passphrases did not match 3 times" in capsys.readouterr().err
    assert not out.exists()


def test_terminal_menu_exit(tmp_path: Path) -> None:
    path = writable_copy(vector("rsa2048", "enc"), tmp_path / "key.bin")
    assert keyutil.main([str(path)], terminal([PASS, "3"])) == 0
    assert path.read_bytes() == vector("rsa2048", "enc").read_bytes()

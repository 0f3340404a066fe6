"""hdl-keygen (hdlserver.cli.keygen): in-process, as a subprocess, and against the real Java tools."""

from __future__ import annotations

import hashlib
import io
import os
import selectors
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.algorithms import AES

from hdlserver.auth import keys
from hdlserver.auth.keys import KeyEncryption, PassphraseRequiredError
from hdlserver.cli import keygen
from hdlserver.wire.buffer import Reader

REPO = Path(__file__).resolve().parents[2]
HANDLE_JAVA = REPO.parent / "shared" / "handle-java"
NON_ASCII_PASS = "clé-secrète".encode()


def run_main(
    argv: list[str], capsys: pytest.CaptureFixture[str], expected_status: int = 0
) -> tuple[str, str]:
    status = keygen.main(argv)
    out, err = capsys.readouterr()
    assert status == expected_status, (out, err)
    return out, err


def read_pair(tmp_path: Path, passphrase: bytes | None) -> tuple[keys.PrivateKey, keys.PublicKey]:
    priv = keys.load_private_key(tmp_path / "priv.bin", passphrase)
    pub = keys.load_public_key(tmp_path / "pub.bin")
    assert keys.keys_match(priv, pub)
    assert (tmp_path / "pub.bin").read_bytes() == keys.public_key_to_bytes(priv.public_key())
    return priv, pub


def outputs(tmp_path: Path) -> list[str]:
    return [str(tmp_path / "priv.bin"), str(tmp_path / "pub.bin")]


# ---------------------------------------------------------------------------------------------------------
# In-process: success


def test_no_encrypt_writes_plain_java_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_main(["-keysize", "1024", "--no-encrypt", *outputs(tmp_path)], capsys)
    assert "Generating keys; algorithm=RSA; keysize=1024" in out
    assert "NOT encrypted" in out
    data = (tmp_path / "priv.bin").read_bytes()
    assert keys.key_file_encryption(data) == KeyEncryption.NONE
    priv, _ = read_pair(tmp_path, None)
    assert isinstance(priv, rsa.RSAPrivateKey) and priv.key_size == 1024
    assert data[4:8] == b"\x00\x00\x00\x0f" and data[8:23] == b"RSA_PRIVCRT_KEY"
    assert stat.S_IMODE((tmp_path / "priv.bin").stat().st_mode) == 0o600
    assert not list(tmp_path.glob("*.pem"))


def test_default_rsa_key_is_2048_bits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_main(["--no-encrypt", *outputs(tmp_path)], capsys)
    assert "algorithm=RSA; keysize=2048" in out
    assert read_pair(tmp_path, None)[0].key_size == 2048


@pytest.mark.parametrize("flag", ["-alg", "--alg"])
def test_dsa_defaults_to_1024_bits(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    out, _ = run_main([flag, "dsa", "--no-encrypt", *outputs(tmp_path)], capsys)
    assert "algorithm=DSA; keysize=1024" in out
    priv, _ = read_pair(tmp_path, None)
    assert isinstance(priv, dsa.DSAPrivateKey) and priv.key_size == 1024


def test_passphrase_file_gives_type4_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pass.txt").write_bytes(NON_ASCII_PASS + b"\r\nsecond line ignored\n")
    out, _ = run_main(
        ["-keysize", "1024", "--passphrase-file", str(tmp_path / "pass.txt"), *outputs(tmp_path)], capsys
    )
    assert "encrypted with PBKDF2-HMAC-SHA1 + AES-128-CBC" in out
    assert keys.key_file_encryption((tmp_path / "priv.bin").read_bytes()) == KeyEncryption.PBKDF2_AES_CBC
    read_pair(tmp_path, NON_ASCII_PASS)
    with pytest.raises(PassphraseRequiredError):
        keys.load_private_key(tmp_path / "priv.bin", None)


def test_passphrase_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HDL_TEST_PASS", "from-env")
    run_main(["-alg", "DSA", "--passphrase-env", "HDL_TEST_PASS", *outputs(tmp_path)], capsys)
    read_pair(tmp_path, b"from-env")


def test_pem_twins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HDL_TEST_PASS", "pem-pass")
    out, _ = run_main(
        ["-keysize", "1024", "--passphrase-env", "HDL_TEST_PASS", "--pem", *outputs(tmp_path)], capsys
    )
    priv, pub = read_pair(tmp_path, b"pem-pass")
    priv_pem, pub_pem = (tmp_path / "priv.pem").read_bytes(), (tmp_path / "pub.pem").read_bytes()
    assert f"PEM copy written to {tmp_path / 'priv.pem'}" in out
    assert priv_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert keys.private_key_from_pem(priv_pem, b"pem-pass").private_numbers() == priv.private_numbers()
    assert keys.public_key_from_pem(pub_pem).public_numbers() == pub.public_numbers()
    assert stat.S_IMODE((tmp_path / "priv.pem").stat().st_mode) == 0o600


def test_pem_twin_names() -> None:
    assert keygen.pem_twin(Path("d/privkey.bin")) == Path("d/privkey.pem")
    assert keygen.pem_twin(Path("privkey")) == Path("privkey.pem")
    assert keygen.pem_twin(Path("key.pem")) == Path("key.pem.pem")


def test_existing_files_are_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "priv.bin").write_bytes(b"old")
    (tmp_path / "priv.bin").chmod(0o644)
    run_main(["-keysize", "1024", "--no-encrypt", *outputs(tmp_path)], capsys)
    read_pair(tmp_path, None)
    assert stat.S_IMODE((tmp_path / "priv.bin").stat().st_mode) == 0o600


# ---------------------------------------------------------------------------------------------------------
# In-process: passphrase from stdin and from the terminal


def set_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stdin_line_is_the_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_stdin(monkeypatch, NON_ASCII_PASS + b"\r\n")
    run_main(["-keysize", "1024", *outputs(tmp_path)], capsys)
    read_pair(tmp_path, NON_ASCII_PASS)


@pytest.mark.parametrize("data", [b"\n", b""])
def test_empty_stdin_means_no_encryption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    set_stdin(monkeypatch, data)
    _, err = run_main(["-keysize", "1024", *outputs(tmp_path)], capsys)
    assert "no passphrase given: the private key is written unencrypted" in err
    assert not keys.is_encrypted_key_file((tmp_path / "priv.bin").read_bytes())


def test_java_dialog_answer_on_stdin_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_stdin(monkeypatch, b"y\nsecret\nsecret\n")
    _, err = run_main(["-keysize", "1024", *outputs(tmp_path)], capsys, expected_status=1)
    assert "an answer to the Java tool's 'encrypt? (y/n)' question" in err
    assert not (tmp_path / "priv.bin").exists()


def test_unreadable_stdin_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's own stdin replacement raises on read, like a closed descriptor would.
    _, err = run_main(["-keysize", "1024", *outputs(tmp_path)], capsys, expected_status=1)
    assert "cannot read the passphrase from standard input" in err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def prompt_answers(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr(sys, "stdin", FakeTerminal())
    monkeypatch.setattr(keygen.getpass, "getpass", ask)
    return prompts


def test_terminal_prompts_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = prompt_answers(monkeypatch, ["clé", "clé"])
    run_main(["-keysize", "1024", *outputs(tmp_path)], capsys)
    assert len(prompts) == 2
    read_pair(tmp_path, "clé".encode())


def test_terminal_mismatch_asks_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt_answers(monkeypatch, ["one", "two", "good", "good"])
    _, err = run_main(["-keysize", "1024", *outputs(tmp_path)], capsys)
    assert "Passphrases do not match! Try again." in err
    read_pair(tmp_path, b"good")


def test_terminal_repeated_mismatch_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt_answers(monkeypatch, ["a", "b"] * 3)
    _, err = run_main(["-keysize", "1024", *outputs(tmp_path)], capsys, expected_status=1)
    assert "passphrases did not match 3 times" in err
    assert not (tmp_path / "priv.bin").exists()


def test_terminal_empty_answer_means_no_encryption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt_answers(monkeypatch, ["", ""])
    run_main(["-keysize", "1024", *outputs(tmp_path)], capsys)
    assert not keys.is_encrypted_key_file((tmp_path / "priv.bin").read_bytes())


# ---------------------------------------------------------------------------------------------------------
# In-process: help and failures


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run_main(["--help"], capsys)
    assert out.startswith("usage: hdl-keygen")
    for option in ("-alg", "-keysize", "--passphrase-file", "--passphrase-env", "--no-encrypt", "--pem"):
        assert option in out
    assert "PRIVKEY_FILE PUBKEY_FILE" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-alg", "EC", "a", "b"], "unsupported algorithm 'EC': use RSA or DSA"),
        (["-keysize", "big", "a", "b"], "key size 'big' is not a number"),
        (["-keysize", "0", "a", "b"], "key size must be a positive number of bits"),
        (["a"], "the following arguments are required: PUBKEY_FILE"),
        (["a", "b", "c"], "unrecognized arguments: c"),
        (["--no-encrypt", "--passphrase-env", "X", "a", "b"], "not allowed with argument"),
        (["-bogus", "a", "b"], "unrecognized arguments: -bogus"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    _, err = run_main(argv, capsys, expected_status=2)
    assert message in err
    assert not list(tmp_path.iterdir())


def test_failures_exit_1_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HDL_UNSET_VAR", raising=False)
    (tmp_path / "empty.txt").write_bytes(b"\n")
    (tmp_path / "adir").mkdir()
    priv, pub = outputs(tmp_path)
    cases = [
        (["--no-encrypt", str(tmp_path / "missing" / "priv.bin"), pub], "directory"),
        (["--no-encrypt", priv, str(tmp_path / "adir")], "it is a directory"),
        (["--no-encrypt", priv, priv], "are the same file"),
        (["--no-encrypt", "--pem", str(tmp_path / "k.bin"), str(tmp_path / "k.pem")], "are the same file"),
        (["--passphrase-file", str(tmp_path / "nope.txt"), priv, pub], "cannot read passphrase file"),
        (["--passphrase-file", str(tmp_path / "empty.txt"), priv, pub], "is empty; use --no-encrypt"),
        (["--passphrase-env", "HDL_UNSET_VAR", priv, pub], "environment variable HDL_UNSET_VAR is not set"),
        (["--no-encrypt", "-keysize", "512", priv, pub], "cannot generate a 512-bit RSA key"),
        (
            ["--no-encrypt", "-alg", "DSA", "-keysize", "1000", priv, pub],
            "cannot generate a 1000-bit DSA key",
        ),
    ]
    for argv, message in cases:
        _, err = run_main(argv, capsys, expected_status=1)
        assert err.startswith("hdl-keygen: error: ") and message in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "empty.txt"]


def test_write_failure_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: object, data: bytes) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(keygen, "write_secret_file", refuse)
    _, err = run_main(["--no-encrypt", "-keysize", "1024", *outputs(tmp_path)], capsys, expected_status=1)
    assert f"hdl-keygen: error: cannot write {tmp_path / 'priv.bin'}: Permission denied" in err


# ---------------------------------------------------------------------------------------------------------
# As a subprocess (python -m hdlserver.cli.keygen)


def run_module(args: list[str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m hdlserver.cli.keygen`` in ``cwd``, importing this checkout's package."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("HDL_UNSET_VAR", None)
    return subprocess.run(
        [sys.executable, "-m", "hdlserver.cli.keygen", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def test_subprocess_success_with_piped_passphrase(tmp_path: Path) -> None:
    result = run_module(["-alg", "DSA", "--pem", *outputs(tmp_path)], tmp_path, stdin=b"piped-pass\n")
    assert result.returncode == 0, result.stderr
    assert b"Private key written to" in result.stdout
    read_pair(tmp_path, b"piped-pass")
    assert (tmp_path / "pub.pem").is_file()


def test_subprocess_help(tmp_path: Path) -> None:
    result = run_module(["--help"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(b"usage: hdl-keygen")


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["-alg", "ECDSA", "a", "b"], 2, b"unsupported algorithm 'ECDSA'"),
        ([], 2, b"the following arguments are required"),
        (["--no-encrypt", "/nonexistent-dir/priv.bin", "pub.bin"], 1, b"does not exist"),
        (["--passphrase-env", "HDL_UNSET_VAR", "a", "b"], 1, b"HDL_UNSET_VAR is not set"),
    ],
)
def test_subprocess_failures(tmp_path: Path, args: list[str], status: int, message: bytes) -> None:
    result = run_module(args, tmp_path)
    assert result.returncode == status
    assert message in result.stderr
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------
# Interop with the real Java tools


def java_tool(name: str) -> str:
    tool = HANDLE_JAVA / "bin" / name
    if not tool.is_file():
        pytest.skip(f"Java Handle.Net tools not available at {HANDLE_JAVA}")
    if shutil.which("java") is None:
        pytest.skip("java is not installed")
    return str(tool)


def java_resaves_plain(path: Path, passphrase: bytes | None) -> bytes:
    """Java hdl-keyutil opens the key file (passphrase on stdin) and saves it unencrypted (menu item 2)."""
    answers = (passphrase + b"\n" if passphrase is not None else b"") + b"2\n3\n"
    result = subprocess.run(
        [java_tool("hdl-keyutil"), str(path)], input=answers, capture_output=True, timeout=60, check=False
    )
    assert b"Unable to read private key" not in result.stderr, result.stderr
    assert b"Private key saved to file" in result.stdout, result.stdout
    return path.read_bytes()


def java_public_key_pem(path: Path, out: Path) -> bytes:
    """Java hdl-convert-key reads a pubkey.bin and writes it as SubjectPublicKeyInfo PEM."""
    result = subprocess.run(
        [java_tool("hdl-convert-key"), str(path), "-o", str(out)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def spki_der(pub: keys.PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.interop
@pytest.mark.parametrize(
    ("alg", "passphrase"), [("RSA", None), ("RSA", NON_ASCII_PASS), ("DSA", b"dsa-pass")]
)
def test_java_accepts_our_key_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str, passphrase: bytes | None
) -> None:
    java_tool("hdl-keyutil")
    source = ["--no-encrypt"]
    if passphrase is not None:
        (tmp_path / "pass.txt").write_bytes(passphrase + b"\n")
        source = ["--passphrase-file", str(tmp_path / "pass.txt")]
    run_main(["-alg", alg, "--pem", *source, *outputs(tmp_path)], capsys)
    priv, pub = read_pair(tmp_path, passphrase)
    # Java decrypts and decodes our private key file: its plain re-save is our plain encoding.
    copy = tmp_path / "java-copy.bin"
    shutil.copyfile(tmp_path / "priv.bin", copy)
    assert java_resaves_plain(copy, passphrase) == keys.write_private_key_file(priv, None)
    # Java decodes our public key file to the same key as our PEM twin.
    java_pem = java_public_key_pem(tmp_path / "pub.bin", tmp_path / "java-pub.pem")
    assert spki_der(serialization.load_pem_public_key(java_pem)) == spki_der(pub)  # type: ignore[arg-type]
    assert spki_der(keys.public_key_from_pem((tmp_path / "pub.pem").read_bytes())) == spki_der(pub)


def run_java_keygen(args: list[str], passphrase: bytes | None, timeout: float = 60) -> None:
    """Drive the interactive Java hdl-keygen through a pipe.

    Java reads the y/n answer through a BufferedReader that would swallow everything already in the
    pipe, so the passphrase lines are only written once the passphrase prompt has appeared.
    """
    proc = subprocess.Popen(
        [java_tool("hdl-keygen"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"n\n" if passphrase is None else b"y\n")
        proc.stdin.flush()
        if passphrase is not None:
            seen = b""
            deadline = time.monotonic() + timeout
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                while b"passphrase:" not in seen:
                    assert time.monotonic() < deadline, f"no passphrase prompt from Java: {seen!r}"
                    if selector.select(timeout=1):
                        chunk = os.read(proc.stdout.fileno(), 4096)
                        assert chunk, f"Java hdl-keygen ended before asking: {seen!r}"
                        seen += chunk
            proc.stdin.write(passphrase + b"\n" + passphrase + b"\n")
        _, err = proc.communicate(timeout=timeout)  # flushes and closes stdin
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err


@pytest.mark.interop
@pytest.mark.parametrize(
    ("args", "passphrase"),
    [(["-keysize", "1024"], None), (["-keysize", "1024"], NON_ASCII_PASS), (["-alg", "DSA"], b"java-pass")],
)
def test_java_keygen_files_read_with_our_code(
    tmp_path: Path, args: list[str], passphrase: bytes | None
) -> None:
    run_java_keygen([*args, *outputs(tmp_path)], passphrase)
    data = (tmp_path / "priv.bin").read_bytes()
    expected_type = KeyEncryption.NONE if passphrase is None else KeyEncryption.PBKDF2_AES_CBC
    assert keys.key_file_encryption(data) == expected_type
    priv, _ = read_pair(tmp_path, passphrase)
    # Our encoding of Java's key is byte-exact what Java wrote (decrypted independently of keys.py).
    if passphrase is None:
        assert keys.write_private_key_file(priv, None) == data
    else:
        r = Reader(data, 4)
        salt, iterations, bits, iv, ciphertext = (
            r.get_byte_array(),
            r.get_int4(),
            r.get_int4(),
            r.get_byte_array(),
            r.get_byte_array(),
        )
        aes_key = hashlib.pbkdf2_hmac(
            "sha1", passphrase.decode("latin-1").encode(), salt, iterations, bits // 8
        )
        decryptor = Cipher(AES(aes_key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        assert padded[: -padded[-1]] == keys.encode_private_key(priv)

"""hdl-genericbatch as a subprocess against a real hdlserver process: secret-key and public-key identities,
failures in the middle of a batch, bad credentials, files written by pyhandle, HOME/UNHOME and every way
of finding the server. Each test checks the store afterwards with a resolver."""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import ServerProcess, free_port, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import decode_site
from hdlserver.wire.valuedata import AdminRecord, decode_admin, decode_vlist
from hdlserver.wire.values import HandleValue, ValueReference

ADMIN = "100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/TEST"
SECKEY_AUTH = "AUTHENTICATE SECKEY:300:0.NA/TEST\nsecret\n"
TIMEOUT = 60


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, http_port: int) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("genericbatch") / "srv"
    port = setup_server_dir(directory, extra=("--http-port", str(http_port)))
    proc = start_server(directory, port)
    yield proc
    proc.stop()


def run_batch(batch: Path, *args: str | Path, input_text: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hdlserver.cli.genericbatch", str(batch), *map(str, args)],
                          capture_output=True, text=True, timeout=TIMEOUT, input=input_text)


def write(tmp_path: Path, text: str, name: str = "batch.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def target(server: ServerProcess) -> tuple[str, str]:
    return ("--server", f"127.0.0.1:{server.port}")


def values(server: ServerProcess, handle: str) -> dict[int, HandleValue]:
    result = Resolver([server.address], udp=False).resolve(handle)
    return {v.index: v for v in result.values}


def absent(server: ServerProcess, handle: str) -> bool:
    try:
        values(server, handle)
    except HandleResponseError as exc:
        return exc.response_code == ResponseCode.HANDLE_NOT_FOUND
    return False


def log_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("==>")]


def test_seckey_batch_with_a_failure_in_the_middle(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nCREATE TEST/gb-1\n{ADMIN}\n1 URL 86400 1110 UTF8 http://e.org/1\n\n"
                            f"CREATE TEST/gb-1\n{ADMIN}\n\n"
                            "ADD TEST/gb-1\n2 EMAIL 86400 1110 UTF8 a@e.org\n3 DESC 86400 1110 UTF8 gone soon\n\n"
                            "MODIFY TEST/gb-1\n1 URL 3600 1110 UTF8 http://e.org/1b\n\nREMOVE 3:TEST/gb-1\n\n"
                            "DELETE TEST/gb-missing\n\nADD TEST/gb-1\n4 DESC 86400 1110 UTF8 after the failures\n\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 1, proc.stderr
    assert log_lines(proc.stdout) == [
        "==>SUCCESS[4]: create:TEST/gb-1",
        "==>FAILURE[8]: create:TEST/gb-1: Error(101): HANDLE_ALREADY_EXISTS",
        "==>SUCCESS[11]: add values:TEST/gb-1",
        "==>SUCCESS[15]: modify values:TEST/gb-1",
        "==>SUCCESS[18]: remove values:TEST/gb-1",
        "==>FAILURE[20]: delete:TEST/gb-missing: Error(100): HANDLE_NOT_FOUND",
        "==>SUCCESS[22]: add values:TEST/gb-1",
    ]
    assert "Successes/Total Entries: 5/7" in proc.stdout
    assert "Batch File Lines: 24" in proc.stdout
    assert "2 failed and 0 invalid of 7 operations" in proc.stderr
    stored = values(server, "TEST/gb-1")
    assert sorted(stored) == [1, 2, 4, 100]
    assert (stored[1].data, stored[1].ttl) == (b"http://e.org/1b", 3600)
    assert decode_admin(stored[100].data) == AdminRecord(0x0FFF, b"0.NA/TEST", 300)


def test_log_file_in_the_java_format(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nCREATE TEST/gb-log\n{ADMIN}\n\nDELETE TEST/gb-log\n")
    log = tmp_path / "batch.log"
    proc = run_batch(batch, log, *target(server))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "\r" not in proc.stderr  # no progress line when stderr is not a terminal
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("Start Time: ")
    assert lines[1:3] == ["==>SUCCESS[4]: create:TEST/gb-log", "==>SUCCESS[7]: delete:TEST/gb-log"]
    assert lines[3:5] == ["Successes/Total Entries: 2/2", "Batch File Lines: 7"]
    assert lines[5].startswith("Finish Time: ")
    assert lines[6].startswith("This batch took ") and lines[6].endswith(" operations/second")


def test_verbose_prints_outcomes_and_latency(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nCREATE TEST/gb-verbose\n{ADMIN}\n")
    proc = run_batch(batch, "-verbose", *target(server))
    assert proc.returncode == 0, proc.stderr
    assert "==>SUCCESS[4]: create:TEST/gb-verbose (" in proc.stderr
    assert "operation latency: p50 " in proc.stderr


def test_pubkey_batch_with_every_value_form(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    site_json = server.directory / "siteinfo.json"
    batch = write(tmp_path, f"AUTHENTICATE PUBKEY:301:0.NA/TEST\n{server.directory / 'admpriv.bin'}\n\n"
                            f"CREATE TEST/gb-forms\n{ADMIN}\n1 URL 86400 1111 UTF8 http://e.org/forms\n"
                            "2 HS_VLIST 86400 1110 LIST 300:0.NA/TEST;301:0.NA/TEST\n"
                            f"3 BLOB 86400 1110 FILE {tmp_path / 'blob.bin'}\n"
                            f"4 HS_SITE 86400 1110 FILE {site_json}\n\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stored = values(server, "TEST/gb-forms")
    assert decode_vlist(stored[2].data) == (ValueReference(b"0.NA/TEST", 300), ValueReference(b"0.NA/TEST", 301))
    assert stored[1].permissions == 0x0F and stored[3].data == b"\x00\x01\x02binary"
    assert decode_site(stored[4].data).servers[0].interfaces  # the JSON file was stored as a binary record


def test_encrypted_key_with_passphrase_and_with_a_wrong_one(server: ServerProcess, tmp_path: Path) -> None:
    private = keys.load_private_key(server.directory / "admpriv.bin")
    encrypted = tmp_path / "enc.bin"
    keys.save_private_key(encrypted, private, b"pass phrase")
    good = write(tmp_path, f"AUTHENTICATE PUBKEY:301:0.NA/TEST\n{encrypted}|pass phrase\n\n"
                           f"CREATE TEST/gb-enc\n{ADMIN}\n", "good.txt")
    assert run_batch(good, *target(server)).returncode == 0
    bad = write(tmp_path, f"AUTHENTICATE PUBKEY:301:0.NA/TEST\n{encrypted}|wrong\n\n"
                          f"CREATE TEST/gb-enc-2\n{ADMIN}\n", "bad.txt")
    proc = run_batch(bad, *target(server))
    assert proc.returncode == 1
    assert log_lines(proc.stdout) == [
        f"==>INVALID[1]: error in authentication: {encrypted}: wrong passphrase or corrupt key file",
        "==>FAILURE[4]: create:TEST/gb-enc-2: not sent: AUTHENTICATE at line 1 failed"]
    assert f"bad.txt:1: error in authentication: {encrypted}: wrong passphrase" in proc.stderr
    assert absent(server, "TEST/gb-enc-2")


def test_missing_key_file(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"AUTHENTICATE PUBKEY:301:0.NA/TEST\n{tmp_path / 'nokey.bin'}\n\n"
                            f"CREATE TEST/gb-nokey\n{ADMIN}\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 1
    assert "cannot read key file: No such file or directory" in log_lines(proc.stdout)[0]
    assert absent(server, "TEST/gb-nokey")


def test_wrong_secret_fails_every_operation_and_stores_nothing(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"AUTHENTICATE SECKEY:300:0.NA/TEST\nnot-the-secret\n\nCREATE TEST/gb-wrong\n{ADMIN}\n\n"
                            "DELETE TEST/hello\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 1
    lines = log_lines(proc.stdout)
    assert len(lines) == 2 and all("==>FAILURE[" in line and "Error(402)" not in line for line in lines)
    assert "AUTHENTICATION_FAILED" in lines[0] or "INVALID_ADMIN" in lines[0], lines
    assert absent(server, "TEST/gb-wrong")
    assert values(server, "TEST/hello")  # the delete did not happen either


def test_unreachable_server(tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nCREATE TEST/gb-x\n{ADMIN}\n\nDELETE TEST/gb-x\n")
    proc = run_batch(batch, "--server", f"127.0.0.1:{free_port()}")
    assert proc.returncode == 1
    lines = log_lines(proc.stdout)
    assert len(lines) == 2
    assert all("cannot reach the server: Connection refused" in line for line in lines)
    assert "Traceback" not in proc.stderr


def test_malformed_file_sends_nothing_half_parsed(server: ServerProcess, tmp_path: Path) -> None:
    batch = tmp_path / "bad.txt"
    batch.write_bytes((f"{SECKEY_AUTH}\nCREATE TEST/gb-bad\n{ADMIN}\n1 URL 86400 1110 UTF8 caf").encode()
                      + b"\xe9\n\nFROBNICATE TEST/x\n\nCREATE TEST/gb-good\n" + ADMIN.encode() + b"\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 1
    assert f"{batch}:6: CREATE TEST/gb-bad (line 4): not valid UTF-8" in proc.stderr
    assert f"{batch}:8: unknown operation 'FROBNICATE'" in proc.stderr
    assert log_lines(proc.stdout)[-1] == "==>SUCCESS[10]: create:TEST/gb-good"
    assert absent(server, "TEST/gb-bad")


def test_batch_file_that_cannot_be_read(tmp_path: Path) -> None:
    proc = run_batch(tmp_path / "none.txt", "--server", "127.0.0.1:1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: cannot read batch file {tmp_path / 'none.txt'}: No such file or directory"


def test_no_server_given(tmp_path: Path) -> None:
    batch = write(tmp_path, "DELETE TEST/x\n")
    proc = subprocess.run([sys.executable, "-m", "hdlserver.cli.genericbatch", str(batch)], capture_output=True,
                          text=True, timeout=TIMEOUT, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "no server given: use --server HOST:PORT" in proc.stderr


def test_pyhandle_batch_file_runs_unmodified(server: ServerProcess, tmp_path: Path) -> None:
    pyhandle = pytest.importorskip("pyhandle.handleclient")
    path = tmp_path / "pyhandle_batch"
    client = pyhandle.PyHandleClient("batch", batch_file_path=str(path))
    client.create_batch_file()
    client.authenticate_seckey("300:0.NA/TEST", "secret")
    client.register_handle_batch("TEST/pyh-1", "http://example.org/pyh1", 300, "0.NA/TEST", "110011111110")
    client.add_handle_value("TEST/pyh-1", index=2, type="EMAIL", data="a@example.org")
    client.add_handle_value("TEST/pyh-1", index=3, type="DESC", data="removed again")
    client.modify_handle_value("TEST/pyh-1", index=1, type="URL", data="http://example.org/pyh1-mod")
    client.delete_handle_value("TEST/pyh-1", [3])
    client.register_handle_batch("TEST/pyh-2", "http://example.org/pyh2", 300, "0.NA/TEST", "110011111110")
    client.delete_handle("TEST/pyh-2")
    text = path.read_text()
    assert text.startswith("\nAUTHENTICATE SECKEY:300:0.NA/TEST\nsecret\nCREATE TEST/pyh-1\n")  # pyhandle's layout
    proc = run_batch(path, *target(server))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(log_lines(proc.stdout)) == 9
    stored = values(server, "TEST/pyh-1")
    assert sorted(stored) == [1, 2, 100]
    assert stored[1].data == b"http://example.org/pyh1-mod" and stored[2].data == b"a@example.org"
    assert decode_admin(stored[100].data).permissions == 0x07F3
    assert absent(server, "TEST/pyh-2")


def test_home_and_unhome(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nHOME 127.0.0.1:{server.port}:tcp\n0.NA/GBHOME\n0.NA/GBHOME2\n\n"
                            f"UNHOME 127.0.0.1:{server.port}:udp\n0.NA/GBHOME2\n\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert log_lines(proc.stdout) == ["==>SUCCESS[5]: home/unhome:0.NA/GBHOME",
                                      "==>SUCCESS[6]: home/unhome:0.NA/GBHOME2",
                                      "==>SUCCESS[9]: home/unhome:0.NA/GBHOME2"]
    with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")) as admin:
        homed = admin.list_homed_prefixes()
    assert b"0.NA/GBHOME" in homed and b"0.NA/GBHOME2" not in homed


def test_home_with_site_information_over_http(server: ServerProcess, http_port: int, tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nHOME 127.0.0.1:{http_port}:http\n0.NA/GBHTTP\n\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert log_lines(proc.stdout) == ["==>SUCCESS[5]: home/unhome:0.NA/GBHTTP"]


def test_home_on_a_server_that_does_not_answer(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nHOME 127.0.0.1:{free_port()}:tcp\n0.NA/GBNOPE\n\n")
    proc = run_batch(batch, *target(server))
    assert proc.returncode == 1
    assert "error in home: cannot get the site information of 127.0.0.1" in log_lines(proc.stdout)[0]


def test_siteinfo_and_java_config_dir_routing(server: ServerProcess, tmp_path: Path) -> None:
    batch = write(tmp_path, f"{SECKEY_AUTH}\nCREATE TEST/gb-site\n{ADMIN}\n\nDELETE TEST/gb-site\n")
    assert run_batch(batch, "--siteinfo", server.directory / "siteinfo.json").returncode == 0
    config = tmp_path / "client"
    config.mkdir()
    (config / "resolver_site").write_bytes((server.directory / "siteinfo.json").read_bytes())
    (config / "local_nas").write_text("*\n")
    assert run_batch(batch, "--config-dir", config).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "JAVA_OPTS": f"-Xmx64m -Dnet.handle.configDir={config}"}
    proc = subprocess.run([sys.executable, "-m", "hdlserver.cli.genericbatch", str(batch)], capture_output=True,
                          text=True, timeout=TIMEOUT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_resolver_routing_through_the_prefix_hs_site(server: ServerProcess, tmp_path: Path) -> None:
    """--resolver finds TEST's site in the HS_SITE value of 0.NA/TEST, added here from siteinfo.json."""
    site_json = server.directory / "siteinfo.json"
    add_site = write(tmp_path, f"{SECKEY_AUTH}\nADD 0.NA/TEST\n7 HS_SITE 86400 1110 FILE {site_json}\n", "site.txt")
    assert run_batch(add_site, *target(server)).returncode == 0
    batch = write(tmp_path, f"{SECKEY_AUTH}\nCREATE TEST/gb-routed\n{ADMIN}\n")
    proc = run_batch(batch, "--resolver", f"127.0.0.1:{server.port}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert values(server, "TEST/gb-routed")
    other = write(tmp_path, f"{SECKEY_AUTH}\nCREATE NOSITE/x\n{ADMIN}\n", "other.txt")
    proc = run_batch(other, "--resolver", f"127.0.0.1:{server.port}")
    assert proc.returncode == 1
    assert "cannot find the site of 0.NA/NOSITE: Error(100): HANDLE_NOT_FOUND" in log_lines(proc.stdout)[0]


def access_log_codes(server: ServerProcess, handle_part: str, expected: int) -> list[tuple[str, str]]:
    """(opcode, response code) of the access log lines naming ``handle_part`` or a session op, once at least
    ``expected`` lines mention ``handle_part`` (the log is written in the background; bounded wait)."""
    path = server.directory / "logs" / "access.log"
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        mine = [line for line in lines if handle_part in line]
        if len(mine) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    start = next((i for i, line in enumerate(lines) if handle_part in line), len(lines))
    if start > 0 and lines[start - 1].split('"')[2].split()[0] == "400":
        start -= 1  # the session setup just before the batch's first request
    picked = [line.split('"')[2].split() for line in lines[start:]]
    return [(p[0], p[1]) for p in picked if p[0] in ("400", "401") or any(handle_part in w for w in p)]


def test_one_session_for_the_whole_batch(server: ServerProcess, tmp_path: Path) -> None:
    ops = "".join(f"CREATE TEST/gb-sess-{i}\n{ADMIN}\n\n" for i in range(3))
    assert run_batch(write(tmp_path, f"{SECKEY_AUTH}\n{ops}"), *target(server)).returncode == 0
    codes = access_log_codes(server, "gb-sess-", 4)
    # one SESSION_SETUP, one challenge (402) for the first request, then MAC-authenticated requests only
    assert codes == [("400", "1"), ("100", "402"), ("100", "1"), ("100", "1"), ("100", "1"), ("401", "1")], codes


def test_usesession_0_answers_a_challenge_per_request(server: ServerProcess, tmp_path: Path) -> None:
    ops = "".join(f"CREATE TEST/gb-nosess-{i}\n{ADMIN}\n\n" for i in range(2))
    batch = write(tmp_path, f"SESSIONSETUP\nUSESESSION:0\n\n{SECKEY_AUTH}\n{ops}")
    assert run_batch(batch, *target(server)).returncode == 0
    codes = access_log_codes(server, "gb-nosess-", 4)
    assert codes == [("100", "402"), ("100", "1"), ("100", "402"), ("100", "1")], codes


def test_progress_line_on_a_terminal(server: ServerProcess, tmp_path: Path) -> None:
    ops = "".join(f"DELETE TEST/gb-progress-{i}\n" for i in range(3))
    batch = write(tmp_path, f"{SECKEY_AUTH}\n{ops}")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "hdlserver.cli.genericbatch", str(batch), *target(server)],
                              stdout=subprocess.PIPE, stderr=terminal, text=True, timeout=TIMEOUT)
        os.close(terminal)
        terminal = -1
        seen = b""
        with contextlib.suppress(OSError):  # EIO once everything written to the terminal has been read
            while chunk := os.read(controller, 4096):
                seen += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert proc.returncode == 1  # the handles do not exist
    assert b"\r[3/3] 100% " in seen and b"ops/s" in seen
    assert "\r" not in proc.stdout  # the log itself never carries the progress line

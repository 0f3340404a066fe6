"""hdl-create, hdl-delete, hdl-list, hdl-home-na, hdl-getsiteinfo, hdl-convert-siteinfo and hdl-trace
against a real hdlserver process: what they print, what they store, and their one-line errors (unreachable
server, bad credentials, bad key passphrase) with non-zero exit codes.

The tools run in this process (their ``main`` with redirected standard streams) to keep the suite fast;
one test starts every installed console script to check that it exists and answers --help.
"""

from __future__ import annotations

import importlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import ServerProcess, free_port, setup_server_dir, start_server

from hdlserver.auth import keys
from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.config.siteinfo import load_site_info
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import decode_site, encode_site
from hdlserver.wire.valuedata import AdminRecord, decode_admin

TOOLS = ["create", "delete", "list", "home_na", "getsiteinfo", "convert_siteinfo", "trace", "genericbatch"]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout_bytes: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8")


@pytest.fixture(scope="module")
def http_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, http_port: int) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("tools") / "srv"
    port = setup_server_dir(directory, extra=("--http-port", str(http_port)))
    proc = start_server(directory, port)
    yield proc
    proc.stop()


def tool(name: str, *args: str | Path, input_text: str = "") -> Run:
    """``hdl-<name> args`` with ``input_text`` on standard input (never a terminal, so no prompt waits)."""
    main = importlib.import_module(f"hdlserver.cli.{name}").main
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(input_text.encode("utf-8")), encoding="utf-8")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdin = saved_stdin
    out.flush()
    return Run(code, out.buffer.getvalue(), err.getvalue())  # type: ignore[attr-defined]


def identity(server: ServerProcess, key: Path | None = None) -> list[str]:
    return ["0.NA/TEST", "301", str(key or server.directory / "admpriv.bin")]


def at(server: ServerProcess) -> list[str]:
    return ["--server", f"127.0.0.1:{server.port}"]


def exists(server: ServerProcess, handle: str) -> bool:
    try:
        Resolver([server.address], udp=False).resolve(handle)
    except HandleResponseError as exc:
        assert exc.response_code == ResponseCode.HANDLE_NOT_FOUND
        return False
    return True


@pytest.fixture(scope="module")
def encrypted_key(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "enc.bin"
    keys.save_private_key(path, keys.load_private_key(server.directory / "admpriv.bin"), b"sesame")
    return path


def test_every_console_script_is_installed_and_has_help() -> None:
    scripts = [Path(sys.executable).with_name("hdl-" + name.replace("_", "-")) for name in TOOLS]
    missing = [str(s) for s in scripts if not s.exists()]
    if missing and shutil.which("hdl-create") is None:
        pytest.skip(f"console scripts not installed ({', '.join(missing)}): pip install -e .")
    procs = [subprocess.Popen([str(s), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in scripts]
    for script, proc in zip(scripts, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.startswith(f"usage: {script.name}"), out


def test_create_list_and_delete(server: ServerProcess, tmp_path: Path) -> None:
    proc = tool("create", *identity(server), "TEST/cli-1", *at(server))
    assert (proc.returncode, proc.stdout) == (0, "created TEST/cli-1\n"), proc.stderr
    stored = Resolver([server.address]).resolve("TEST/cli-1").values
    assert [(v.index, decode_admin(v.data)) for v in stored] == [(100, AdminRecord(0x0FFF, b"0.NA/TEST", 301))]
    assert tool("create", *identity(server), "TEST/cli-2", "--siteinfo", server.directory).returncode == 0

    listed = tool("list", *identity(server), "TEST", *at(server))
    assert listed.returncode == 0, listed.stderr
    assert {"TEST/CLI-1", "TEST/CLI-2"} <= set(listed.stdout.split())
    shown = tool("list", "-s", *identity(server), "0.NA/TEST", *at(server))
    assert "admin 301:0.NA/TEST permissions=111111111111" in shown.stdout

    todo = tmp_path / "todelete.txt"
    todo.write_text("TEST/cli-1\n\nTEST/cli-never\nTEST/cli-2\n")
    proc = tool("delete", *identity(server), todo, *at(server))
    assert proc.returncode == 1  # one of the three did not exist
    assert proc.stdout.splitlines() == ["deleted TEST/cli-1",
                                        "error deleting 'TEST/cli-never': Error(100): HANDLE_NOT_FOUND",
                                        "deleted TEST/cli-2"]
    assert not exists(server, "TEST/cli-1") and not exists(server, "TEST/cli-2")


def test_delete_reads_standard_input(server: ServerProcess) -> None:
    assert tool("create", *identity(server), "TEST/cli-stdin", *at(server)).returncode == 0
    proc = tool("delete", *identity(server), "-", *at(server), input_text="TEST/cli-stdin\n")
    assert (proc.returncode, proc.stdout) == (0, "deleted TEST/cli-stdin\n")


def test_create_existing_handle_fails(server: ServerProcess) -> None:
    assert tool("create", *identity(server), "TEST/cli-twice", *at(server)).returncode == 0
    proc = tool("create", *identity(server), "TEST/cli-twice", *at(server))
    assert proc.returncode == 1
    assert proc.stderr == "error: cannot create TEST/cli-twice: Error(101): HANDLE_ALREADY_EXISTS\n"


def test_encrypted_key_passphrase_from_stdin_and_from_a_file(server: ServerProcess, encrypted_key: Path,
                                                            tmp_path: Path) -> None:
    proc = tool("create", *identity(server, encrypted_key), "TEST/cli-enc", *at(server), input_text="sesame\n")
    assert proc.returncode == 0, proc.stderr
    phrase = tmp_path / "phrase"
    phrase.write_text("sesame\n")
    proc = tool("delete", *identity(server, encrypted_key), "-", "--passphrase-file", phrase, *at(server),
                input_text="TEST/cli-enc\n")
    assert (proc.returncode, proc.stdout) == (0, "deleted TEST/cli-enc\n"), proc.stderr


@pytest.mark.parametrize("name", ["create", "list", "home_na"])
def test_bad_passphrase_is_one_readable_line(server: ServerProcess, encrypted_key: Path, name: str) -> None:
    extra = {"create": ["TEST/cli-bad", *at(server)], "list": ["TEST", *at(server)],
             "home_na": ["127.0.0.1", str(server.port), "0.NA/X"]}[name]
    proc = tool(name, *identity(server, encrypted_key), *extra, input_text="wrong\n")
    assert proc.returncode == 2
    assert proc.stderr == f"error: {encrypted_key}: wrong passphrase or corrupt key file\n"


def test_missing_key_file(server: ServerProcess, tmp_path: Path) -> None:
    proc = tool("create", *identity(server, tmp_path / "none.bin"), "TEST/cli-nokey", *at(server))
    assert proc.returncode == 2
    assert proc.stderr == f"error: {tmp_path / 'none.bin'}: cannot read key file: No such file or directory\n"


def test_bad_credentials(server: ServerProcess, tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    keys.save_private_key(other, keys.generate_key_pair("RSA", 1024), None)
    proc = tool("create", *identity(server, other), "TEST/cli-intruder", *at(server))
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cannot create TEST/cli-intruder: Error(")
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not exists(server, "TEST/cli-intruder")
    listed = tool("list", *identity(server, other), "TEST", *at(server))
    assert listed.returncode == 1 and listed.stderr.startswith(f"error: listing on 127.0.0.1:{server.port}: Error(")


@pytest.mark.parametrize("args", [["create", "TEST/cli-x"], ["list", "TEST"], ["delete", "-"]])
def test_unreachable_server(server: ServerProcess, args: list[str]) -> None:
    name, last = args
    proc = tool(name, *identity(server), last, "--server", f"127.0.0.1:{free_port()}", input_text="TEST/cli-x\n")
    assert proc.returncode == 1
    assert "cannot reach the server: Connection refused" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_home_na_and_unhome(server: ServerProcess) -> None:
    proc = tool("home_na", *identity(server), "127.0.0.1", str(server.port), "0.NA/CLIHOME", "CLIHOME2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ["homed 0.NA/CLIHOME", "homed 0.NA/CLIHOME2"]
    proc = tool("home_na", *identity(server), "127.0.0.1", str(server.port), "0.NA/CLIHOME2", "--unhome")
    assert proc.stdout == "unhomed 0.NA/CLIHOME2\n"
    with AdminClient(server.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")) as admin:
        homed = admin.list_homed_prefixes()
    assert b"0.NA/CLIHOME" in homed and b"0.NA/CLIHOME2" not in homed


def test_home_na_unreachable_server(server: ServerProcess) -> None:
    proc = tool("home_na", *identity(server), "127.0.0.1", str(free_port()), "0.NA/X")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot get the site information of 127.0.0.1:")


def test_getsiteinfo_and_convert_siteinfo_both_ways(server: ServerProcess, tmp_path: Path) -> None:
    binary = tmp_path / "site.bin"
    proc = tool("getsiteinfo", "127.0.0.1", str(server.port), binary)
    assert proc.returncode == 0, proc.stderr
    assert binary.read_bytes() == encode_site(load_site_info(server.directory))
    as_json = tmp_path / "site.json"
    assert tool("convert_siteinfo", binary, "-o", as_json).returncode == 0
    assert json.loads(as_json.read_text())["servers"][0]["address"] == "127.0.0.1"
    back = tool("convert_siteinfo", as_json, "-o", tmp_path / "back.bin")
    assert back.returncode == 0 and (tmp_path / "back.bin").read_bytes() == binary.read_bytes()
    piped = tool("convert_siteinfo", input_text=as_json.read_text())  # standard input to standard output
    assert piped.returncode == 0 and piped.stdout_bytes == binary.read_bytes()


def test_convert_siteinfo_errors(tmp_path: Path) -> None:
    proc = tool("convert_siteinfo", tmp_path / "none.bin")
    assert (proc.returncode, proc.stderr) == (1, f"error: cannot read {tmp_path / 'none.bin'}: No such file or "
                                                 "directory\n")
    bad = tmp_path / "bad.json"
    bad.write_text("{\"servers\": 3}")
    proc = tool("convert_siteinfo", bad)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {bad}: invalid site information")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01\x02")
    proc = tool("convert_siteinfo", garbage)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {garbage}: not a valid binary site record")


def test_getsiteinfo_falls_back_to_the_http_tunnel(server: ServerProcess, http_port: int, tmp_path: Path) -> None:
    binary = tmp_path / "site.bin"
    proc = tool("getsiteinfo", "127.0.0.1", str(http_port), binary)
    assert proc.returncode == 0, proc.stderr
    assert binary.read_bytes() == encode_site(load_site_info(server.directory))


def test_getsiteinfo_unreachable(tmp_path: Path) -> None:
    proc = tool("getsiteinfo", "127.0.0.1", str(free_port()), tmp_path / "x.bin")
    assert proc.returncode == 1 and "Connection refused" in proc.stderr
    assert not (tmp_path / "x.bin").exists()


def test_trace_shows_site_requests_and_answer(server: ServerProcess) -> None:
    proc = tool("trace", "TEST/hello", "--siteinfo", server.directory / "siteinfo.json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "resolving TEST/hello"
    assert lines[1].startswith("  site: primary site, serial 1, servers 1@127.0.0.1")
    assert lines[2].startswith("  sending UDP RESOLUTION request (id ") and f"127.0.0.1:{server.port}" in lines[2]
    assert "response code 1 (SUCCESS)" in lines[3]
    assert "Got Response: TEST/hello (" in proc.stdout and "https://www.handle.net/" in proc.stdout


def test_trace_of_a_missing_handle_and_of_an_unreachable_server(server: ServerProcess) -> None:
    proc = tool("trace", "TEST/cli-none", *at(server))
    assert proc.returncode == 1 and "Got Error: Error(100): HANDLE_NOT_FOUND" in proc.stdout
    config_less = tool("trace", "TEST/x", "--server", f"127.0.0.1:{free_port()}")
    assert config_less.returncode == 2
    assert "no answer over TCP" in config_less.stdout and config_less.stderr == "error: no server answered\n"


def test_site_record_decodes(server: ServerProcess, tmp_path: Path) -> None:
    binary = tmp_path / "s.bin"
    tool("getsiteinfo", "127.0.0.1", str(server.port), binary)
    assert decode_site(binary.read_bytes()).primary

"""The real Java admin tools against hdlserver through their Diffie-Hellman sessions (auth.md 9.1).

GenericBatch, hdl-create and hdl-home-na always start with SESSION_SETUP (op 400) and never fall back; here
they run CREATE/ADD/MODIFY/REMOVE/DELETE/HOME/UNHOME with a secret key and a public key identity, also in an
encrypted session (batch ``SESSIONSETUP`` with ``OPTIONS:11``), and the store is checked afterwards with
the project's client. A wrong secret or key must make Java report failure with nothing changed.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from java import JavaRun, run_java
from servers import ServerProcess

from hdlserver.auth import keys
from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.wire.bodies import ResolutionRequest, ResolutionResponse
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode

pytestmark = pytest.mark.interop

ADMIN = SecretKeyIdentity(b"0.NA/TEST", 300, b"secret")


def fresh(name: str) -> str:
    return f"TEST/java-{name}-{uuid.uuid4().hex[:10]}"


def values_of(server: ServerProcess, handle: str) -> dict[int, tuple[bytes, bytes]] | None:
    """Every value of ``handle`` (non-public ones too, read as the prefix admin in a session), or None."""
    request = ResolutionRequest(handle.encode(), (), ())
    try:
        with AdminClient(server.address, ADMIN, session=True) as admin:
            body = admin.request(OpCode.RESOLUTION, request, OpFlag.REC | OpFlag.CA).messages[0].body
    except HandleResponseError as exc:
        assert exc.response_code == ResponseCode.HANDLE_NOT_FOUND, exc
        return None
    assert isinstance(body, ResolutionResponse)
    return {v.index: (v.type, v.data) for v in body.values}


def public_values(server: ServerProcess, handle: str) -> dict[int, bytes] | None:
    try:
        return {v.index: v.data for v in Resolver([server.address], udp=False).resolve(handle).values}
    except HandleResponseError as exc:
        assert exc.response_code == ResponseCode.HANDLE_NOT_FOUND, exc
        return None


def run_batch(tmp_path: Path, config_dir: Path, text: str) -> tuple[JavaRun, list[str]]:
    """hdl-genericbatch on ``text``; returns the run and the outcome lines of its log without their line
    numbers (GenericBatch counts command lines only), e.g. ``==>SUCCESS: create:TEST/x``."""
    batch = tmp_path / f"batch-{uuid.uuid4().hex[:8]}.txt"
    log = batch.with_suffix(".log")
    batch.write_text(text, encoding="utf-8")
    run = run_java("hdl-genericbatch", batch, log, config_dir=config_dir)
    assert run.returncode == 0, run.describe()
    lines = [re.sub(r"\[\d+\]", "", line) for line in log.read_text(encoding="utf-8").splitlines()
             if line.startswith("==>")]
    return run, lines


def seckey_auth(secret: str = "secret") -> str:
    return f"AUTHENTICATE SECKEY:300:0.NA/TEST\n{secret}\n\n"


def pubkey_auth(key_file: Path) -> str:
    return f"AUTHENTICATE PUBKEY:301:0.NA/TEST\n{key_file}\n\n"


def admin_only_create(handle: str) -> str:
    return f"CREATE {handle}\n100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/TEST\n\n"


def edit_block(handle: str) -> str:
    return (f"CREATE {handle}\n100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/TEST\n"
            "1 URL 86400 1110 UTF8 http://example.org/original\n2 EMAIL 3600 1110 UTF8 someone@example.org\n\n"
            f"ADD {handle}\n3 DESC 86400 1110 UTF8 to be removed\n4 SECRET 86400 1100 UTF8 admin-only value\n\n"
            f"MODIFY {handle}\n1 URL 86400 1110 UTF8 http://example.org/modified\n\n"
            f"REMOVE 3:{handle}\n\n")


def assert_edited(server: ServerProcess, handle: str) -> None:
    stored = values_of(server, handle)
    assert stored is not None
    assert stored[1] == (b"URL", b"http://example.org/modified")
    assert stored[2] == (b"EMAIL", b"someone@example.org")
    assert stored[4] == (b"SECRET", b"admin-only value")
    assert 3 not in stored
    public = public_values(server, handle)
    assert public is not None and 4 not in public  # stored without public read


@pytest.mark.parametrize("identity", ["seckey", "pubkey"])
def test_genericbatch_edits_and_deletes_through_its_session(hdl_server: ServerProcess, hdl_clients: dict[str, Path],
                                                            tmp_path: Path, identity: str) -> None:
    keep, gone = fresh(f"{identity}-keep"), fresh(f"{identity}-gone")
    auth = seckey_auth() if identity == "seckey" else pubkey_auth(hdl_server.directory / "admpriv.bin")
    text = auth + edit_block(keep) + admin_only_create(gone) + f"DELETE {gone}\n\n"
    run, lines = run_batch(tmp_path, hdl_clients["udp"], text)
    assert lines == [f"==>SUCCESS: {op}:{h}" for op, h in [
        ("create", keep), ("add values", keep), ("modify values", keep), ("remove values", keep),
        ("create", gone), ("delete", gone)]], run.describe()
    assert_edited(hdl_server, keep)
    assert values_of(hdl_server, gone) is None


def test_genericbatch_encrypted_session(hdl_server: ServerProcess, hdl_clients: dict[str, Path],
                                       tmp_path: Path) -> None:
    handle = fresh("encrypted")
    text = seckey_auth() + "SESSIONSETUP\nUSESESSION:1\nOPTIONS:11\n\n" + edit_block(handle)
    run, lines = run_batch(tmp_path, hdl_clients["udp"], text)
    assert lines == [f"==>SUCCESS: {op}:{handle}" for op in ("create", "add values", "modify values",
                                                              "remove values")], run.describe()
    assert_edited(hdl_server, handle)


def test_genericbatch_home_and_unhome(hdl_server: ServerProcess, hdl_clients: dict[str, Path],
                                      tmp_path: Path) -> None:
    prefix = f"0.NA/JH{uuid.uuid4().hex[:6].upper()}"
    host, port = hdl_server.address
    home = seckey_auth() + f"HOME {host}:{port}:tcp\n{prefix}\n\n"
    run, lines = run_batch(tmp_path, hdl_clients["udp"], home)
    with AdminClient(hdl_server.address, ADMIN, session=True) as admin:
        assert prefix.encode() in admin.list_homed_prefixes(), run.describe()
    assert not any("FAILURE" in line for line in lines), run.describe()
    run, lines = run_batch(tmp_path, hdl_clients["udp"], seckey_auth() + f"UNHOME {host}:{port}:tcp\n{prefix}\n\n")
    with AdminClient(hdl_server.address, ADMIN, session=True) as admin:
        assert prefix.encode() not in admin.list_homed_prefixes(), run.describe()
    assert not any("FAILURE" in line for line in lines), run.describe()


def test_genericbatch_wrong_secret_fails_and_changes_nothing(hdl_server: ServerProcess,
                                                            hdl_clients: dict[str, Path], tmp_path: Path) -> None:
    handle = fresh("wrong-secret")
    text = seckey_auth("not-the-secret") + admin_only_create(handle)
    run, lines = run_batch(tmp_path, hdl_clients["udp"], text)
    assert len(lines) == 1 and lines[0].startswith(f"==>FAILURE: create:{handle}"), run.describe()
    assert lines[0].endswith("Error(403): AUTHENTICATION FAILED"), lines
    assert values_of(hdl_server, handle) is None


def test_genericbatch_wrong_key_fails_and_changes_nothing(hdl_server: ServerProcess, hdl_clients: dict[str, Path],
                                                         tmp_path: Path) -> None:
    other = tmp_path / "other-priv.bin"
    other.write_bytes(keys.write_private_key_file(keys.generate_key_pair("RSA", 2048), None))
    handle = fresh("wrong-key")
    text = pubkey_auth(other) + admin_only_create(handle)
    run, lines = run_batch(tmp_path, hdl_clients["udp"], text)
    assert len(lines) == 1 and lines[0].startswith(f"==>FAILURE: create:{handle}"), run.describe()
    assert lines[0].endswith("Error(403): AUTHENTICATION FAILED"), lines
    assert values_of(hdl_server, handle) is None


def test_hdl_create_uses_a_session(hdl_server: ServerProcess, hdl_clients: dict[str, Path]) -> None:
    handle = fresh("hdl-create")
    run = run_java("hdl-create", "0.NA/TEST", "301", hdl_server.directory / "admpriv.bin", handle,
                   config_dir=hdl_clients["udp"])
    assert run.returncode == 0 and "Error" not in run.output, run.describe()
    assert values_of(hdl_server, handle) is not None, run.describe()


def test_hdl_home_na_uses_a_session(hdl_server: ServerProcess, hdl_clients: dict[str, Path]) -> None:
    prefix = f"0.NA/JN{uuid.uuid4().hex[:6].upper()}"
    host, port = hdl_server.address
    run = run_java("hdl-home-na", "0.NA/TEST", "301", hdl_server.directory / "admpriv.bin", host, str(port),
                   prefix, config_dir=hdl_clients["udp"])
    assert run.returncode == 0, run.describe()
    with AdminClient(hdl_server.address, ADMIN, session=True) as admin:
        assert prefix.encode() in admin.list_homed_prefixes(), run.describe()

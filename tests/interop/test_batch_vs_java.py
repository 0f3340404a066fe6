"""Our hdl-genericbatch against the real Java Handle.Net 9.2 server and against hdlserver: the same batch file
must report the same outcomes and leave the same handle records (timestamps aside) on both; and the Java
hdl-genericbatch running the same operations against hdlserver must agree too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from java import JavaServer, run_java, without_timestamp
from servers import ServerProcess

from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.values import HandleValue

pytestmark = pytest.mark.interop

ADMIN = "100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/TEST"
HANDLES = ("TEST/bvj-1", "TEST/bvj-2", "TEST/bvj-3")


def batch_text(key_file: Path, blob: Path, tag: str) -> str:
    h1, h2, h3 = (f"{h}-{tag}" for h in HANDLES)
    return (f"AUTHENTICATE SECKEY:300:0.NA/TEST\nsecret\n\n"
            f"CREATE {h1}\n{ADMIN}\n1 URL 86400 1110 UTF8 http://example.org/bvj\n"
            f"2 HS_VLIST 86400 1110 LIST 300:0.NA/TEST;301:0.NA/TEST\n3 BLOB 3600 1110 FILE {blob}\n\n"
            f"ADD {h1}\n4 EMAIL 86400 1110 UTF8 someone@example.org\n5 DESC 86400 1110 UTF8 removed below\n\n"
            f"MODIFY {h1}\n1 URL 600 1111 UTF8 http://example.org/bvj-modified\n\n"
            f"REMOVE 5:{h1}\n\n"
            f"CREATE {h1}\n{ADMIN}\n\n"
            f"CREATE {h2}\n{ADMIN}\n\nDELETE {h2}\n\n"
            f"AUTHENTICATE PUBKEY:301:0.NA/TEST\n{key_file}\n\n"
            f"CREATE {h3}\n100 HS_ADMIN 86400 1110 ADMIN 301:110011111110:0.NA/TEST\n"
            "1 URL 86400 1110 UTF8 http://example.org/bvj-pubkey\n\n")


def run_ours(batch: Path, siteinfo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hdlserver.cli.genericbatch", str(batch), "--siteinfo", str(siteinfo)],
                          capture_output=True, text=True, timeout=120)


def outcomes(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("==>")]


def record(address: tuple[str, int], handle: str) -> list[HandleValue] | int:
    """The public values without timestamps, or the error response code."""
    try:
        return [without_timestamp(v) for v in Resolver([address], udp=False).resolve(handle).values]
    except HandleResponseError as exc:
        return exc.response_code


def test_our_batch_tool_leaves_the_same_records_on_java_and_on_hdlserver(
        java_server: JavaServer, hdl_server: ServerProcess, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)))
    batch = tmp_path / "batch.txt"
    batch.write_text(batch_text(java_server.directory / "admpriv.bin", blob, "ours"), encoding="utf-8")
    on_java = run_ours(batch, java_server.siteinfo)
    on_ours = run_ours(batch, hdl_server.directory / "siteinfo.json")
    assert outcomes(on_java.stdout) == outcomes(on_ours.stdout), on_java.stdout + on_java.stderr
    assert len(outcomes(on_java.stdout)) == 8
    assert [line for line in outcomes(on_java.stdout) if line.startswith("==>FAILURE")] == [
        "==>FAILURE[19]: create:TEST/bvj-1-ours: Error(101): HANDLE_ALREADY_EXISTS"]
    assert on_java.returncode == on_ours.returncode == 1  # the duplicate CREATE fails on both
    h1, h2, h3 = (f"{h}-ours" for h in HANDLES)
    for handle in (h1, h3):
        java_values, our_values = record(java_server.address, handle), record(hdl_server.address, handle)
        assert isinstance(java_values, list) and java_values, handle
        assert our_values == java_values, handle
    assert record(java_server.address, h2) == record(hdl_server.address, h2) == ResponseCode.HANDLE_NOT_FOUND


def test_java_batch_tool_and_ours_agree_on_hdlserver(hdl_server: ServerProcess, hdl_clients: dict[str, Path],
                                                     tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00java and us\xff")
    key = hdl_server.directory / "admpriv.bin"
    ours, theirs = tmp_path / "ours.txt", tmp_path / "java.txt"
    ours.write_text(batch_text(key, blob, "py"), encoding="utf-8")
    theirs.write_text(batch_text(key, blob, "java"), encoding="utf-8")
    log = tmp_path / "java.log"
    java_run = run_java("hdl-genericbatch", theirs, log, config_dir=hdl_clients["tcp"], timeout=120)
    assert java_run.returncode == 0, java_run.describe()
    java_log = log.read_text(encoding="utf-8")
    # Java counts lines differently (values.md 11.1), so compare what happened, not the numbers.
    java_ops = [line.split("]: ", 1)[1].replace("-java", "") for line in outcomes(java_log)]
    our_run = run_ours(ours, hdl_server.directory / "siteinfo.json")
    our_ops = [line.split("]: ", 1)[1].replace("-py", "") for line in outcomes(our_run.stdout)]
    assert [op.split(":")[0:2] for op in our_ops] == [op.split(":")[0:2] for op in java_ops], java_log
    assert [line.split("[")[0] for line in outcomes(java_log)] == [line.split("[")[0] for line in
                                                                    outcomes(our_run.stdout)]
    for handle in HANDLES:
        assert record(hdl_server.address, f"{handle}-java") == record(hdl_server.address, f"{handle}-py")

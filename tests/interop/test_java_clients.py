"""The real Java Handle.Net 9.2 client tools against hdlserver: resolution (UDP and TCP), site info.

``hdl-qresolver`` is Java's HDLTrace: it prints its message trace on stderr ("sending HDL-UDP request",
"received HDL-UDP response") and the answer on stdout ("Got Response:" / "Got Error:", then one line per
value with text data quoted). It exits 0 whatever the answer, so the tests read the answer.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from java import JavaRun, JavaServer, compile_java, run_java, write_client_config
from servers import ServerProcess

from hdlserver.config.siteinfo import load_site_info, save_site_info_bin, save_site_info_json
from hdlserver.wire.site import encode_site

pytestmark = pytest.mark.interop

TRANSPORTS = ["udp", "tcp"]
PROTOCOL = {"udp": "HDL-UDP", "tcp": "HDL-TCP"}


def qresolve(handle: str, config_dir: Path) -> JavaRun:
    run = run_java("hdl-qresolver", handle, config_dir=config_dir)
    assert run.returncode == 0, run.describe()
    assert "Exception" not in run.output, run.describe()
    return run


def assert_went_over(run: JavaRun, transport: str) -> None:
    """The request went out over ``transport`` only: no fallback to the other protocol was needed."""
    other = "tcp" if transport == "udp" else "udp"
    assert f"sending {PROTOCOL[transport]} request" in run.stderr, run.describe()
    assert f"received {PROTOCOL[transport]} response" in run.stderr, run.describe()
    assert f"sending {PROTOCOL[other]} request" not in run.stderr, run.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_qresolver_resolves_handle(hdl_clients: dict[str, Path], transport: str) -> None:
    run = qresolve("TEST/hello", hdl_clients[transport])
    assert_went_over(run, transport)
    assert "Got Response:" in run.stdout, run.describe()
    assert "version=2.11; oc=1; rc=1;" in run.stdout, run.describe()
    assert 'index=1 type=URL rwr- "https://www.handle.net/"' in run.stdout, run.describe()
    assert 'index=2 type=DESC rwr- "A sample handle"' in run.stdout, run.describe()
    assert 'index=100 type=HS_ADMIN rwr- "0FFF00000009302E4E412F544553540000012C"' in run.stdout, run.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_qresolver_missing_handle_is_error_100(hdl_clients: dict[str, Path], transport: str) -> None:
    run = qresolve("TEST/does-not-exist", hdl_clients[transport])
    assert_went_over(run, transport)
    assert "Got Error:" in run.stdout, run.describe()
    assert "Error(100): HANDLE NOT FOUND" in run.stdout, run.describe()


def test_qresolver_unhomed_prefix_is_error_301(hdl_clients: dict[str, Path]) -> None:
    # Java's own server answers "Error(301): SERVER NOT RESPONSIBLE FOR HANDLE: That prefix doesn't live
    # here"; the Java client prints the code and name, then the server's message.
    run = qresolve("OTHER/x", hdl_clients["udp"])
    assert "Got Error:" in run.stdout, run.describe()
    assert "Error(301): SERVER NOT RESPONSIBLE FOR HANDLE" in run.stdout, run.describe()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_qresolver_prefix_handle_leaves_out_secret_key(hdl_clients: dict[str, Path], transport: str) -> None:
    run = qresolve("0.NA/TEST", hdl_clients[transport])
    assert "Got Response:" in run.stdout, run.describe()
    assert "index=100 type=HS_ADMIN" in run.stdout, run.describe()
    assert "index=301 type=HS_PUBKEY" in run.stdout, run.describe()
    assert "HS_SECKEY" not in run.output and "index=300" not in run.output, run.describe()
    assert '"secret"' not in run.output, run.describe()


def test_qresolver_reassembles_multi_datagram_answer(hdl_clients: dict[str, Path],
                                                    interop_records: list[dict[str, Any]]) -> None:
    run = qresolve("TEST/many", hdl_clients["udp"])
    assert_went_over(run, "udp")
    many = next(r for r in interop_records if r["handle"] == "TEST/many")
    urls = [v for v in many["values"] if v["type"] == "URL"]
    assert len(urls) == 40  # about 2.5 kB of values: five UDP datagrams
    for v in urls:
        assert f'index={v["index"]} type=URL rwr- "{v["data"]["value"]}"' in run.stdout, run.describe()


def test_qresolver_shows_only_public_values_with_their_attributes(hdl_clients: dict[str, Path]) -> None:
    run = qresolve("TEST/mixed", hdl_clients["tcp"])
    assert "Got Response:" in run.stdout, run.describe()
    assert 'index=1 type=URL rwr- "http://example.org/public"' in run.stdout, run.describe()
    assert 'index=4 type=URL.us rwr- "http://example.org/us"' in run.stdout, run.describe()
    assert 'index=5 type=BLOB rwr- "0001020304FF"' in run.stdout, run.describe()  # binary data: hex
    assert 'index=6 type=HS_VLIST rwr- "0000000100000009302E4E412F544553540000012C"' in run.stdout, run.describe()
    assert "index=3" not in run.stdout and "hidden" not in run.stdout, run.describe()


EXPIRES = re.compile(r"expires:[^\n]*? \d{4} ")


@pytest.mark.parametrize("handle", ["TEST/mixed", "test/Hello", "TEST", "0.NA/OTHER", "OTHER/x"])
def test_qresolver_prints_the_same_as_for_the_java_server(hdl_clients: dict[str, Path],
                                                          java_clients: dict[str, Path], handle: str) -> None:
    """Everything HDLTrace prints about the answer (flags, values, permissions, error text) is the same for
    both servers, but the expiration time."""
    ours = qresolve(handle, hdl_clients["udp"])
    java = qresolve(handle, java_clients["udp"])
    assert EXPIRES.sub("expires:- ", ours.stdout) == EXPIRES.sub("expires:- ", java.stdout), \
        f"{ours.describe()}\n=== the Java server ===\n{java.describe()}"


def test_java_client_configured_with_our_binary_siteinfo(hdl_server: ServerProcess, tmp_path: Path) -> None:
    """Java's client reads our siteinfo.bin as its resolver site as well as our siteinfo.json."""
    save_site_info_bin(tmp_path / "siteinfo.bin", load_site_info(hdl_server.directory))
    config = write_client_config(tmp_path / "client", tmp_path / "siteinfo.bin", udp=False)
    run = qresolve("TEST/hello", config)
    assert_went_over(run, "tcp")
    assert 'index=1 type=URL rwr- "https://www.handle.net/"' in run.stdout, run.describe()


def test_getsiteinfo_writes_our_site_record(hdl_server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "got-siteinfo.bin"
    run = run_java("hdl-getsiteinfo", "127.0.0.1", str(hdl_server.port), out)
    assert run.returncode == 0, run.describe()
    ours = load_site_info(hdl_server.directory)
    assert load_site_info(tmp_path, file_name=out.name) == ours
    # Java re-encodes what it decoded: byte-identical to our encoding of the same record.
    assert out.read_bytes() == encode_site(ours)


# ---------------------------------------------------------------------------------------------------
# Certified resolution. No Java command-line tool asks for one (HDLTrace and every other resolver tool
# leave CT clear), so a few-line client, compiled once with javac, sets ``certify`` and ``returnRequestDigest``
# on a ResolutionRequest; Java's HandleResolver then checks the HS_SIGNED signature against the
# server's public key in the client's site information and the request digest, and throws otherwise.

CERTIFIED_RESOLVER = """\
import net.handle.hdllib.*;

public class ResolveCertified {
    public static void main(String[] args) throws Exception {
        ResolutionRequest request = new ResolutionRequest(Util.encodeString(args[0]), null, null, null);
        request.certify = true;
        request.returnRequestDigest = true;
        HandleResolver resolver = new HandleResolver();
        resolver.traceMessages = true;
        AbstractResponse response = resolver.processRequest(request);
        boolean signed = response.signature != null && response.signature.length > 0;
        System.out.println("rc=" + response.responseCode + " certify=" + response.certify + " signed=" + signed);
        if (response instanceof ResolutionResponse) {
            for (HandleValue value : ((ResolutionResponse) response).getHandleValues()) System.out.println(value);
        }
    }
}
"""


@pytest.fixture(scope="module")
def certified_resolver(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """The ``hdl-java`` arguments that run the certified-resolution client (compiled once)."""
    directory = tmp_path_factory.mktemp("certified")
    source = directory / "ResolveCertified.java"
    source.write_text(CERTIFIED_RESOLVER, encoding="utf-8")
    return ("-cp", compile_java(source, directory / "classes"), "ResolveCertified")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("handle", "code", "shown"), [
    ("TEST/hello", 1, 'index=1 type=URL rwr- "https://www.handle.net/"'),
    ("TEST/many", 1, 'index=40 type=URL rwr- "http://example.org/a/long/path/040"'),  # signed over several datagrams
    ("TEST/does-not-exist", 100, None),
], ids=["hello", "many", "missing"])
def test_java_client_verifies_certified_answer(hdl_clients: dict[str, Path], certified_resolver: tuple[str, ...],
                                               transport: str, handle: str, code: int, shown: str | None) -> None:
    run = run_java("hdl-java", *certified_resolver, handle, config_dir=hdl_clients[transport])
    assert run.returncode == 0, run.describe()
    assert_went_over(run, transport)
    assert f"rc={code} certify=true signed=true" in run.stdout, run.describe()
    if shown is not None:
        assert shown in run.stdout, run.describe()


def test_java_client_rejects_answer_signed_by_another_key(hdl_server: ServerProcess, java_server: JavaServer,
                                                         certified_resolver: tuple[str, ...], tmp_path: Path) -> None:
    """Control for the test above: with another server key in the client's site information (the Java
    server's), Java's signature check fails on our answer, so the check above really verified it."""
    site = load_site_info(hdl_server.directory)
    other_key = (java_server.directory / "pubkey.bin").read_bytes()
    forged = replace(site, servers=tuple(replace(s, public_key=other_key) for s in site.servers))
    save_site_info_json(tmp_path / "siteinfo.json", forged)
    config = write_client_config(tmp_path / "wrong-key", tmp_path / "siteinfo.json", udp=False)
    run = run_java("hdl-java", *certified_resolver, "TEST/hello", config_dir=config)
    assert run.returncode != 0, run.describe()
    assert "MISSING_OR_INVALID_SIGNATURE" in run.stderr, run.describe()

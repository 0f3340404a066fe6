"""Our client tools against the real Java Handle.Net 9.2 server, and hdlserver's answers against Java's.

The Java server (hdl-local-server-setup) and hdlserver hold the same handles (see conftest). The same
request bytes go to both; the answers must agree in everything but the expiration time, the value
timestamps and the bytes of signatures.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from java import AdminTarget, JavaServer, comparable_answer, exchange, without_timestamp
from servers import ServerProcess, run_cli

from hdlserver.auth import keys
from hdlserver.cli import qresolver
from hdlserver.client.admin import AdminClient, Identity, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import JAVA_REQUEST_FLAGS, HandleResponseError, Resolver, build_request
from hdlserver.config.siteinfo import load_site_info
from hdlserver.jsonform.values_json import value_from_json, values_from_json
from hdlserver.wire.bodies import ResolutionRequest, SiteInfoRequest, SiteInfoResponse
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.site import decode_site
from hdlserver.wire.valuedata import ALL_PERMISSIONS, HS_ADMIN, AdminRecord, encode_admin
from hdlserver.wire.values import PERM_PUBLIC_READ, HandleValue

pytestmark = pytest.mark.interop

TRANSPORTS = ["udp", "tcp"]


def resolver(address: tuple[str, int], transport: str) -> Resolver:
    return Resolver([address], udp=transport == "udp", tcp=transport == "tcp")


def public_prefix_values(java_server: JavaServer) -> list[HandleValue]:
    """The publicly readable values of the Java server's 0.NA/TEST, as hdl-local-server-setup stored them."""
    bootstrap = json.loads((java_server.directory / "bootstrap.json").read_text(encoding="utf-8"))
    values = [value_from_json(v) for v in bootstrap["handleRecords"]["0.NA/TEST"]["values"]]
    assert {v.type for v in values} == {b"HS_ADMIN", b"HS_SECKEY", b"HS_PUBKEY"}
    return [without_timestamp(v) for v in values if v.permissions & PERM_PUBLIC_READ]


# ---------------------------------------------------------------------------------------------------
# Our client library and hdl-qresolver against the Java server


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resolver_reads_prefix_handle_from_java_server(java_server: JavaServer, transport: str) -> None:
    result = resolver(java_server.address, transport).resolve("0.NA/TEST")
    assert result.transport == transport.upper()
    assert result.handle == b"0.NA/TEST"
    assert [without_timestamp(v) for v in result.values] == public_prefix_values(java_server)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_qresolver_cli_against_java_server(java_server: JavaServer, transport: str) -> None:
    server = f"127.0.0.1:{java_server.port}"
    proc = run_cli("hdlserver.cli.qresolver", "0.NA/TEST", "--server", server, f"--{transport}", "--json")
    answer = json.loads(proc.stdout)
    assert answer["handle"] == "0.NA/TEST"
    values = [without_timestamp(v) for v in values_from_json(answer["values"])]
    assert values == public_prefix_values(java_server)

    text = run_cli("hdlserver.cli.qresolver", "0.NA/TEST", "--server", server, f"--{transport}").stdout
    assert f"{transport.upper()} 127.0.0.1:{java_server.port}" in text
    assert "index=100 type=HS_ADMIN" in text and "index=301 type=HS_PUBKEY" in text
    assert "admin 300:0.NA/TEST" in text and "RSA public key (2048 bits)" in text
    assert "HS_SECKEY" not in text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_missing_handle_on_java_server_is_rc_100(java_server: JavaServer, transport: str) -> None:
    with pytest.raises(HandleResponseError) as err:
        resolver(java_server.address, transport).resolve("TEST/does-not-exist")
    assert err.value.response_code == ResponseCode.HANDLE_NOT_FOUND
    proc = run_cli("hdlserver.cli.qresolver", "TEST/does-not-exist", "--server",
                   f"127.0.0.1:{java_server.port}", f"--{transport}", check=False)
    assert proc.returncode == 1
    assert "Error(100)" in proc.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_site_info_from_java_server_is_its_siteinfo_json(java_server: JavaServer, transport: str) -> None:
    assert resolver(java_server.address, transport).get_site_info() == load_site_info(java_server.directory)


def test_qresolver_cli_reads_java_siteinfo_json(java_server: JavaServer) -> None:
    proc = run_cli("hdlserver.cli.qresolver", "TEST/hello", "--site", java_server.siteinfo)
    assert "https://www.handle.net/" in proc.stdout


# Our hdl-qresolver's whole output, asked of either server: the same but for the port and value timestamps
# (which differ: the Java server's records were loaded by its own loader, ours by hdl-loadjson, and
# hdl-loadjson stamps values that have no timestamp with the current time).
QRESOLVER_CASES: list[tuple[tuple[str, ...], int]] = [  # (arguments, exit status)
    (("TEST/hello", "--udp"), 0), (("test/HELLO", "--tcp"), 0), (("TEST/mixed", "--tcp"), 0),
    (("TEST/mixed", "--udp", "--type", "URL."), 0), (("TEST/many", "--udp"), 0), (("0.NA/TEST", "--tcp", "--json"), 0),
    (("TEST/mixed", "--tcp", "--index", "3"), 1),  # 200: the only match is not public
    (("TEST/does-not-exist", "--udp"), 1), (("OTHER/x", "--tcp"), 1),
]
_PER_SERVER = ((re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
               (re.compile(r" timestamp=(\S+ \S+Z|-)"), ""),  # "-": no timestamp
               (re.compile(r',\n *"timestamp": "[^"]*"'), ""))


def _qresolver_output(port: int, args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = qresolver.main([*args, "--server", f"127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    for pattern, placeholder in _PER_SERVER:
        out, err = pattern.sub(placeholder, out), pattern.sub(placeholder, err)
    return status, out, err


@pytest.mark.parametrize(("args", "status"), QRESOLVER_CASES, ids=["_".join(c[0]) for c in QRESOLVER_CASES])
def test_qresolver_cli_prints_the_same_for_both_servers(java_server: JavaServer, hdl_server: ServerProcess,
                                                        args: tuple[str, ...], status: int,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ours = _qresolver_output(hdl_server.port, args, capsys)
    java = _qresolver_output(java_server.port, args, capsys)
    assert ours == java
    assert ours[0] == status, ours


# ---------------------------------------------------------------------------------------------------
# The same request bytes to both servers

PUBLIC = int(JAVA_REQUEST_FLAGS)  # REC | CA | PO, what every Java client sends

# (handle, types, indexes, flags); comments say what the Java server answers.
RESOLUTIONS: list[tuple[str, tuple[bytes, ...], tuple[int, ...], int]] = [
    ("TEST/hello", (), (), PUBLIC),
    ("test/HELLO", (), (), PUBLIC),  # case-insensitive lookup, handle echoed as sent
    ("TEST/mixed", (), (), PUBLIC),  # the 1100 value is left out
    ("TEST/mixed", (b"URL",), (), PUBLIC),  # exact type only
    ("TEST/mixed", (b"url.",), (), PUBLIC),  # "URL." also matches the subtype URL.us
    ("TEST/mixed", (b"URL.US",), (), PUBLIC),
    ("TEST/mixed", (b"EMAIL",), (6, 100), PUBLIC),  # type OR index
    ("TEST/mixed", (), (3,), PUBLIC),  # only a non-public value matches: 200
    ("TEST/mixed", (b"NOPE",), (), PUBLIC),  # 200
    ("TEST/many", (), (), PUBLIC),  # several UDP datagrams
    ("0.NA/TEST", (), (), PUBLIC),  # HS_SECKEY left out
    ("TEST", (), (), PUBLIC),  # slashless = 0.NA/TEST
    ("TEST/does-not-exist", (), (), PUBLIC),  # 100
    ("TEST/", (), (), PUBLIC),  # 100
    ("0.NA/OTHER", (), (), PUBLIC),  # 100: 0.NA/0.NA is homed
    ("OTHER/x", (), (), PUBLIC),  # 301 "That prefix doesn't live here"
    ("TEST/hello", (), (), PUBLIC | OpFlag.RD),  # request digest
    ("TEST/hello", (), (), PUBLIC | OpFlag.CT),  # certified: HS_SIGNED
    ("TEST/hello", (), (), OpFlag.AT | OpFlag.DNRF),  # flags copied or not as Java does
    ("TEST/hello", (), (), 0),
]


def _case_id(case: tuple[str, tuple[bytes, ...], tuple[int, ...], int]) -> str:
    handle, types, indexes, flags = case
    return f"{handle}-t{','.join(t.decode() for t in types)}-i{','.join(map(str, indexes))}-f{flags:08x}"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", RESOLUTIONS, ids=_case_id)
def test_resolution_answers_match_java_server(java_server: JavaServer, hdl_server: ServerProcess, transport: str,
                                               case: tuple[str, tuple[bytes, ...], tuple[int, ...], int]) -> None:
    handle, types, indexes, flags = case
    request = build_request(OpCode.RESOLUTION, ResolutionRequest(handle.encode(), indexes, types), flags)
    java = exchange(java_server.address, request, transport)
    ours = exchange(hdl_server.address, request, transport)
    assert comparable_answer(*ours) == comparable_answer(*java)
    now = time.time()
    assert ours[1].header.expiration > now + 3600 and java[1].header.expiration > now + 3600


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_site_info_answers_match_java_server(java_server: JavaServer, hdl_server: ServerProcess,
                                             transport: str) -> None:
    """A Java GET_SITE_INFO request (encoded as 2.3, suggesting 2.11): alike but for each server's own record."""
    request = build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(b"/"), version=(2, 3))
    answers: dict[str, dict[str, Any]] = {}
    for name, address, directory in (("java", java_server.address, java_server.directory),
                                     ("ours", hdl_server.address, Path(hdl_server.directory))):
        env, msg = exchange(address, request, transport)
        assert isinstance(msg.body, SiteInfoResponse), msg
        assert decode_site(msg.body.site_data) == load_site_info(directory), name
        answers[name] = {**comparable_answer(env, msg), "body": None}
    assert answers["ours"] == answers["java"]


# ---------------------------------------------------------------------------------------------------
# Our client library's admin requests (challenge-response, no session) against both servers: each step
# must get the same response code from both, and leave the same handle behind.

FLOW_HANDLE = "TEST/client-flow"
_FLOW_ADMIN = HandleValue(100, HS_ADMIN, encode_admin(AdminRecord(ALL_PERMISSIONS, b"0.NA/TEST", 300)))


def _url(index: int, text: str) -> HandleValue:
    return HandleValue(index, b"URL", text.encode())


AdminStep = Callable[[AdminClient], object]
ADMIN_FLOW: list[tuple[str, AdminStep]] = [
    ("create", lambda a: a.create_handle(FLOW_HANDLE, [_FLOW_ADMIN, _url(1, "http://example.org/1"),
                                                        HandleValue(2, b"EMAIL", b"someone@example.org")])),
    ("create-existing", lambda a: a.create_handle(FLOW_HANDLE, [_FLOW_ADMIN])),  # 101
    ("add", lambda a: a.add_values(FLOW_HANDLE, [HandleValue(3, b"DESC", b"added")])),
    ("add-existing-index", lambda a: a.add_values(FLOW_HANDLE, [_url(1, "http://example.org/again")])),  # 201
    ("add-overwrite", lambda a: a.add_values(FLOW_HANDLE, [_url(1, "http://example.org/over")], overwrite=True)),
    ("modify", lambda a: a.modify_values(FLOW_HANDLE, [_url(1, "http://example.org/modified")])),
    ("modify-missing-index", lambda a: a.modify_values(FLOW_HANDLE, [_url(9, "http://example.org/9")])),  # 200
    ("remove", lambda a: a.remove_values(FLOW_HANDLE, [2])),
    ("remove-missing-index", lambda a: a.remove_values(FLOW_HANDLE, [9])),  # 200
    ("remove-one-missing-of-two", lambda a: a.remove_values(FLOW_HANDLE, [3, 8])),  # 200: one index is missing
    ("create-overwrite", lambda a: a.create_handle(FLOW_HANDLE, [_FLOW_ADMIN, _url(5, "http://example.org/5")],
                                                   overwrite=True)),
    ("list", lambda a: FLOW_HANDLE.upper().encode() in a.list_handles("TEST")),
    ("delete", lambda a: a.delete_handle(FLOW_HANDLE)),
    ("delete-missing", lambda a: a.delete_handle(FLOW_HANDLE)),  # 100
    ("add-to-missing", lambda a: a.add_values(FLOW_HANDLE, [_url(1, "http://example.org/1")])),  # 100
]


def _stored(address: tuple[str, int]) -> object:
    """What the server holds for FLOW_HANDLE, as anyone can read it (timestamps aside), or the error code."""
    try:
        return [without_timestamp(v) for v in resolver(address, "tcp").resolve(FLOW_HANDLE).values]
    except HandleResponseError as e:
        return e.response_code


def _run_flow(target: AdminTarget) -> list[tuple[str, object, object]]:
    outcomes = []
    with target.secret_admin() as admin:
        for name, step in ADMIN_FLOW:
            try:
                result: object = step(admin)
            except HandleResponseError as e:
                result = e.response_code
            outcomes.append((name, result, _stored(target.address)))
    return outcomes


def test_admin_client_flow_is_the_same_on_both_servers(admin_targets: dict[str, AdminTarget]) -> None:
    java = _run_flow(admin_targets["java"])
    ours = _run_flow(admin_targets["ours"])
    assert ours == java
    results = {name: result for name, result, _ in ours}
    assert results.pop("list") is True
    codes = {name: result for name, result in results.items() if isinstance(result, int)}  # the refused steps
    assert codes == {"create-existing": ResponseCode.HANDLE_ALREADY_EXISTS,
                     "add-existing-index": ResponseCode.VALUE_ALREADY_EXISTS,
                     "modify-missing-index": ResponseCode.VALUES_NOT_FOUND,
                     "remove-missing-index": ResponseCode.VALUES_NOT_FOUND,
                     "remove-one-missing-of-two": ResponseCode.VALUES_NOT_FOUND,
                     "delete-missing": ResponseCode.HANDLE_NOT_FOUND,
                     "add-to-missing": ResponseCode.HANDLE_NOT_FOUND}


WRONG_IDENTITIES: dict[str, Callable[[], Identity]] = {
    "wrong-secret": lambda: SecretKeyIdentity(b"0.NA/TEST", 300, b"not the secret"),
    "wrong-key": lambda: PublicKeyIdentity(b"0.NA/TEST", 301, keys.generate_key_pair("RSA", 2048)),
}


@pytest.mark.parametrize("identity", WRONG_IDENTITIES)
def test_admin_client_with_wrong_credentials_is_refused_by_both(admin_targets: dict[str, AdminTarget],
                                                                identity: str) -> None:
    outcomes = {}
    for name, address in ((t.name, t.address) for t in admin_targets.values()):
        before = resolver(address, "tcp").resolve("TEST/hello").values
        with AdminClient(address, WRONG_IDENTITIES[identity]()) as admin:
            with pytest.raises(HandleResponseError) as err:
                admin.delete_handle("TEST/hello")
            outcomes[name] = err.value.response_code
        assert resolver(address, "tcp").resolve("TEST/hello").values == before, name
    assert outcomes == {"java": ResponseCode.AUTHENTICATION_FAILED, "ours": ResponseCode.AUTHENTICATION_FAILED}

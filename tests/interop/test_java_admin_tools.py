"""Java hdl-list and hdl-delete, and a Java client with a secret key, against hdlserver and the Java server.

These Java clients set a session tracker without session setup (auth.md 9.1): the admin request goes
straight to the server over TCP, the server challenges it, the client answers (op 200) and gets the result;
no DH session is involved. Each test runs the same Java command against both servers, which hold the same
handles (made with our client library), and asserts on what the tool prints and on what the servers hold
afterwards. The same command must print the same against both servers, but for expiration times, session
ids and the port (``server_independent``); a failure shows both outputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from java import AdminTarget, JavaRun, ascii_upper, compile_java, run_java, server_independent
from servers import ServerProcess, run_cli

from hdlserver.auth import keys
from hdlserver.core.listing import NAMES_PER_PART
from hdlserver.wire.bodies import ListHandlesRequest, ListHandlesResponse
from hdlserver.wire.codes import OpCode, OpFlag
from hdlserver.wire.values import HandleValue

pytestmark = pytest.mark.interop

LIST_PREFIX = "TEST.LIST"  # homed for these tests only, so that no other test's handles are listed
LIST_COUNT = 2 * NAMES_PER_PART + 7  # three LIST_HANDLES answer parts
# Prefixes homed for these tests and how many handles each holds: a long listing, one exactly one part
# long (no empty trailing part, as Java), an empty one (one empty part).
LISTINGS = {LIST_PREFIX: LIST_COUNT, "TEST.FULL": NAMES_PER_PART, "TEST.EMPTY": 0}
KEPT = "TEST/admin-tools-kept"  # what the refused requests try to delete


def url_value(handle: str) -> HandleValue:
    return HandleValue(1, b"URL", f"http://example.org/{handle}".encode())


def assert_same_output(runs: dict[str, JavaRun], *, any_line_order: bool = False) -> None:
    """The Java tool printed the same against both servers (stdout lines in any order for listings,
    whose order is each server's storage order)."""
    def comparable(run: JavaRun) -> tuple[object, str, int]:
        out = server_independent(run.stdout)
        return (sorted(out.splitlines()) if any_line_order else out), server_independent(run.stderr), run.returncode
    assert comparable(runs["ours"]) == comparable(runs["java"]), \
        f"=== hdlserver ===\n{runs['ours'].describe()}\n=== the Java server ===\n{runs['java'].describe()}"


@pytest.fixture(scope="module")
def listed_prefixes(admin_targets: dict[str, AdminTarget]) -> dict[str, list[str]]:
    """On both servers: the homed prefixes of ``LISTINGS`` with that many handles each, and ``KEPT``. For
    each prefix, the names a listing gives, as the servers store them (upper-cased)."""
    listings = {prefix: [f"{prefix}/item-{i:03d}" for i in range(count)] for prefix, count in LISTINGS.items()}
    for target in admin_targets.values():
        with target.secret_admin() as admin:
            for prefix, names in listings.items():
                admin.home_prefix(f"0.NA/{prefix}")
                for name in names:
                    admin.create_handle(name, [url_value(name)])
            admin.create_handle(KEPT, [url_value(KEPT)])
    return {prefix: sorted(ascii_upper(n) for n in names) for prefix, names in listings.items()}


@pytest.fixture(scope="module")
def listed_names(listed_prefixes: dict[str, list[str]]) -> list[str]:
    """What listing ``LIST_PREFIX`` gives."""
    return listed_prefixes[LIST_PREFIX]


@pytest.fixture(scope="module")
def wrong_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private key file that belongs to no identity on either server."""
    path = tmp_path_factory.mktemp("wrong-key") / "privkey.bin"
    keys.save_private_key(path, keys.generate_key_pair("RSA", 2048), None)
    return path


def hdl_list(target: AdminTarget, prefix: str, *, identity: tuple[str, int] = ("0.NA/TEST", 301),
             key: Path | None = None) -> JavaRun:
    return run_java("hdl-list", identity[0], str(identity[1]), key or target.admin_key, prefix,
                    config_dir=target.client_dir)


def hdl_delete(target: AdminTarget, handles: list[str], work: Path, *, key: Path | None = None) -> JavaRun:
    listing = work / f"delete-{target.name}.txt"
    listing.write_text("".join(f"{h}\n" for h in handles), encoding="utf-8")
    return run_java("hdl-delete", "0.NA/TEST", "301", key or target.admin_key, listing, config_dir=target.client_dir)


# ---------------------------------------------------------------------------------------------------
# hdl-list


def test_hdl_list_prints_every_part_of_a_long_listing(admin_targets: dict[str, AdminTarget],
                                                      listed_names: list[str]) -> None:
    runs = {name: hdl_list(target, LIST_PREFIX) for name, target in admin_targets.items()}
    for run in runs.values():
        assert run.returncode == 0, run.describe()
        assert sorted(run.stdout.split()) == listed_names, run.describe()
        assert "cont'd" in run.stderr, run.describe()  # the first answer part says more parts follow (CN)
    assert_same_output(runs, any_line_order=True)


@pytest.mark.parametrize(("prefix", "parts"), [
    (LIST_PREFIX, [(NAMES_PER_PART, True), (NAMES_PER_PART, True), (LIST_COUNT - 2 * NAMES_PER_PART, False)]),
    ("TEST.FULL", [(NAMES_PER_PART, False)]),
    ("TEST.EMPTY", [(0, False)]),
])
def test_listing_comes_in_the_same_parts_from_both_servers(admin_targets: dict[str, AdminTarget],
                                                           listed_prefixes: dict[str, list[str]], prefix: str,
                                                           parts: list[tuple[int, bool]]) -> None:
    """Our client library reads the multi-part answer alike from both: 50 names a part, CN on all but the last."""
    seen = {}
    for name, target in admin_targets.items():
        with target.secret_admin() as admin:
            result = admin.request(OpCode.LIST_HANDLES, ListHandlesRequest(f"0.NA/{prefix}".encode()))
        bodies = [m.body for m in result.messages]
        assert all(isinstance(b, ListHandlesResponse) for b in bodies), bodies
        assert sorted(h.decode() for b in bodies for h in b.handles) == listed_prefixes[prefix], name
        seen[name] = [(len(m.body.handles), bool(m.header.flags & OpFlag.CN)) for m in result.messages]
    assert seen["ours"] == seen["java"] == parts


def test_hdl_list_with_values_prints_the_same_for_both_servers(admin_targets: dict[str, AdminTarget],
                                                               listed_prefixes: dict[str, list[str]]) -> None:
    """``hdl-list -s`` resolves every listed handle and prints its values: the same blocks from both."""
    runs = {name: run_java("hdl-list", "-s", "0.NA/TEST", "301", target.admin_key, "TEST.FULL",
                           config_dir=target.client_dir) for name, target in admin_targets.items()}
    blocks = {}
    for name, run in runs.items():
        assert run.returncode == 0, run.describe()
        blocks[name] = sorted(block.strip() for block in run.stdout.split("\n\n") if block.strip())
        assert [b.splitlines()[0] for b in blocks[name]] == listed_prefixes["TEST.FULL"], run.describe()
        assert 'index=1 type=URL rwr- "http://example.org/TEST.FULL/item-000"' in run.stdout, run.describe()
    assert blocks["ours"] == blocks["java"], \
        f"=== hdlserver ===\n{runs['ours'].describe()}\n=== the Java server ===\n{runs['java'].describe()}"


def test_hdl_list_of_derived_prefixes(admin_targets: dict[str, AdminTarget]) -> None:
    """``0.NA/0.NA/TEST`` lists the derived prefix handles ``0.NA/TEST.*`` (server.md 10.1). Only hdlserver is
    asked: the reference Java build keeps its handles in JDB storage, whose getHandlesForNA throws "The
    requested prefix doesn't live here" for that argument, and the Java server then answers with request id -1
    (the Java client reports a SECURITY_ALERT)."""
    ours = admin_targets["ours"]
    with ours.secret_admin() as admin:
        admin.create_handle(f"0.NA/{LIST_PREFIX}", [url_value(LIST_PREFIX)])
    run = hdl_list(ours, "0.NA/0.NA/TEST")
    assert run.returncode == 0, run.describe()
    assert f"0.NA/{LIST_PREFIX}" in run.stdout.splitlines(), run.describe()
    assert all(line.startswith("0.NA/TEST.") for line in run.stdout.splitlines()), run.describe()


# (prefix, identity, key): "admin" is admpriv.bin, the key of 301:0.NA/TEST; "wrong" belongs to nobody.
LIST_CASES = {
    "prefix-handle-argument": (f"0.NA/{LIST_PREFIX}", ("0.NA/TEST", 301), "admin"),
    "unhomed-prefix": ("OTHER", ("0.NA/TEST", 301), "admin"),  # 301 "That prefix doesn't live here"
    "wrong-key": (LIST_PREFIX, ("0.NA/TEST", 301), "wrong"),  # 403
    "secret-key-index": (LIST_PREFIX, ("0.NA/TEST", 300), "admin"),  # 300 is an HS_SECKEY value
    "missing-index": (LIST_PREFIX, ("0.NA/TEST", 999), "admin"),
    "missing-identity-handle": (LIST_PREFIX, ("TEST/nobody", 300), "admin"),
}


@pytest.mark.parametrize("case", LIST_CASES)
def test_hdl_list_prints_the_same_for_both_servers(admin_targets: dict[str, AdminTarget], listed_names: list[str],
                                                   wrong_key: Path, case: str) -> None:
    prefix, identity, key = LIST_CASES[case]
    runs = {name: hdl_list(target, prefix, identity=identity, key=wrong_key if key == "wrong" else None)
            for name, target in admin_targets.items()}
    assert_same_output(runs, any_line_order=True)
    if key == "wrong":
        assert "Error(403): AUTHENTICATION FAILED" in runs["ours"].stderr, runs["ours"].describe()
        assert runs["ours"].stdout == "", runs["ours"].describe()


# ---------------------------------------------------------------------------------------------------
# hdl-delete


def test_hdl_delete_deletes_each_listed_handle(admin_targets: dict[str, AdminTarget], tmp_path: Path) -> None:
    doomed = ["TEST/hdl-delete-1", "TEST/hdl-delete-2"]
    runs = {}
    for name, target in admin_targets.items():
        with target.secret_admin() as admin:
            for handle in doomed:
                admin.create_handle(handle, [url_value(handle)])
        runs[name] = hdl_delete(target, [*doomed, "TEST/never-created"], tmp_path)
        assert runs[name].returncode == 0, runs[name].describe()
        assert runs[name].stdout.splitlines() == [
            "deleted TEST/hdl-delete-1", "deleted TEST/hdl-delete-2",
            "error deleting 'TEST/never-created': Error(100): HANDLE NOT FOUND"], runs[name].describe()
        for handle in doomed:
            target.assert_not_found(handle)
    assert_same_output(runs)


def test_hdl_delete_folds_only_ascii_case(admin_targets: dict[str, AdminTarget], tmp_path: Path) -> None:
    """Handle names match whatever their ASCII letters' case (case_sensitive = "no"), but other letters
    exactly: "ünï" does not name "Ünï"."""
    runs = {}
    for name, target in admin_targets.items():
        with target.secret_admin() as admin:
            for handle in ("TEST/sp ace", "TEST/Ünï-Mixed"):
                admin.create_handle(handle, [url_value(handle)])
        runs[name] = hdl_delete(target, ["test/SP ACE", "TEST/ünï-mixed"], tmp_path)
        assert runs[name].stdout.splitlines() == [
            "deleted test/SP ACE", "error deleting 'TEST/ünï-mixed': Error(100): HANDLE NOT FOUND"], \
            runs[name].describe()
        target.assert_not_found("TEST/sp ace")
        assert target.resolve("test/ÜNï-MIXED")[0].data == url_value("TEST/Ünï-Mixed").data
    assert_same_output(runs)


def test_hdl_delete_with_a_wrong_key_changes_nothing(admin_targets: dict[str, AdminTarget], listed_names: list[str],
                                                     wrong_key: Path, tmp_path: Path) -> None:
    runs = {}
    for name, target in admin_targets.items():
        before = target.resolve(KEPT)
        runs[name] = hdl_delete(target, [KEPT], tmp_path, key=wrong_key)
        assert runs[name].stdout.strip() == f"error deleting '{KEPT}': Error(403): AUTHENTICATION FAILED", \
            runs[name].describe()
        assert target.resolve(KEPT) == before, name
    assert_same_output(runs)


# ---------------------------------------------------------------------------------------------------
# A Java client with a secret key (HS_SECKEY) and no session. hdl-genericbatch, the Java tool that takes a
# secret key, always sets up a DH session first (test_java_sessions.py); this few-line client sends the same
# DeleteHandleRequest as hdl-delete, authenticated by SecretKeyAuthenticationInfo, and prints its outcome as
# hdl-delete does.

SECRET_KEY_DELETE = """\
import net.handle.hdllib.*;

public class SecretKeyDelete {
    public static void main(String[] args) throws Exception {
        AuthenticationInfo auth = new SecretKeyAuthenticationInfo(
            Util.encodeString(args[0]), Integer.parseInt(args[1]), Util.encodeString(args[2]));
        HandleResolver resolver = new HandleResolver();
        resolver.setSessionTracker(new ClientSessionTracker());
        resolver.traceMessages = true;
        for (int i = 3; i < args.length; i++) {
            DeleteHandleRequest request = new DeleteHandleRequest(Util.encodeString(args[i]), auth);
            AbstractResponse response = resolver.processRequest(request);
            if (response.responseCode == AbstractMessage.RC_SUCCESS) System.out.println("deleted " + args[i]);
            else System.out.println("error deleting '" + args[i] + "': " + response);
        }
    }
}
"""


@pytest.fixture(scope="module")
def secret_key_delete(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """The ``hdl-java`` arguments that run SecretKeyDelete (compiled once)."""
    directory = tmp_path_factory.mktemp("seckey-delete")
    source = directory / "SecretKeyDelete.java"
    source.write_text(SECRET_KEY_DELETE, encoding="utf-8")
    return ("-cp", compile_java(source, directory / "classes"), "SecretKeyDelete")


@pytest.mark.parametrize(("secret", "deleted"), [("wrong secret", False), ("secret", True)])
def test_java_secret_key_client(admin_targets: dict[str, AdminTarget], secret_key_delete: tuple[str, ...],
                                secret: str, deleted: bool) -> None:
    """A wrong secret is refused (403) and nothing changes; the right one (the control) deletes."""
    handle = f"TEST/seckey-{'deleted' if deleted else 'kept'}"
    runs = {}
    for name, target in admin_targets.items():
        with target.secret_admin() as admin:
            admin.create_handle(handle, [url_value(handle)])
        before = target.resolve(handle)
        runs[name] = run_java("hdl-java", *secret_key_delete, "0.NA/TEST", "300", secret, handle,
                              config_dir=target.client_dir)
        assert runs[name].returncode == 0, runs[name].describe()
        assert "HS_SECKEY 300:0.NA/TEST" in runs[name].stderr, runs[name].describe()  # it answered a challenge
        if deleted:
            assert runs[name].stdout.strip() == f"deleted {handle}", runs[name].describe()
            target.assert_not_found(handle)
        else:
            assert runs[name].stdout.strip() == f"error deleting '{handle}': Error(403): AUTHENTICATION FAILED", \
                runs[name].describe()
            assert target.resolve(handle) == before, name
    assert_same_output(runs)


def test_our_server_logs_refusals_and_keeps_serving(admin_targets: dict[str, AdminTarget], hdl_server: ServerProcess,
                                                    listed_names: list[str], wrong_key: Path, tmp_path: Path) -> None:
    """A refused Java request is logged; hdlserver still answers and the prefix listing is whole."""
    ours = admin_targets["ours"]
    hdl_delete(ours, [KEPT], tmp_path, key=wrong_key)
    assert "authentication failed for 301:0.NA/TEST (HS_PUBKEY)" in hdl_server.error_log()
    assert ours.resolve(KEPT)[0].data == url_value(KEPT).data
    proc = run_cli("hdlserver.cli.qresolver", KEPT, "--server", f"{ours.address[0]}:{ours.address[1]}", "--tcp")
    assert f"http://example.org/{KEPT}" in proc.stdout
    with ours.secret_admin() as admin:
        assert sorted(h.decode() for h in admin.list_handles(LIST_PREFIX)) == listed_names

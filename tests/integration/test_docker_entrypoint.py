"""The container entry point run as a plain process: first-start initialisation from HDL_* variables,
reuse on later starts, the health check, graceful stop, missing or bad variables; and the setup options
it relies on (administrator public key from PEM or a Java key file, HTTP port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from http_support import request
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port, run_cli

from hdlserver.auth import keys
from hdlserver.cli.dblist import open_server_store
from hdlserver.client.admin import AdminClient, PublicKeyIdentity
from hdlserver.client.resolver import Resolver
from hdlserver.config.dct import load_dct
from hdlserver.config.siteinfo import load_site_info
from hdlserver.wire.site import PROTO_HTTP, PROTO_TCP, PROTO_UDP
from hdlserver.wire.valuedata import decode_admin
from hdlserver.wire.values import HandleValue

MODULE = "hdlserver.cli.docker_entrypoint"
START_TIMEOUT = 30


def entrypoint_env(server_dir: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDL_")}
    env["HDL_SERVER_DIR"] = str(server_dir)
    env.update(variables)
    return env


def first_start_env(server_dir: Path, port: int, **extra: str) -> dict[str, str]:
    return entrypoint_env(server_dir, HDL_PREFIX="20.500.77", HDL_PUBLIC_ADDRESS="192.0.2.10",
                          HDL_ADMIN_SECRET="entrypoint secret", HDL_BIND_ADDRESS="127.0.0.1", HDL_PORT=str(port),
                          HDL_HTTP_PORT=str(free_port()), **extra)


def run_entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", MODULE, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def start_entrypoint(env: dict[str, str], ready: Path) -> subprocess.Popen[str]:
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", MODULE, "serve", "--ready-file", str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while not (ready.exists() and ready.read_text()):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the entry point exited with {proc.returncode}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the entry point did not start in {START_TIMEOUT}s: {proc.communicate()}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def test_first_start_initialises_later_starts_reuse(tmp_path: Path) -> None:
    server_dir = tmp_path / "volume"
    port = free_port()
    env = first_start_env(server_dir, port, HDL_SAMPLE_HANDLE="yes", HDL_PARTITIONS="2")
    proc = start_entrypoint(env, tmp_path / "ready")
    try:
        resolver = Resolver([("127.0.0.1", port)])
        admin = next(v for v in resolver.resolve("0.NA/20.500.77").values if v.type == b"HS_ADMIN")
        assert decode_admin(admin.data).index == 300
        assert resolver.resolve("20.500.77/hello").values
        site = resolver.get_site_info()
        (server,) = site.servers
        assert server.address_text() == "192.0.2.10"  # advertised, while the listeners bind 127.0.0.1
        http_port = int(env["HDL_HTTP_PORT"])
        assert {(i.protocol, i.port) for i in server.interfaces} == {
            (PROTO_TCP, port), (PROTO_UDP, port), (PROTO_HTTP, http_port)}
        health = run_entrypoint("healthcheck", env=env)
        assert health.returncode == 0, health.stderr
        assert "healthy: 0.NA/20.500.77" in health.stdout
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert "initialised" in err and "hdlserver started" in out  # logs on standard output by default
    config = load_dct(server_dir / "config.dct")
    assert config["hdl_tcp_config"]["bind_address"] == "127.0.0.1"  # type: ignore[index]
    assert config["server_config"]["server_admins"] == ["300:0.NA/20.500.77"]  # type: ignore[index]
    assert not (server_dir / "admpriv.bin").exists()
    with open_server_store(server_dir, readonly=True) as store:
        assert store.partitions == 2

    later = {**env, "HDL_ADMIN_SECRET": "ignored now", "HDL_PUBLIC_ADDRESS": "192.0.2.99"}
    proc = start_entrypoint(later, tmp_path / "ready")
    try:
        assert Resolver([("127.0.0.1", port)]).resolve("0.NA/20.500.77").values
        assert run_entrypoint("healthcheck", env=later).returncode == 0
    finally:
        code, _out, err = stop(proc)
    assert code == 0
    assert "already initialised; ignoring the first-start settings" in err
    assert "HDL_ADMIN_SECRET" in err and "HDL_PUBLIC_ADDRESS" in err
    assert load_site_info(server_dir).servers[0].address_text() == "192.0.2.10"

    # A prefix the volume does not serve means the wrong volume: refused, and nothing in it changes.
    config_before = (server_dir / "config.dct").read_bytes()
    wrong = run_entrypoint("serve", env={**env, "HDL_PREFIX": "20.500.OTHER"})
    assert wrong.returncode == 1
    assert "HDL_PREFIX names 20.500.OTHER" in wrong.stderr and "initialised for 0.NA/20.500.77" in wrong.stderr
    assert (server_dir / "config.dct").read_bytes() == config_before
    assert not (server_dir / "delete_this_to_stop_server").exists()

    unhealthy = run_entrypoint("healthcheck", env=env)
    assert unhealthy.returncode == 1 and "unhealthy: no answer" in unhealthy.stderr


def test_missing_variables_are_all_named(tmp_path: Path) -> None:
    server_dir = tmp_path / "volume"
    proc = run_entrypoint("serve", env=entrypoint_env(server_dir))
    assert proc.returncode == 1
    for name in ("HDL_PREFIX is required", "HDL_PUBLIC_ADDRESS is required", "an administrator is required"):
        assert name in proc.stderr, proc.stderr
    assert not (server_dir / "config.dct").exists()


def test_bad_variables_are_all_named(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("s\n")
    env = entrypoint_env(tmp_path / "volume", HDL_PREFIX="20.500.1", HDL_PUBLIC_ADDRESS="handle.example.org",
                         HDL_ADMIN_SECRET="s", HDL_ADMIN_SECRET_FILE=str(secret_file), HDL_PORT="26410000",
                         HDL_CASE_SENSITIVE="perhaps", HDL_ADMIN_PUBKEY="not a key")
    proc = run_entrypoint("init", env=env)
    assert proc.returncode == 1
    for text in ("HDL_PUBLIC_ADDRESS='handle.example.org' is not an IP address",
                 "HDL_ADMIN_SECRET and HDL_ADMIN_SECRET_FILE are both set", "HDL_PORT='26410000'",
                 "HDL_CASE_SENSITIVE='perhaps' is not yes or no", "HDL_ADMIN_PUBKEY: "):
        assert text in proc.stderr, proc.stderr
    assert not (tmp_path / "volume").exists()


def test_administrator_public_key_in_pem(tmp_path: Path) -> None:
    admin_key = keys.generate_key_pair("RSA", 1024)
    pem = keys.public_key_to_pem(admin_key.public_key()).decode("ascii")
    server_dir = tmp_path / "volume"
    port = free_port()
    env = entrypoint_env(server_dir, HDL_PREFIX="20.500.88", HDL_PUBLIC_ADDRESS="2001:db8::5",
                         HDL_ADMIN_PUBKEY=pem, HDL_HTTP_PORT="off", HDL_BIND_ADDRESS="127.0.0.1",
                         HDL_PORT=str(port))
    proc = run_entrypoint("init", env=env)
    assert proc.returncode == 0, proc.stderr
    assert run_entrypoint("init", env=env).returncode == 0  # already done: nothing to do
    with open_server_store(server_dir, readonly=True) as store:
        values = {v.index: v for v in store.get_values(b"0.NA/20.500.88") or ()}
    assert values[301].type == b"HS_PUBKEY"
    assert values[301].data == keys.public_key_to_bytes(admin_key.public_key())
    assert decode_admin(values[100].data).index == 301
    assert 300 not in values
    config = load_dct(server_dir / "config.dct")
    assert config["server_config"]["server_admins"] == ["301:0.NA/20.500.88"]  # type: ignore[index]
    assert config["interfaces"] == ["hdl_udp", "hdl_tcp"]
    assert not (server_dir / "admpriv.bin").exists() and not (server_dir / "admpub.bin").exists()

    server = start_entrypoint(env, tmp_path / "ready")  # the private half of the PEM key administers it
    try:
        identity = PublicKeyIdentity(b"0.NA/20.500.88", 301, admin_key)
        with AdminClient(("127.0.0.1", port), identity) as client:
            client.create_handle("20.500.88/made-with-the-key", [HandleValue(1, b"URL", b"https://example.org/")])
        assert Resolver([("127.0.0.1", port)]).resolve("20.500.88/made-with-the-key").values[0].type == b"URL"
    finally:
        assert stop(server)[0] == 0


def test_administrator_key_file_and_secret_file(tmp_path: Path) -> None:
    admin_key = keys.generate_key_pair("DSA", 1024)
    key_file = tmp_path / "admpub.bin"
    keys.save_public_key(key_file, admin_key.public_key())
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("from a docker secret\n")
    server_dir = tmp_path / "volume"
    env = entrypoint_env(server_dir, HDL_PREFIX="20.500.89", HDL_PUBLIC_ADDRESS="192.0.2.11",
                         HDL_ADMIN_PUBKEY_FILE=str(key_file), HDL_ADMIN_SECRET_FILE=str(secret_file))
    assert run_entrypoint("init", env=env).returncode == 0
    with open_server_store(server_dir, readonly=True) as store:
        values = {v.index: v for v in store.get_values(b"0.NA/20.500.89") or ()}
    assert values[300].data == b"from a docker secret"
    assert values[301].data == key_file.read_bytes()


def test_other_commands_are_run(tmp_path: Path) -> None:
    proc = run_entrypoint(sys.executable, "-c", "print('ran inside')", env=entrypoint_env(tmp_path))
    assert proc.returncode == 0 and proc.stdout.strip() == "ran inside"
    missing = run_entrypoint("no-such-command-hdl", env=entrypoint_env(tmp_path))
    assert missing.returncode == 127 and "cannot run no-such-command-hdl" in missing.stderr


def test_healthcheck_without_a_server_directory(tmp_path: Path) -> None:
    proc = run_entrypoint("healthcheck", env=entrypoint_env(tmp_path / "nothing"))
    assert proc.returncode == 1 and "unhealthy: cannot read the configuration" in proc.stderr


# -- the setup options behind it ---------------------------------------------------------------------


def test_setup_server_with_an_administrator_public_key_and_http_port(tmp_path: Path) -> None:
    admin_key = keys.generate_key_pair("RSA", 1024)
    pem_file = tmp_path / "admin.pem"
    pem_file.write_bytes(keys.public_key_to_pem(admin_key.public_key()))
    directory = tmp_path / "srv"
    run_cli("hdlserver.cli.setup_server", directory, "--prefix", "TEST", "--admin-public-key", pem_file,
            "--admin-secret", "s", "--http-port", "8123", "--public-address", "192.0.2.1")
    config = load_dct(directory / "config.dct")
    assert config["server_config"]["server_admins"] == ["300:0.NA/TEST", "301:0.NA/TEST"]  # type: ignore[index]
    assert config["hdl_http_config"]["bind_port"] == "8123"  # type: ignore[index]
    with open_server_store(directory, readonly=True) as store:
        values = {v.index: v for v in store.get_values(b"0.NA/TEST") or ()}
    assert values[301].data == keys.public_key_to_bytes(admin_key.public_key())
    assert not (directory / "admpriv.bin").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--admin-public-key", "{missing}"), "cannot read"),
    (("--admin-public-key", "{garbage}"), "not an administrator public key"),
    (("--admin-public-key", "{pem}", "--no-admin-key"), "contradict"),
    (("--http-port", "2641"), "HTTP port cannot be"),
    (("--public-address", "example.org"), "not an IP address"),
])
def test_setup_server_refuses_bad_options(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01 not a key")
    pem = tmp_path / "admin.pem"
    pem.write_bytes(keys.public_key_to_pem(keys.generate_key_pair("RSA", 1024).public_key()))
    paths = {"missing": tmp_path / "missing.pem", "garbage": garbage, "pem": pem}
    argv = [a.format(**paths) for a in args]
    proc = run_cli("hdlserver.cli.setup_server", tmp_path / "srv", "--prefix", "TEST", "--admin-secret", "s",
                   *argv, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert not (tmp_path / "srv" / "config.dct").exists()


def test_passphrase_metrics_log_files_and_site_settings(tmp_path: Path) -> None:
    """HDL_SERVER_PASSPHRASE[_FILE], HDL_METRICS, HDL_LOG_STDOUT=no, HDL_SERVER_ID, HDL_DESCRIPTION,
    HDL_CASE_SENSITIVE and HDL_HEALTHCHECK_TIMEOUT, through a real start."""
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text("container passphrase\n")
    server_dir = tmp_path / "volume"
    port = free_port()
    env = first_start_env(server_dir, port, HDL_SERVER_PASSPHRASE_FILE=str(passphrase_file), HDL_METRICS="yes",
                          HDL_LOG_STDOUT="no", HDL_SERVER_ID="7", HDL_DESCRIPTION="entrypoint test",
                          HDL_CASE_SENSITIVE="yes", HDL_HEALTHCHECK_TIMEOUT="3")
    proc = start_entrypoint(env, tmp_path / "ready")
    try:
        resolver = Resolver([("127.0.0.1", port)])
        assert resolver.resolve("0.NA/20.500.77").values
        (server,) = resolver.get_site_info().servers
        assert server.server_id == 7
        assert run_entrypoint("healthcheck", env=env).returncode == 0
        reply = request(("127.0.0.1", int(env["HDL_HTTP_PORT"])), "GET", "/metrics")
        assert reply.status == 200
        families = {f.name: f for f in text_string_to_metric_families(reply.body.decode("utf-8"))}
        assert any(s.labels.get("opcode") == "RESOLUTION" and s.value >= 1
                   for s in families["hdlserver_requests"].samples)
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    assert keys.is_encrypted_key_file((server_dir / "privkey.bin").read_bytes())
    assert "hdlserver started" not in out
    assert "hdlserver started" in (server_dir / "logs" / "error.log").read_text(encoding="utf-8")
    config = load_dct(server_dir / "config.dct")
    assert config["server_config"]["enable_metrics"] == "yes"  # type: ignore[index]
    assert config["server_config"]["case_sensitive"] == "yes"  # type: ignore[index]
    assert config["server_config"]["this_server_id"] == "7"  # type: ignore[index]
    assert "entrypoint test" in (server_dir / "siteinfo.json").read_text(encoding="utf-8")

    # Later starts: the passphrase from the environment; without any, a clear refusal instead of a prompt.
    by_env = {k: v for k, v in env.items() if k != "HDL_SERVER_PASSPHRASE_FILE"}
    proc = start_entrypoint({**by_env, "HDL_SERVER_PASSPHRASE": "container passphrase"}, tmp_path / "ready")
    assert stop(proc)[0] == 0
    none = subprocess.run([sys.executable, "-m", MODULE, "serve"], capture_output=True, text=True, env=by_env,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert none.returncode == 1
    assert "privkey.bin is encrypted and no passphrase was given: set HDL_SERVER_PASSPHRASE" in none.stderr
    both = run_entrypoint("serve", env={**env, "HDL_SERVER_PASSPHRASE": "x"})
    assert both.returncode == 1 and "HDL_SERVER_PASSPHRASE and HDL_SERVER_PASSPHRASE_FILE are both set" in both.stderr
    assert not (server_dir / "delete_this_to_stop_server").exists()


def test_more_bad_variables_are_all_named(tmp_path: Path) -> None:
    env = entrypoint_env(tmp_path / "volume", HDL_PREFIX="20.500.1", HDL_PUBLIC_ADDRESS="192.0.2.1",
                         HDL_ADMIN_SECRET="s", HDL_PORT="2641", HDL_HTTP_PORT="2641", HDL_PARTITIONS="0",
                         HDL_SERVER_ID="one", HDL_SAMPLE_HANDLE="maybe", HDL_METRICS="perhaps",
                         HDL_LOG_STDOUT="loud")
    proc = run_entrypoint("serve", env=env)
    assert proc.returncode == 1
    assert "HDL_LOG_STDOUT='loud' is not yes or no" in proc.stderr, proc.stderr
    env["HDL_LOG_STDOUT"] = "yes"
    proc = run_entrypoint("serve", env=env)
    assert proc.returncode == 1
    for text in ("HDL_HTTP_PORT and HDL_PORT are both 2641", "HDL_PARTITIONS='0' is not a number from 1 to 256",
                 "HDL_SERVER_ID='one'", "HDL_SAMPLE_HANDLE='maybe' is not yes or no",
                 "HDL_METRICS='perhaps' is not yes or no"):
        assert text in proc.stderr, proc.stderr
    no_http = run_entrypoint("init", env={**env, "HDL_HTTP_PORT": "off", "HDL_PARTITIONS": "2", "HDL_SERVER_ID": "1",
                                          "HDL_SAMPLE_HANDLE": "no", "HDL_METRICS": "yes"})
    assert no_http.returncode == 1 and "HDL_METRICS=yes serves /metrics on the HTTP interface" in no_http.stderr
    assert not (tmp_path / "volume").exists()
    health = run_entrypoint("healthcheck", env={**env, "HDL_HEALTHCHECK_TIMEOUT": "0"})
    assert health.returncode == 1 and "HDL_HEALTHCHECK_TIMEOUT='0' is not a number from 1 to 300" in health.stderr

"""Interop test helpers: running the real Java Handle.Net 9.2 tools of ../shared/handle-java, and
talking to a server with exact request bytes so that two servers' answers can be compared.

The Java build sits beside the repository (``<repo>/../shared/handle-java``); users' clones do not have
it, so every helper that needs it goes through ``require_java`` and the tests skip with the reason.
Java tools read their client configuration from ``-Dnet.handle.configDir``; every run here gets one,
so no tool ever reads ``~/.handle`` or contacts the Global Handle Registry.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.client.transport import tcp_exchange, udp_exchange
from hdlserver.wire.bodies import ErrorBody, ResolutionResponse, SiteInfoResponse
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, Envelope, decode_envelope
from hdlserver.wire.message import Message, decode_message
from hdlserver.wire.values import HandleValue

REPO = Path(__file__).resolve().parents[2]
HANDLE_JAVA = REPO.parent / "shared" / "handle-java"
JAVA_BIN = HANDLE_JAVA / "bin"
INSTALL_HINT = "run ../shared/handle-java/install.sh"
# The Debian jars bin/hdl puts on the classpath (install.sh installs them with the JRE).
DEPENDENCY_JARS = tuple(Path("/usr/share/java") / name
                        for name in ("gson.jar", "commons-codec.jar", "bcprov.jar", "bcpkix.jar"))

JAVA_TIMEOUT = 60.0  # one tool run; a JVM starts in about a second
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 20.0


def missing_java() -> str | None:
    """Why the Java tools cannot run here, or None when they can."""
    if not (JAVA_BIN / "hdl").is_file():
        return f"../shared/handle-java not found (looked for {HANDLE_JAVA})"
    if not os.access(JAVA_BIN / "hdl", os.X_OK):
        return f"{JAVA_BIN}/hdl* are not executable: {INSTALL_HINT} (it sets their execute bits)"
    if shutil.which("java") is None:
        return f"java not installed: {INSTALL_HINT}"
    absent = [str(jar) for jar in DEPENDENCY_JARS if not jar.is_file()]
    if absent:
        return f"Java dependency jars missing ({', '.join(absent)}): {INSTALL_HINT}"
    return None


def require_java() -> None:
    reason = missing_java()
    if reason is not None:
        pytest.skip(reason)


@dataclass(frozen=True)
class JavaRun:
    """The outcome of one Java tool run."""

    command: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        """For assertion messages: what ran and everything it printed."""
        return (f"$ {' '.join(self.command)}\nexit status {self.returncode}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


_neutral_config: Path | None = None


def neutral_config_dir() -> Path:
    """A client configuration that never updates root info: for tools that need no server at all."""
    global _neutral_config
    if _neutral_config is None:
        directory = Path(tempfile.mkdtemp(prefix="hdl-java-config-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        (directory / "config.dct").write_text('{\n  "auto_update_root_info" = "no"\n}\n', encoding="utf-8")
        _neutral_config = directory
    return _neutral_config


def java_env(config_dir: Path | None) -> dict[str, str]:
    return {**os.environ, "JAVA_OPTS": f"-Dnet.handle.configDir={config_dir or neutral_config_dir()}"}


def run_java(tool: str, *args: str | Path, config_dir: Path | None = None, input_text: str | None = None,
             timeout: float = JAVA_TIMEOUT) -> JavaRun:
    """Run ``bin/<tool> args...`` (e.g. ``hdl-qresolver``) to completion, killing it after ``timeout``.
    Standard input is ``input_text`` (empty by default), so a tool that prompts never waits for a person."""
    require_java()
    command = (str(JAVA_BIN / tool), *map(str, args))
    try:
        proc = subprocess.run(command, input=input_text if input_text is not None else "", capture_output=True,
                              text=True, timeout=timeout, env=java_env(config_dir))
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(f"{' '.join(command)} did not finish in {timeout} s\n{out}\n{err}") from None
    return JavaRun(command, proc.returncode, proc.stdout, proc.stderr)


def java_classpath() -> str:
    """The classpath bin/hdl runs the tools with."""
    require_java()
    proc = subprocess.run([str(JAVA_BIN / "hdl"), "classpath"], capture_output=True, text=True,
                          timeout=JAVA_TIMEOUT, check=True)
    return proc.stdout.strip()


# javac run as a module of the JVM itself: Debian's JRE (what install.sh installs) ships the jdk.compiler
# module in its runtime image, but only a JDK has the ``javac`` launcher.
JAVAC = ("java", "-m", "jdk.compiler/com.sun.tools.javac.Main")


def compile_java(source: Path, out_dir: Path) -> str:
    """Compile a small client against the Handle.Net jars and return the classpath that runs it: pass
    ``"-cp", <it>, <class name>`` to ``run_java("hdl-java", ...)`` (the last -cp on a java command line wins)."""
    classpath = java_classpath()
    proc = subprocess.run([*JAVAC, "-cp", classpath, "-d", str(out_dir), str(source)], capture_output=True,
                          text=True, timeout=JAVA_TIMEOUT)
    if proc.returncode != 0:
        raise AssertionError(f"compiling {source} failed:\n{proc.stdout}{proc.stderr}")
    return f"{classpath}{os.pathsep}{out_dir}"


def write_client_config(directory: Path, siteinfo: Path, *, udp: bool = True,
                        prefixes: Sequence[str] = ("0.NA/TEST",)) -> Path:
    """A Java client configuration that sends every request to the site in ``siteinfo`` (JSON or binary);
    ``udp=False`` makes resolution use TCP only."""
    require_java()
    args = [str(JAVA_BIN / "hdl-local-client-config"), *([] if udp else ["--no-udp"]), str(directory),
            str(siteinfo), *prefixes]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=JAVA_TIMEOUT)
    if proc.returncode != 0:
        raise AssertionError(f"hdl-local-client-config failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return directory


def java_keygen(private_file: Path, public_file: Path, *, algorithm: str = "RSA",
                passphrase: str | None = None, timeout: float = JAVA_TIMEOUT) -> JavaRun:
    """Java ``hdl-keygen -alg ALGORITHM PRIV PUB``, answering its questions through a pipe: "n" (no
    encryption), or "y" and then the passphrase twice.

    KeyGenerator reads the y/n answer and the passphrase through two different buffered readers, and the
    first would swallow whatever is already in the pipe, so the passphrase goes in only once its prompt
    has been printed.
    """
    require_java()
    command = (str(JAVA_BIN / "hdl-keygen"), "-alg", algorithm, str(private_file), str(public_file))
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=java_env(None))
    assert proc.stdin is not None and proc.stdout is not None
    seen = b""
    try:
        proc.stdin.write(b"n\n" if passphrase is None else b"y\n")
        proc.stdin.flush()
        if passphrase is not None:
            deadline = time.monotonic() + timeout
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                while b"passphrase:" not in seen:  # the prompt; the text before the y/n question also says "passphrase"
                    if time.monotonic() > deadline:
                        raise AssertionError(f"hdl-keygen never asked for the passphrase:\n{seen.decode()}")
                    if selector.select(timeout=1):
                        chunk = os.read(proc.stdout.fileno(), 4096)
                        if not chunk:
                            raise AssertionError(f"hdl-keygen ended before asking for the passphrase:\n"
                                                 f"{seen.decode()}")
                        seen += chunk
            proc.stdin.write(f"{passphrase}\n{passphrase}\n".encode())
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = JavaRun(command, proc.returncode, (seen + out).decode(errors="replace"), err.decode(errors="replace"))
    if run.returncode != 0 or not private_file.is_file() or not public_file.is_file():
        raise AssertionError(f"hdl-keygen failed\n{run.describe()}")
    return run


# Parts of a Java tool's trace that differ between any two servers or runs: expiration times, session
# and challenge ids, the server's port.
_RUN_SPECIFIC = ((re.compile(r"expires:\w{3} \w{3} \d\d \d\d:\d\d:\d\d \w+ \d{4}"), "expires:-"),
                 (re.compile(r"snId=[1-9]\d*"), "snId=N"),
                 (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"))


def server_independent(text: str) -> str:
    """A Java tool's output with what depends on the server instance or the time replaced by placeholders,
    so that the output of the same command against two servers can be compared."""
    for pattern, placeholder in _RUN_SPECIFIC:
        text = pattern.sub(placeholder, text)
    return text


# ---------------------------------------------------------------------------------------------------
# The Java server


@dataclass
class JavaServer:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def client_dir(self) -> Path:
        """The UDP-first client configuration hdl-local-server-setup wrote for this server."""
        return self.directory / "client"

    @property
    def siteinfo(self) -> Path:
        return self.directory / "siteinfo.json"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM to the server's pid (its shutdown hook closes the JDB files), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(SERVER_STOP_TIMEOUT)
        return self.process.returncode


def setup_java_server(directory: Path, port: int, prefix: str = "TEST", secret: str = "secret") -> Path:
    """``hdl-local-server-setup DIR PORT PREFIX SECRET``: a loopback Java server directory (not started)."""
    run = run_java("hdl-local-server-setup", directory, str(port), prefix, secret)
    if run.returncode != 0 or not (directory / "siteinfo.json").is_file():
        raise AssertionError(f"Java server setup failed\n{run.describe()}")
    return directory


def load_java_records(directory: Path, records: Sequence[dict[str, Any]]) -> None:
    """Store handle records (``{"handle", "values"}`` in the REST JSON value form) in a stopped Java
    server's JDB storage with Java's own offline loader, as hdl-local-server-setup does.

    The loader writes the handle exactly as given, while the server (``case_sensitive`` = "no") looks
    up the ASCII upper-cased name, so the records go in under that name.
    """
    stored = [{**r, "handle": ascii_upper(r["handle"])} for r in records]
    document = {"homedPrefixes": [], "handleRecords": {r["handle"]: r for r in stored}}
    path = directory / "interop-records.json"
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    run = run_java("hdl-java", "net.handle.apps.tools.LoadHandlesIntoStorageFromJson", "-f", path, "-h", directory)
    created = [line for line in run.stdout.splitlines() if line.startswith("Created: ")]
    if run.returncode != 0 or len(created) != len(records):
        raise AssertionError(f"loading records into the Java server failed\n{run.describe()}")


def ascii_upper(handle: str) -> str:
    return handle.encode("utf-8").upper().decode("utf-8")


def _tcp_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_java_server(directory: Path, port: int) -> JavaServer:
    """Start ``hdl-server DIR`` and wait until both request handlers run and TCP accepts connections."""
    require_java()
    log_path = directory / "server.out"
    env = {**os.environ, "JAVA_OPTS": f"-Dnet.handle.configDir={directory / 'client'}"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(JAVA_BIN / "hdl-server"), str(directory)], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    server = JavaServer(directory, port, process, log_path)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Java server exited with {process.returncode}:\n{server.log()}")
        text = server.log()
        if "Starting UDP request handlers" in text and "Starting TCP request handlers" in text \
                and _tcp_listening(port):
            return server
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"the Java server did not start in {SERVER_START_TIMEOUT} s:\n{server.log()}")


@dataclass(frozen=True)
class AdminTarget:
    """One of the two servers as an administrator of prefix TEST sees it: the same identities work on both
    (300:0.NA/TEST with ``secret``, 301:0.NA/TEST with the private key ``admin_key``)."""

    name: str  # "ours" or "java"
    address: tuple[str, int]
    client_dir: Path  # a Java client configuration that sends every request to this server
    admin_key: Path
    secret: bytes

    def secret_admin(self) -> AdminClient:
        """Our client library, authenticating as 300:0.NA/TEST with the secret key."""
        return AdminClient(self.address, SecretKeyIdentity(b"0.NA/TEST", 300, self.secret))

    def resolve(self, handle: str) -> tuple[HandleValue, ...]:
        """The handle's public values, timestamps included (so that any change to the stored handle shows)."""
        return Resolver([self.address], udp=False).resolve(handle).values

    def assert_not_found(self, handle: str) -> None:
        with pytest.raises(HandleResponseError) as err:
            self.resolve(handle)
        assert err.value.response_code == ResponseCode.HANDLE_NOT_FOUND, (self.name, handle)


# ---------------------------------------------------------------------------------------------------
# Asking a server with exact request bytes, and what of an answer must match between two servers


def exchange(address: tuple[str, int], request: bytes, transport: str) -> tuple[Envelope, Message]:
    """Send ``request`` (envelope + message) over "udp" or "tcp"; the (first) answer, decoded."""
    answer = udp_exchange(address, request) if transport == "udp" else tcp_exchange(address, request)[0]
    env = decode_envelope(answer)
    return env, decode_message(answer[ENVELOPE_SIZE:], (env.major, env.minor))


def without_timestamp(value: HandleValue) -> HandleValue:
    return replace(value, timestamp=0)


def comparable_answer(env: Envelope, msg: Message) -> dict[str, Any]:
    """Everything of an answer that must not depend on which server gave it: the envelope, the header
    except ExpirationTime, the request digest, the body (values without their timestamps, site records
    whole) and the kind of credential (signatures themselves differ: other key, other time)."""
    h = msg.header
    body: Any = msg.body
    if isinstance(body, ResolutionResponse):
        body = (body.handle, [without_timestamp(v) for v in body.values])
    elif not isinstance(body, ErrorBody | SiteInfoResponse):
        body = type(body).__name__  # e.g. a challenge: its nonce is random
    credential = None if msg.credential is None else (msg.credential.type, msg.credential.digest_alg)
    return {"version": env.version, "suggested": env.suggested, "session": env.session_id,
            "request_id": env.request_id, "encrypted": env.encrypted, "opcode": h.opcode,
            "response_code": h.response_code, "flags": f"{h.flags:#010x}", "site_serial": h.site_serial,
            "recursion": h.recursion, "request_digest": msg.request_digest, "body": body,
            "credential": credential}

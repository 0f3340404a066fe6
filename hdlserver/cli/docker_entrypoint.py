"""``hdl-docker-entrypoint``: the entry point of the container image.

    hdl-docker-entrypoint [serve [hdl-server options]]   initialise on first start, then run the server
    hdl-docker-entrypoint init                           only initialise (no-op when already done)
    hdl-docker-entrypoint healthcheck                    resolve the server's own prefix handle
    hdl-docker-entrypoint COMMAND [ARGS]                 run another command (hdl-backup, hdl-export, sh ...)

The server directory is ``$HDL_SERVER_DIR`` (``/srv/handle`` in the image, a volume). On the first start
it has no ``config.dct`` and is created from the ``HDL_*`` variables below, without questions; on later
starts it is used as it is and the first-start variables are ignored (a note says so), so a restarted or
upgraded container keeps its keys, configuration and handles. An HDL_PREFIX that the directory does not serve
is an error, not a note: it means the wrong volume.

First start (``*_FILE`` variants read the value from a file, e.g. a Docker secret):
  HDL_PREFIX             required: the prefix(es) to home, e.g. ``20.500.12345`` (comma/space separated)
  HDL_PUBLIC_ADDRESS     required: the IP address clients reach the server at, written into the site
                         record (siteinfo.json); distinct from the bind address inside the container
  HDL_ADMIN_SECRET[_FILE]  and/or  HDL_ADMIN_PUBKEY[_FILE]: the administrator of ``0.NA/<prefix>``, as a
                         secret key (HS_SECKEY, index 300) and/or a public key in PEM or a Java public key
                         file (HS_PUBKEY, index 301); at least one is required
  HDL_BIND_ADDRESS       address the listeners bind to (default 0.0.0.0)
  HDL_PORT               UDP and TCP port, bound and advertised (default 2641)
  HDL_HTTP_PORT          HTTP interface port (default 8000; ``off`` for none)
  HDL_PARTITIONS         LMDB partitions of the store (default 4; fixed once created)
  HDL_METRICS            yes: answer GET /metrics (Prometheus) on the HTTP interface (default no)
  HDL_SERVER_ID, HDL_DESCRIPTION, HDL_CASE_SENSITIVE (yes/no), HDL_SAMPLE_HANDLE (yes/no)
Every start:
  HDL_SERVER_PASSPHRASE[_FILE]  passphrase of privkey.bin (on the first start: encrypt it with this)
  HDL_LOG_STDOUT         yes (default): logs to standard output for ``docker logs``; no: log files as
                         config.dct's log_save_config says, in the volume
  HDL_HEALTHCHECK_TIMEOUT  seconds the health check waits for the answer (default 5)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hdlserver.cli.common import fail
from hdlserver.cli.server import main as server_main
from hdlserver.client.resolver import HandleResponseError, Resolver
from hdlserver.config.dct import format_dct, load_dct
from hdlserver.config.settings import CONFIG_FILE_NAME, load_settings
from hdlserver.errors import HandleError
from hdlserver.setup import SetupOptions, read_admin_public_key, setup_server_dir
from hdlserver.wire.handles import NA_PREFIX, to_prefix_handle
from hdlserver.wire.site import address_from_text

PROG = "hdl-docker-entrypoint"
DEFAULT_SERVER_DIR = "/srv/handle"
DEFAULT_PORT = 2641
DEFAULT_HTTP_PORT = 8000
DEFAULT_HEALTHCHECK_TIMEOUT = 5  # seconds
PASSPHRASE_ENV = "HDL_SERVER_PASSPHRASE"  # also what hdl-server itself reads (hdlserver.serverdir)
FIRST_START_VARIABLES = ("HDL_PREFIX", "HDL_PUBLIC_ADDRESS", "HDL_ADMIN_SECRET", "HDL_ADMIN_SECRET_FILE",
                         "HDL_ADMIN_PUBKEY", "HDL_ADMIN_PUBKEY_FILE", "HDL_BIND_ADDRESS", "HDL_PORT",
                         "HDL_HTTP_PORT", "HDL_PARTITIONS", "HDL_SERVER_ID", "HDL_DESCRIPTION",
                         "HDL_CASE_SENSITIVE", "HDL_SAMPLE_HANDLE", "HDL_METRICS")
_YES = ("yes", "y", "true", "1", "on")
_NO = ("no", "n", "false", "0", "off")


class EnvError(Exception):
    """Environment variables that cannot initialise a server directory; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class _Env:
    """Reads HDL_* variables, collecting every problem instead of stopping at the first."""

    environ: dict[str, str]
    problems: list[str] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        """``name`` or the content of the file ``name_FILE`` (first one set wins; both set is an error)."""
        direct = self.environ.get(name)
        path = self.environ.get(f"{name}_FILE")
        if direct and path:
            self.problems.append(f"{name} and {name}_FILE are both set: use one")
            return None
        if path:
            try:
                content = Path(path).read_text(encoding="utf-8").strip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                self.problems.append(f"{name}_FILE: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
                return None
            if not content:
                self.problems.append(f"{name}_FILE: {path} is empty")
            return content or None
        return direct or None

    def is_set(self, name: str) -> bool:
        return bool(self.environ.get(name) or self.environ.get(f"{name}_FILE"))

    def raw_file(self, name: str) -> tuple[bytes, str] | None:
        """Bytes and a label of ``name`` (PEM text) or the file ``name_FILE`` (PEM or binary)."""
        direct = self.environ.get(name)
        path = self.environ.get(f"{name}_FILE")
        if direct and path:
            self.problems.append(f"{name} and {name}_FILE are both set: use one")
            return None
        if path:
            try:
                return Path(path).read_bytes(), path
            except OSError as exc:
                self.problems.append(f"{name}_FILE: cannot read {path}: {exc.strerror or exc}")
                return None
        return (direct.encode("utf-8"), name) if direct else None

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        text = self.environ.get(name, "").strip()
        if not text:
            return default
        if not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= high:
            self.problems.append(f"{name}={text!r} is not a number from {low} to {high}")
            return default
        return int(text)

    def flag(self, name: str, default: bool) -> bool:
        text = self.environ.get(name, "").strip().lower()
        if not text:
            return default
        if text in _YES:
            return True
        if text in _NO:
            return False
        self.problems.append(f"{name}={text!r} is not yes or no")
        return default


def server_dir_of(environ: dict[str, str]) -> Path:
    return Path(environ.get("HDL_SERVER_DIR") or DEFAULT_SERVER_DIR)


def prefixes_of(env: _Env) -> list[str]:
    return (env.text("HDL_PREFIX") or "").replace(",", " ").split()


def setup_options_from_env(environ: dict[str, str]) -> SetupOptions:
    """The ``SetupOptions`` the variables ask for; ``EnvError`` listing every missing or bad variable."""
    env = _Env(environ)
    prefixes = prefixes_of(env)
    if not prefixes:
        env.problems.append("HDL_PREFIX is required: the prefix to home, e.g. 20.500.12345")
    public_address = (env.text("HDL_PUBLIC_ADDRESS") or "").strip()
    if not public_address:
        env.problems.append("HDL_PUBLIC_ADDRESS is required: the IP address clients use to reach this server "
                            "(it goes into the site record)")
    else:
        try:
            address_from_text(public_address)
        except ValueError:
            env.problems.append(f"HDL_PUBLIC_ADDRESS={public_address!r} is not an IP address")
    secret = env.text("HDL_ADMIN_SECRET")
    admin_public_key = None
    key_source = env.raw_file("HDL_ADMIN_PUBKEY")
    if key_source is not None:
        try:
            admin_public_key = read_admin_public_key(*key_source)
        except HandleError as exc:
            env.problems.append(f"HDL_ADMIN_PUBKEY: {exc}")
    if not env.is_set("HDL_ADMIN_SECRET") and not env.is_set("HDL_ADMIN_PUBKEY"):
        env.problems.append("an administrator is required: set HDL_ADMIN_SECRET (or HDL_ADMIN_SECRET_FILE) "
                            "and/or HDL_ADMIN_PUBKEY (PEM text) or HDL_ADMIN_PUBKEY_FILE (PEM or Java key file)")
    bind_address = (environ.get("HDL_BIND_ADDRESS") or "0.0.0.0").strip()
    port = env.integer("HDL_PORT", DEFAULT_PORT, 1, 65535)
    http_text = environ.get("HDL_HTTP_PORT", "").strip().lower()
    http_port = None if http_text in _NO else env.integer("HDL_HTTP_PORT", DEFAULT_HTTP_PORT, 1, 65535)
    if http_port is not None and http_port == port:
        env.problems.append(f"HDL_HTTP_PORT and HDL_PORT are both {port}")
    if env.flag("HDL_METRICS", False) and http_port is None:
        env.problems.append("HDL_METRICS=yes serves /metrics on the HTTP interface, but HDL_HTTP_PORT is off")
    options = SetupOptions(
        server_dir=server_dir_of(environ), prefixes=prefixes, bind_address=bind_address,
        public_address=public_address, port=port, http_port=http_port,
        server_id=env.integer("HDL_SERVER_ID", 1, 1, 2**31 - 1),
        description=environ.get("HDL_DESCRIPTION") or "hdlserver",
        admin_secret=secret, admin_key=False, admin_public_key=admin_public_key,
        partitions=env.integer("HDL_PARTITIONS", 4, 1, 256),
        case_sensitive=env.flag("HDL_CASE_SENSITIVE", False),
        sample_handle=env.flag("HDL_SAMPLE_HANDLE", False),
    )
    passphrase = env.text(PASSPHRASE_ENV)
    options.server_key_passphrase = passphrase.encode("utf-8") if passphrase else None
    if env.problems:
        raise EnvError(env.problems)
    return options


def check_existing(environ: dict[str, str], server_dir: Path) -> None:
    """EnvError when HDL_PREFIX names a prefix the existing directory does not serve (the wrong volume)."""
    env = _Env(environ)
    wanted = prefixes_of(env)
    if not wanted:
        return
    try:
        settings = load_settings(server_dir)
    except (HandleError, OSError):
        return  # hdl-server reports an unreadable configuration with its file and line
    served = {to_prefix_handle(p.encode("utf-8")) for p in settings.server.auto_homed_prefixes}
    foreign = [p for p in wanted if to_prefix_handle(p.encode("utf-8")) not in served]
    if foreign:
        own = sorted(h.decode("utf-8", "replace") for h in served if h != NA_PREFIX + b"0.NA")
        serves = ", ".join(own) or "no prefix"
        raise EnvError([f"HDL_PREFIX names {', '.join(foreign)}, but {server_dir} was initialised for {serves}: "
                        f"mount the volume of that prefix, or unset HDL_PREFIX to serve this one"])


def enable_metrics_in_config(server_dir: Path) -> None:
    """Set ``server_config.enable_metrics = yes`` in a config.dct just written (replaced atomically)."""
    path = server_dir / CONFIG_FILE_NAME
    config = load_dct(path)
    config["server_config"]["enable_metrics"] = "yes"  # type: ignore[index]
    fd, temporary = tempfile.mkstemp(prefix=".config.", dir=server_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(format_dct(config))
    os.replace(temporary, path)


def initialise(environ: dict[str, str]) -> bool:
    """Create the server directory from the variables unless it exists; returns whether it was created."""
    server_dir = server_dir_of(environ)
    if (server_dir / "config.dct").exists():
        check_existing(environ, server_dir)
        ignored = [name for name in FIRST_START_VARIABLES if environ.get(name)]
        if ignored:
            print(f"{PROG}: {server_dir} is already initialised; ignoring the first-start settings "
                  f"{', '.join(ignored)}", file=sys.stderr, flush=True)
        return False
    options = setup_options_from_env(environ)
    result = setup_server_dir(options)
    if _Env(environ).flag("HDL_METRICS", False):
        enable_metrics_in_config(server_dir)
    print(f"{PROG}: initialised {result.server_dir}: prefixes {', '.join(result.prefix_handles)}, "
          f"administrators {', '.join(result.admin_identities)}, advertised at {options.public_address} "
          f"port {options.port}", file=sys.stderr, flush=True)
    return True


def _server_argv(environ: dict[str, str], extra: list[str]) -> list[str]:
    """hdl-server's arguments from the every-start variables; EnvError for a bad or contradictory one."""
    env = _Env(environ)
    argv = [str(server_dir_of(environ))]
    if env.flag("HDL_LOG_STDOUT", True):
        argv.append("--log-stdout")
    passphrase_file = environ.get(f"{PASSPHRASE_ENV}_FILE")
    if passphrase_file and environ.get(PASSPHRASE_ENV):
        env.problems.append(f"{PASSPHRASE_ENV} and {PASSPHRASE_ENV}_FILE are both set: use one")
    if passphrase_file:
        argv += ["--passphrase-file", passphrase_file]
    if env.problems:
        raise EnvError(env.problems)
    return argv + extra


def serve(environ: dict[str, str], extra: list[str]) -> int:
    try:
        argv = _server_argv(environ, extra)  # checked first: bad variables create nothing
        initialise(environ)
    except EnvError as exc:
        return _report_env(environ, exc)
    except (HandleError, OSError, ValueError) as exc:
        return fail(f"cannot initialise {server_dir_of(environ)}: {exc}")
    return server_main(argv)


def init_only(environ: dict[str, str]) -> int:
    try:
        initialise(environ)
    except EnvError as exc:
        return _report_env(environ, exc)
    except (HandleError, OSError, ValueError) as exc:
        return fail(f"cannot initialise {server_dir_of(environ)}: {exc}")
    return 0


def _report_env(environ: dict[str, str], exc: EnvError) -> int:
    print(f"error: the HDL_* variables cannot be used with the server directory {server_dir_of(environ)}:",
          file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def healthcheck(environ: dict[str, str]) -> int:
    """Exit 0 when the server answers a resolution of its own prefix handle over TCP on loopback."""
    server_dir = server_dir_of(environ)
    env = _Env(environ)
    timeout = env.integer("HDL_HEALTHCHECK_TIMEOUT", DEFAULT_HEALTHCHECK_TIMEOUT, 1, 300)
    if env.problems:
        return fail(f"unhealthy: {'; '.join(env.problems)}")
    try:
        settings = load_settings(server_dir)
    except (HandleError, OSError) as exc:
        return fail(f"unhealthy: cannot read the configuration: {exc}")
    tcp = next((i for i in settings.interfaces if i.kind == "tcp"), None)
    if tcp is None:
        return fail("unhealthy: config.dct has no TCP interface to check")
    host = tcp.bind_address or "127.0.0.1"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host)
    prefixes = [to_prefix_handle(p.encode("utf-8")) for p in settings.server.auto_homed_prefixes]
    prefixes = [p for p in prefixes if p != NA_PREFIX + b"0.NA"]
    if not prefixes:
        return fail("unhealthy: config.dct lists no prefix in server_config.auto_homed_prefixes to resolve")
    handle = prefixes[0]
    try:
        Resolver([(host, tcp.bind_port)], udp=False, tcp_timeout=timeout).resolve(handle)
    except HandleResponseError as exc:
        return fail(f"unhealthy: {handle.decode('utf-8', 'replace')} answered with an error: {exc}")
    except (HandleError, OSError) as exc:
        return fail(f"unhealthy: no answer from {host} port {tcp.bind_port}: {exc}")
    print(f"healthy: {handle.decode('utf-8', 'replace')} resolved at {host} port {tcp.bind_port}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ)
    command = args[0] if args else "serve"
    if command in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if command == "serve":
        return serve(environ, args[1:])
    if command == "init":
        return init_only(environ)
    if command == "healthcheck":
        return healthcheck(environ)
    try:
        os.execvp(command, args)
    except OSError as exc:
        return fail(f"cannot run {command}: {exc.strerror or exc}", 127)
    return 0  # not reached: exec replaced the process


if __name__ == "__main__":
    raise SystemExit(main())

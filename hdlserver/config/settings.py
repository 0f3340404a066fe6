"""Typed server settings built from ``config.dct`` (server.md 3, 12.3; auth.md 6.7; replication.md 1).

Every key the Java 9.2 server reads has a field here with Java's default, and Java's leniency is kept where
it matters for existing server directories:

* a value that is not a yes/no word leaves a boolean at its default (Java's getBoolean), with a warning;
* integers Java falls back from when unparsable (thread counts, ``max_auth_time``, ``max_session_time``,
  ``replication_interval`` ...) fall back too, with a warning;
* what makes Java abort at startup raises ConfigError with the file, the line and the reason: a missing
  ``interfaces``, ``server_config``, ``this_server_id`` or ``bind_port``, a label without its
  ``<label>_config`` table, a bad ``bind_port``, ``backlog`` or ``tcp_timeout``, an admin list that is not a
  list, a bad ``encryption_alg`` or ``log_save_interval``.

Warnings are collected in ``Settings.warnings`` (``"path:line: message"``) for the server to log at startup.
The parsed table is kept in ``Settings.raw`` so keys this module does not know survive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from hdlserver.config.dct import (
    JAVA_INT_MAX,
    JAVA_INT_MIN,
    JAVA_LONG_MAX,
    DctDocument,
    DctPath,
    DctTable,
    DctValue,
    dct_int,
    dct_optional_bool,
    java_trim,
    load_dct_document,
)
from hdlserver.errors import ConfigError

CONFIG_FILE_NAME = "config.dct"

InterfaceKind = Literal["udp", "tcp", "http"]
LogInterval = Literal["Never", "Monthly", "Weekly", "Daily"]
EncryptionAlg = Literal["aes", "des", "desede"]
ClientAuthMode = Literal["false", "want", "need"]
ReplicationAuthKind = Literal["privatekey", "secretkey"]

_INTERFACE_KINDS: tuple[tuple[str, InterfaceKind], ...] = (
    ("hdl_udp", "udp"),
    ("hdl_tcp", "tcp"),
    ("hdl_http", "http"),
)
# Java's DNS front end; listed labels are reported, not served.
_UNSUPPORTED_INTERFACE_PREFIXES = ("dns_udp", "dns_tcp")
_LOG_INTERVALS: tuple[LogInterval, ...] = ("Never", "Monthly", "Weekly", "Daily")
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_ENCRYPTION_ALGS: tuple[EncryptionAlg, ...] = ("aes", "des", "desede")
_CLIENT_AUTH_MODES: tuple[ClientAuthMode, ...] = ("false", "want", "need")
_REPLICATION_AUTH_KINDS: tuple[ReplicationAuthKind, ...] = ("privatekey", "secretkey")
_JAVA_DEFAULT_BACKLOG = 50
_MAX_PORT = 65535
_MAX_STORAGE_PARTITIONS = 256


@dataclass(frozen=True, slots=True)
class InterfaceConfig:
    """One listener: an ``interfaces`` label with its ``<label>_config`` table (server.md 3.2).

    Whether the interface serves queries and/or admin requests is not configured here: it comes from the
    HS_SITE interface entry with the same protocol and port (wire.md 12.3).
    """

    label: str  # e.g. "hdl_tcp", "hdl_udp4", "hdl_https"; the prefix selects the kind
    kind: InterfaceKind
    bind_port: int  # ``bind_port``, required; 0 asks the OS for a free port
    bind_address: str | None = None  # ``bind_address``; None = all addresses
    https: bool = False  # http only: the label contains "https" or ``https = yes``
    num_threads: int = 10  # ``num_threads``: Java worker threads (a sizing hint for us)
    max_handlers: int = 200  # ``max_handlers``: Java's maximum worker threads
    backlog: int = _JAVA_DEFAULT_BACKLOG  # ``backlog``: TCP listen backlog; <= 0 means Java's default 50
    max_idle_time_ms: int = 300_000  # ``max_idle_time``: TCP read timeout in milliseconds
    log_accesses: bool = False  # ``log_accesses``: write access-log lines for this interface
    # http-only keys (connector table):
    http_only: bool = False  # ``http_only``: no TLS detection on the port
    redirect_port: int = 0  # ``redirect_port``: port that HTTP requests needing TLS are redirected to
    # ``https_default_self_signed_cert``: use serverCertificate.pem rather than a keystore
    https_default_self_signed_cert: bool = True
    https_keystore_file: str | None = None  # ``https_keystore_file`` (when not self-signed)
    https_keystore_password: str | None = None  # ``https_keystore_password``
    https_key_password: str | None = None  # ``https_key_password``
    https_alias: str | None = None  # ``https_alias``
    https_client_auth: ClientAuthMode = "false"  # ``https_client_auth``: request client certificates
    enable_trace: bool = True  # ``enable_trace``: allow HTTP TRACE (off if any connector turns it off)


@dataclass(frozen=True, slots=True)
class LogSaveConfig:
    """``log_save_config``: log rotation (server.md 12.3)."""

    interval: LogInterval = "Never"  # ``log_save_interval`` (any case): when to start new log files
    weekday: str = "Sunday"  # ``log_save_weekday``: English weekday for Weekly (exact case, else Sunday)
    directory: str = "logs"  # ``log_save_directory``: relative to the server directory, or absolute
    redirect_stderr: bool = True  # ``log_redirect_stderr``: send standard error into error.log


@dataclass(frozen=True, slots=True)
class HttpServerConfig:
    """``server_config.http_config``: the HTTP front end shared by all HTTP connectors (server.md 3.3)."""

    enable_proxy: bool = True  # ``enable_proxy``: serve the hdl proxy pages at /
    enable_root_web_app: bool = True  # ``enable_root_web_app``: serve the root web app (REST API) at all
    enable_trace: bool = True  # ``enable_trace``: allow HTTP TRACE
    headers: tuple[tuple[str, str], ...] = ()  # ``headers``: table of extra response headers
    session_timeout_seconds: int = 1800  # ``session_timeout_seconds``: REST API session idle timeout
    robots_txt: str | None = None  # ``robots_txt``: file served for /robots.txt
    favicon: str | None = None  # ``favicon``: file served for /favicon.ico
    remote_address_header: str | None = None  # ``remote_address_header``, e.g. X-Forwarded-For
    remote_address_internal_proxies: tuple[str, ...] = ()  # ``remote_address_internal_proxies``: CIDRs


@dataclass(frozen=True, slots=True)
class ServletContainerConfig:
    """Top-level ``servlet_container_config``; its ``connectors``/``http_config``/``https_config`` tables
    become HTTP entries of ``Settings.interfaces``."""

    log_accesses: bool = False  # ``log_accesses``: access-log every HTTP connector
    enable_root_web_app: bool = True  # ``enable_root_web_app``
    enable_trace: bool = True  # ``enable_trace``


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Top-level keys for the server's internal handle client (server.md 3.1)."""

    no_udp_resolution: bool = False  # ``no_udp_resolution``: the client prefers TCP and HTTP
    tcp_timeout_ms: int | None = None  # ``tcp_timeout``: client TCP timeout, ms; None = client default
    trace_resolution: bool = False  # ``trace_resolution``: log outgoing messages
    trace_outgoing_messages: bool = False  # ``trace_outgoing_messages``: same
    site_filter_keywords: tuple[str, ...] | None = None  # ``site_filter_keywords``: list or space-separated
    ipv6_fast_fallback: bool = True  # ``ipv6_fast_fallback``


@dataclass(frozen=True, slots=True)
class ReplicationAuth:
    """``replication_authentication``: ``privatekey:<index>:<handle>`` or ``secretkey:<index>:<handle>``."""

    kind: ReplicationAuthKind  # key in replpriv.bin, or the bytes of replsec.bin
    index: int
    handle: str


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """``server_config`` (server.md 3.3, auth.md 6, replication.md 1); time units are the Java code's."""

    this_server_id: int  # ``this_server_id``, required: selects this server's entry in the site record
    # -- authorization (auth.md 6): admin lists are "index:handle" texts as written
    server_admins: tuple[str, ...] = ()  # ``server_admins``
    server_admin_full_access: bool = False  # ``server_admin_full_access``: server admins may do anything
    anonymous_admin_full_access: bool = False  # ``anonymous_admin_full_access``: no authentication at all
    home_only_admins: tuple[str, ...] = ()  # ``home_only_admins``: home/unhome/list homed prefixes
    status_handle_admins: tuple[str, ...] = ()  # ``status_handle_admins``: may resolve 0.SITE/status
    backup_admins: tuple[str, ...] = ()  # ``backup_admins``: BACKUP_SERVER
    replication_admins: tuple[str, ...] = ()  # ``replication_admins``: RETRIEVE_TXN_LOG, DUMP_HANDLES
    # Java: present but not a yes/no word -> false (it defaults only an absent key to true).
    allow_na_admins: bool = True  # ``allow_na_admins``: consult the prefix handle's HS_ADMINs
    allow_list_hdls: bool = True  # ``allow_list_hdls``: LIST_HANDLES enabled (same quirk)
    require_sessions: bool = False  # ``require_sessions``: admin requests must use a session
    case_sensitive: bool = False  # ``case_sensitive``: handles are not ASCII-upper-cased for lookup
    max_auth_time_ms: int = 20_000  # ``max_auth_time``: challenge lifetime, **milliseconds**
    max_session_time_s: int = 86_400  # ``max_session_time``: session idle timeout, **seconds**, min 60
    encryption_alg: EncryptionAlg = "aes"  # ``encryption_alg``: DH session cipher
    # -- resolution
    allow_recursion: bool = False  # ``allow_recursion``: resolve other services' handles for clients
    # ``perform_recursion_for_legacy_prefix_referral``: resolve referred prefixes for old clients
    # (server.md 7.3). Java: present but not a yes/no word -> false.
    perform_recursion_for_legacy_prefix_referral: bool = True
    enable_status_handle: bool = True  # ``enable_status_handle``: serve 0.SITE/status
    enable_monitor_daemon: bool = False  # ``enable_monitor_daemon``: system statistics in 0.SITE/status
    enable_homed_prefix_na_lookup_optimization: bool = True  # ``enable_homed_prefix_na_lookup_optimization``
    auto_homed_prefixes: tuple[str, ...] = ()  # ``auto_homed_prefixes``: homed at startup on primaries
    template_delimiter: str = ""  # ``template_delimiter`` (trimmed): server-side template handles
    namespace: str | None = None  # ``namespace``: HS_NAMESPACE XML text
    template_ns_override: bool = False  # ``template_ns_override``
    preferred_global: str | None = None  # ``preferred_global``: preferred global server (IP text)
    auto_update_root_info: bool = True  # ``auto_update_root_info``: internal client refreshes root info
    trace_outgoing_messages: bool = False  # ``trace_outgoing_messages``: debugging
    trace_resolution: bool = False  # ``trace_resolution``: debugging
    # -- storage (Java's choices; our store reads what applies to it)
    storage_type: str | None = None  # ``storage_type``: None = Java's choice (jdb if handles.jdb, else bdbje)
    storage_class: str | None = None  # ``storage_class``: custom storage class
    storage_config: DctTable | None = field(default=None, compare=False, hash=False)  # ``storage_config``
    sql_settings: DctTable | None = field(default=None, compare=False, hash=False)  # ``sql_settings``
    # ``db_directory``: the handle store's directory, relative to the server directory. Java's default is
    # bdbje (its BDB JE store); ours is hdldb (hdlserver.store.lmdb_store.DEFAULT_DB_DIRECTORY) so that a
    # migrated Java directory never has LMDB files mixed into its bdbje/.
    db_directory: str = "hdldb"
    bdbje_no_sync_on_write: bool = False  # ``bdbje_no_sync_on_write``
    bdbje_timeout: int | None = None  # ``bdbje_timeout``; None = library default
    bdbje_enable_status_handle: bool = True  # ``bdbje_enable_status_handle``: storage figures in status
    bdbje_dump_on_checkpoint: bool = False  # ``bdbje_dump_on_checkpoint``
    enable_recovery_log: bool = False  # ``enable_recovery_log``
    # -- transaction queue and replication (replication.md 1)
    # Java: present but not a yes/no word -> false.
    enable_txn_queue: bool = True  # ``enable_txn_queue``: keep a transaction queue
    txnlog_num_days_to_keep: int = 0  # ``txnlog_num_days_to_keep``: prune older entries; 0 = forever
    read_only_txn_queue: bool = False  # ``read_only_txn_queue``
    file_write_no_sync: bool = False  # ``file_write_no_sync``: no fsync for txnstat.dct
    do_replication: bool | None = None  # ``do_replication``; None = multi-primary or not primary (site)
    replication_keep_other_transactions: bool = True  # ``replication_keep_other_transactions``
    replication_interval_ms: int = 30_000  # ``replication_interval``: pause between pull rounds
    replication_start_time: str | None = None  # ``replication_start_time``: align rounds to this time
    replication_timeout_ms: int = 300_000  # ``replication_timeout``: socket timeout for pulls
    replication_authentication: ReplicationAuth | None = None  # ``replication_authentication``
    replication_sites_handle: str | None = None  # ``replication_sites_handle`` ("" = unset)
    replication_site_handle_value: str | None = None  # ``replication_site_handle_value``: index:handle
    replication_pull_other_transactions: bool = False  # ``replication_pull_other_transactions``
    replication_accept_prefixes: tuple[str, ...] | None = None  # ``replication_accept_prefixes``; None = all
    # -- HTTP front end
    http_config: HttpServerConfig = HttpServerConfig()  # ``http_config``
    # -- hdlserver's own keys (not read by Java)
    # ``storage_partitions``: LMDB partitions of a new store (default 4); None when absent, so that an
    # existing store opens with the count it recorded.
    storage_partitions: int | None = None
    # ``java_compatible_early_errors``: no = errors before a request is decoded echo its request id;
    # yes = answer them as Java does, with RequestId -1.
    java_compatible_early_errors: bool = False
    max_udp_pending: int = 1024  # ``max_udp_pending``: UDP requests queued or in progress before dropping
    max_tcp_connections: int = 1000  # ``max_tcp_connections``: open TCP connections before refusing
    # ``resolution_cache_entries``: records and answer templates kept for the resolution hot path (each;
    # 0 = none). More than the handles resolved again and again keeps them all answered from memory.
    resolution_cache_entries: int = 16_384


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole ``config.dct`` of a server directory."""

    server_type: str  # ``server_type``: always "server" (caching servers are out of scope)
    interfaces: tuple[InterfaceConfig, ...]  # from ``interfaces`` (+ servlet_container_config connectors)
    server: ServerConfig  # ``server_config``
    log_save: LogSaveConfig | None  # ``log_save_config``; None = absent (see ``logging``)
    raw: DctTable = field(compare=False, hash=False)  # the parsed file, unknown keys included
    path: str = CONFIG_FILE_NAME  # the file the settings came from (for messages)
    client: ClientConfig = ClientConfig()  # internal handle client keys
    servlet_container: ServletContainerConfig | None = None  # ``servlet_container_config``
    unsupported_interfaces: tuple[str, ...] = ()  # listed labels we do not serve (dns_udp*, dns_tcp*)
    warnings: tuple[str, ...] = ()  # "path:line: message" for values Java would have defaulted
    lines: Mapping[DctPath, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def logging(self) -> LogSaveConfig:
        """The rotation settings in effect (Java's defaults when ``log_save_config`` is absent)."""
        return self.log_save if self.log_save is not None else LogSaveConfig()

    def line_of(self, *keys: str | int) -> int | None:
        """Line of the value at ``keys`` in the file, for messages about keys this module does not read."""
        return self.lines.get(tuple(keys))


def load_settings(server_dir: Path) -> Settings:
    """Read ``<server_dir>/config.dct``; ConfigError with file, line and reason when it cannot be used."""
    document = load_dct_document(Path(server_dir) / CONFIG_FILE_NAME)
    return settings_from_document(document)


def settings_from_dct(table: DctTable, path: str = CONFIG_FILE_NAME) -> Settings:
    """Settings from an already parsed table (no line numbers in messages)."""
    return settings_from_document(DctDocument(table=table, path=path))


def settings_from_document(document: DctDocument) -> Settings:
    """Settings from a parsed document, reporting lines from its side table."""
    top = _Table(document, document.table, (), "", [])
    server_type = top.string("server_type", "server")
    if server_type == "cache":
        raise top.error("server_type", "caching servers (server_type = cache) are not supported")
    if server_type != "server":
        raise top.error("server_type", f'server_type must be "server", got {server_type!r}')
    server_table = top.table("server_config")
    if server_table is None:
        raise top.error(None, 'the "server_config" table is required')
    server = _server_config(server_table)
    listed, unsupported = _listed_interfaces(top)
    for label in unsupported:
        top.warn("interfaces", f"interface {label!r} (DNS) is not supported; it will not be started")
    servlet_table = top.table("servlet_container_config")
    servlet = _servlet_container_config(servlet_table) if servlet_table is not None else None
    connectors = _servlet_connectors(servlet_table) if servlet_table is not None else []
    log_table = top.table("log_save_config")
    log_save = _log_save_config(log_table) if log_table is not None else None
    client = _client_config(top)
    # Built last: every reader above may have added warnings.
    return Settings(
        server_type=server_type,
        interfaces=tuple(listed + connectors),
        server=server,
        log_save=log_save,
        raw=document.table,
        path=document.path,
        client=client,
        servlet_container=servlet,
        unsupported_interfaces=tuple(unsupported),
        warnings=tuple(top.warnings),
        lines=document.lines,
    )


class _Table:
    """Typed access to one table of the document, with the key's line in every error and warning."""

    def __init__(
        self,
        document: DctDocument,
        table: Mapping[str, DctValue],
        where: DctPath,
        name: str,
        warnings: list[str],
    ) -> None:
        self._document = document
        self._table = table
        self._where = where
        self.name = name
        self.warnings = warnings

    @property
    def path(self) -> str:
        return self._document.path

    def entry_names(self) -> list[str]:
        return list(self._table)

    def qualified(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def line(self, key: str | None) -> int | None:
        line = self._document.lines.get((*self._where, key)) if key is not None else None
        return line if line is not None else self._document.lines.get(self._where)

    def error(self, key: str | None, reason: str) -> ConfigError:
        return ConfigError(reason, self._document.path, self.line(key))

    def warn(self, key: str | None, message: str) -> None:
        line = self.line(key)
        where = f"{self._document.path}:{line}" if line is not None else self._document.path
        self.warnings.append(f"{where}: {message}")

    def get(self, key: str) -> DctValue | None:
        return self._table.get(key)

    def table(self, key: str) -> _Table | None:
        value = self.raw_table(key)
        if value is None:
            return None
        return _Table(self._document, value, (*self._where, key), self.qualified(key), self.warnings)

    def raw_table(self, key: str) -> DctTable | None:
        value = self._table.get(key)
        if value is None or isinstance(value, dict):
            return value
        raise self.error(key, f"{self.qualified(key)} must be a table {{ ... }}, got {_kind(value)}")

    def tables(self, key: str) -> list[_Table] | None:
        """A list of tables ``( { ... } { ... } )``; None when absent."""
        value = self._table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(key, f"{self.qualified(key)} must be a list of tables, got {_kind(value)}")
        tables: list[_Table] = []
        for index, item in enumerate(value):
            name = f"{self.qualified(key)}[{index}]"
            if not isinstance(item, dict):
                raise self.error(key, f"{name} must be a table, got {_kind(item)}")
            tables.append(_Table(self._document, item, (*self._where, key, index), name, self.warnings))
        return tables

    def string(self, key: str, default: str) -> str:
        value = self.optional_string(key)
        return default if value is None else value

    def optional_string(self, key: str) -> str | None:
        value = self._table.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.error(key, f"{self.qualified(key)} must be a string, got {_kind(value)}")

    def flag(self, key: str, default: bool, *, unparsable: bool | None = None) -> bool:
        """A yes/no value; other words give ``unparsable`` (or ``default``), as Java's getBoolean does."""
        value = self._table.get(key)
        if value is None:
            return default
        choice = dct_optional_bool(value)
        if choice is not None:
            return choice
        fallback = default if unparsable is None else unparsable
        self.warn(key, f"{self.qualified(key)} is not yes/no (got {_kind(value)}); using {_yes_no(fallback)}")
        return fallback

    def optional_flag(self, key: str) -> bool | None:
        value = self._table.get(key)
        choice = dct_optional_bool(value)
        if value is not None and choice is None:
            self.warn(key, f"{self.qualified(key)} is not yes/no (got {_kind(value)}); using the default")
        return choice

    def integer(
        self,
        key: str,
        default: int,
        *,
        trim: bool = False,
        minimum: int = JAVA_INT_MIN,
        maximum: int = JAVA_INT_MAX,
    ) -> int:
        """An integer that must parse (Java aborts on it)."""
        return dct_int(
            self._table.get(key),
            default,
            key=self.qualified(key),
            path=self._document.path,
            line=self.line(key),
            trim=trim,
            minimum=minimum,
            maximum=maximum,
        )

    def lenient_integer(
        self,
        key: str,
        default: int,
        *,
        trim: bool = False,
        minimum: int = JAVA_INT_MIN,
        maximum: int = JAVA_INT_MAX,
    ) -> int:
        """An integer Java replaces by its default (logging it) when it does not parse or is out of range."""
        try:
            return self.integer(key, default, trim=trim, minimum=minimum, maximum=maximum)
        except ConfigError as e:
            self.warn(key, f"{e.reason}; using {default}")
            return default

    def optional_integer(
        self, key: str, *, minimum: int = JAVA_INT_MIN, maximum: int = JAVA_INT_MAX
    ) -> int | None:
        """An integer that must parse when present; None when absent."""
        return self.integer(key, 0, minimum=minimum, maximum=maximum) if key in self._table else None

    def required_integer(self, key: str, *, minimum: int = JAVA_INT_MIN, maximum: int = JAVA_INT_MAX) -> int:
        if key not in self._table:
            raise self.error(None, f"{self.qualified(key)} is required")
        return self.integer(key, 0, minimum=minimum, maximum=maximum)

    def strings(self, key: str) -> tuple[str, ...] | None:
        """A list of strings ``( "a" "b" )``; None when absent."""
        value = self._table.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.error(key, f"{self.qualified(key)} must be a list ( ... ), got {_kind(value)}")
        items: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise self.error(key, f"{self.qualified(key)} must hold strings, got {_kind(item)}")
            items.append(item)
        return tuple(items)


def _kind(value: DctValue) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"the string {value!r}"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _listed_interfaces(top: _Table) -> tuple[list[InterfaceConfig], list[str]]:
    labels = top.strings("interfaces")
    if labels is None:
        raise top.error(None, 'no "interfaces" specified (a list of labels such as "hdl_udp" "hdl_tcp")')
    if not labels:
        raise top.error("interfaces", '"interfaces" is empty: list at least one interface label')
    interfaces: list[InterfaceConfig] = []
    unsupported: list[str] = []
    seen: set[str] = set()
    for label in labels:
        if label in seen:
            raise top.error("interfaces", f"interface {label!r} is listed twice")
        seen.add(label)
        if label.startswith(_UNSUPPORTED_INTERFACE_PREFIXES):
            unsupported.append(label)
            continue
        kind = next((k for prefix, k in _INTERFACE_KINDS if label.startswith(prefix)), None)
        if kind is None:
            reason = f"invalid interface type {label!r}: a label starts with hdl_udp, hdl_tcp or hdl_http"
            raise top.error("interfaces", reason)
        table = top.table(f"{label}_config")
        if table is None:
            raise top.error("interfaces", f"interface {label!r} has no {label}_config table")
        interfaces.append(_interface(label, kind, table, https="https" in label))
    return interfaces, unsupported


def _interface(label: str, kind: InterfaceKind, t: _Table, *, https: bool = False) -> InterfaceConfig:
    bind_port = t.required_integer("bind_port", minimum=0, maximum=_MAX_PORT)
    backlog = t.integer("backlog", _JAVA_DEFAULT_BACKLOG)
    interface = InterfaceConfig(
        label=label,
        kind=kind,
        bind_port=bind_port,
        bind_address=t.optional_string("bind_address"),
        num_threads=t.lenient_integer("num_threads", 10, minimum=1),
        max_handlers=t.lenient_integer("max_handlers", 200, minimum=1),
        backlog=backlog if backlog > 0 else _JAVA_DEFAULT_BACKLOG,
        max_idle_time_ms=t.lenient_integer("max_idle_time", 300_000, minimum=0),
        log_accesses=t.flag("log_accesses", False),
    )
    if kind != "http":
        return interface
    written = t.string("https_client_auth", "false")
    client_auth = next((m for m in _CLIENT_AUTH_MODES if m == written.lower()), None)
    if client_auth is None:
        t.warn("https_client_auth", f"{t.qualified('https_client_auth')} is not false/want/need; using false")
        client_auth = "false"
    return replace(
        interface,
        https=https or t.flag("https", False),
        http_only=t.flag("http_only", False),
        redirect_port=t.lenient_integer("redirect_port", 0, minimum=0, maximum=_MAX_PORT),
        https_default_self_signed_cert=t.flag("https_default_self_signed_cert", True),
        https_keystore_file=t.optional_string("https_keystore_file"),
        https_keystore_password=t.optional_string("https_keystore_password"),
        https_key_password=t.optional_string("https_key_password"),
        https_alias=t.optional_string("https_alias"),
        https_client_auth=client_auth,
        enable_trace=t.flag("enable_trace", True),
    )


def _servlet_connectors(servlet: _Table) -> list[InterfaceConfig]:
    """HTTP listeners of servlet_container_config: its connectors list, http_config and https_config."""
    connectors = [_interface(t.name, "http", t) for t in servlet.tables("connectors") or []]
    for key, https in (("http_config", False), ("https_config", True)):
        table = servlet.table(key)
        if table is not None:
            connectors.append(_interface(table.name, "http", table, https=https))
    return connectors


def _servlet_container_config(t: _Table) -> ServletContainerConfig:
    return ServletContainerConfig(
        log_accesses=t.flag("log_accesses", False),
        enable_root_web_app=t.flag("enable_root_web_app", True),
        enable_trace=t.flag("enable_trace", True),
    )


def _log_save_config(t: _Table) -> LogSaveConfig:
    written = t.string("log_save_interval", "Never")
    interval = next((i for i in _LOG_INTERVALS if i.lower() == written.lower()), None)
    if interval is None:
        raise t.error(
            "log_save_interval",
            f"invalid {t.qualified('log_save_interval')} {written!r}: use Never, Monthly, Weekly or Daily",
        )
    weekday = t.string("log_save_weekday", "Sunday")
    if weekday not in _WEEKDAYS:
        if interval == "Weekly":
            message = f"{t.qualified('log_save_weekday')} {weekday!r} is not a weekday; using Sunday"
            t.warn("log_save_weekday", message)
        weekday = "Sunday"
    return LogSaveConfig(
        interval=interval,
        weekday=weekday,
        directory=t.string("log_save_directory", "logs"),
        redirect_stderr=t.flag("log_redirect_stderr", True),
    )


def _client_config(top: _Table) -> ClientConfig:
    keywords: tuple[str, ...] | None
    value = top.get("site_filter_keywords")
    if value is None:
        keywords = None
    elif isinstance(value, str):
        keywords = tuple(value.split())
    else:
        keywords = top.strings("site_filter_keywords")
    return ClientConfig(
        no_udp_resolution=top.flag("no_udp_resolution", False),
        tcp_timeout_ms=top.optional_integer("tcp_timeout", minimum=0),
        trace_resolution=top.flag("trace_resolution", False),
        trace_outgoing_messages=top.flag("trace_outgoing_messages", False),
        site_filter_keywords=keywords,
        ipv6_fast_fallback=top.flag("ipv6_fast_fallback", True),
    )


def _encryption_alg(t: _Table) -> EncryptionAlg:
    written = t.string("encryption_alg", "aes")
    alg = java_trim(written).lower()
    for known in _ENCRYPTION_ALGS:
        if alg == known:
            return known
    reason = f"invalid {t.qualified('encryption_alg')} {written!r}: use aes, des or desede"
    raise t.error("encryption_alg", reason)


def _replication_auth(t: _Table) -> ReplicationAuth | None:
    text = t.optional_string("replication_authentication")
    if text is None:
        return None
    fields = text.split(":", 2)
    if len(fields) < 3 or not fields[2]:
        raise t.error(
            "replication_authentication",
            f"invalid {t.qualified('replication_authentication')} {text!r}: "
            "use privatekey:<index>:<handle> or secretkey:<index>:<handle>",
        )
    kind = next((k for k in _REPLICATION_AUTH_KINDS if k == fields[0]), None)
    if kind is None:
        raise t.error(
            "replication_authentication",
            f"unknown authentication type {fields[0]!r} in {t.qualified('replication_authentication')}: "
            "use privatekey or secretkey",
        )
    index = dct_int(
        fields[1],
        0,
        key=f"the index in {t.qualified('replication_authentication')}",
        path=t.path,
        line=t.line("replication_authentication"),
    )
    return ReplicationAuth(kind=kind, index=index, handle=fields[2])


def _http_server_config(t: _Table) -> HttpServerConfig:
    headers: list[tuple[str, str]] = []
    header_table = t.table("headers")
    if header_table is not None:
        headers = [(name, header_table.string(name, "")) for name in header_table.entry_names()]
    proxies_value = t.get("remote_address_internal_proxies")
    proxies: tuple[str, ...]
    if isinstance(proxies_value, str):
        # Java splits the text at commas.
        proxies = tuple(p.strip() for p in proxies_value.split(",") if p.strip())
    else:
        proxies = t.strings("remote_address_internal_proxies") or ()
    return HttpServerConfig(
        enable_proxy=t.flag("enable_proxy", True),
        enable_root_web_app=t.flag("enable_root_web_app", True),
        enable_trace=t.flag("enable_trace", True),
        headers=tuple(headers),
        session_timeout_seconds=t.lenient_integer("session_timeout_seconds", 1800),
        robots_txt=t.optional_string("robots_txt"),
        favicon=t.optional_string("favicon"),
        remote_address_header=t.optional_string("remote_address_header"),
        remote_address_internal_proxies=proxies,
    )


def _server_config(t: _Table) -> ServerConfig:
    max_session_time = t.lenient_integer("max_session_time", 86_400, trim=True)
    if max_session_time < 60:
        t.warn("max_session_time", f"{t.qualified('max_session_time')} is below 60 seconds; using 60")
        max_session_time = 60
    http = t.table("http_config")
    replication_accept = t.strings("replication_accept_prefixes")
    return ServerConfig(
        this_server_id=t.required_integer("this_server_id"),
        server_admins=t.strings("server_admins") or (),
        server_admin_full_access=t.flag("server_admin_full_access", False),
        anonymous_admin_full_access=t.flag("anonymous_admin_full_access", False),
        home_only_admins=t.strings("home_only_admins") or (),
        status_handle_admins=t.strings("status_handle_admins") or (),
        backup_admins=t.strings("backup_admins") or (),
        replication_admins=t.strings("replication_admins") or (),
        allow_na_admins=t.flag("allow_na_admins", True, unparsable=False),
        allow_list_hdls=t.flag("allow_list_hdls", True, unparsable=False),
        require_sessions=t.flag("require_sessions", False),
        case_sensitive=t.flag("case_sensitive", False),
        max_auth_time_ms=t.lenient_integer("max_auth_time", 20_000, trim=True, maximum=JAVA_LONG_MAX),
        max_session_time_s=max_session_time,
        encryption_alg=_encryption_alg(t),
        allow_recursion=t.flag("allow_recursion", False),
        perform_recursion_for_legacy_prefix_referral=t.flag(
            "perform_recursion_for_legacy_prefix_referral", True, unparsable=False
        ),
        enable_status_handle=t.flag("enable_status_handle", True),
        enable_monitor_daemon=t.flag("enable_monitor_daemon", False),
        enable_homed_prefix_na_lookup_optimization=t.flag("enable_homed_prefix_na_lookup_optimization", True),
        auto_homed_prefixes=t.strings("auto_homed_prefixes") or (),
        template_delimiter=java_trim(t.string("template_delimiter", "")),
        namespace=t.optional_string("namespace"),
        template_ns_override=t.flag("template_ns_override", False),
        preferred_global=t.optional_string("preferred_global"),
        auto_update_root_info=t.flag("auto_update_root_info", True),
        trace_outgoing_messages=t.flag("trace_outgoing_messages", False),
        trace_resolution=t.flag("trace_resolution", False),
        storage_type=t.optional_string("storage_type"),
        storage_class=t.optional_string("storage_class"),
        storage_config=t.raw_table("storage_config"),
        sql_settings=t.raw_table("sql_settings"),
        db_directory=t.string("db_directory", "hdldb"),
        bdbje_no_sync_on_write=t.flag("bdbje_no_sync_on_write", False),
        bdbje_timeout=t.optional_integer("bdbje_timeout"),
        bdbje_enable_status_handle=t.flag("bdbje_enable_status_handle", True),
        bdbje_dump_on_checkpoint=t.flag("bdbje_dump_on_checkpoint", False),
        enable_recovery_log=t.flag("enable_recovery_log", False),
        enable_txn_queue=t.flag("enable_txn_queue", True, unparsable=False),
        txnlog_num_days_to_keep=t.lenient_integer("txnlog_num_days_to_keep", 0),
        read_only_txn_queue=t.flag("read_only_txn_queue", False),
        file_write_no_sync=t.flag("file_write_no_sync", False),
        do_replication=t.optional_flag("do_replication"),
        replication_keep_other_transactions=t.flag("replication_keep_other_transactions", True),
        replication_interval_ms=t.lenient_integer(
            "replication_interval", 30_000, minimum=1, maximum=JAVA_LONG_MAX
        ),
        replication_start_time=t.optional_string("replication_start_time"),
        replication_timeout_ms=t.integer("replication_timeout", 300_000, minimum=0),
        replication_authentication=_replication_auth(t),
        replication_sites_handle=t.optional_string("replication_sites_handle") or None,
        replication_site_handle_value=t.optional_string("replication_site_handle_value") or None,
        replication_pull_other_transactions=t.flag("replication_pull_other_transactions", False),
        replication_accept_prefixes=replication_accept,
        http_config=_http_server_config(http) if http is not None else HttpServerConfig(),
        storage_partitions=t.optional_integer("storage_partitions", minimum=1, maximum=_MAX_STORAGE_PARTITIONS),
        java_compatible_early_errors=t.flag("java_compatible_early_errors", False),
        max_udp_pending=t.integer("max_udp_pending", 1024, minimum=1),
        resolution_cache_entries=t.integer("resolution_cache_entries", 16_384, minimum=0, maximum=1 << 24),
        max_tcp_connections=t.integer("max_tcp_connections", 1000, minimum=1),
    )

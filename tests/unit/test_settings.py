"""Typed settings from config.dct (server.md 3, 12.3; auth.md 6.7; replication.md 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hdlserver.config.dct import parse_dct, parse_dct_document
from hdlserver.config.settings import (
    ClientConfig,
    HttpServerConfig,
    InterfaceConfig,
    LogSaveConfig,
    ReplicationAuth,
    ServerConfig,
    Settings,
    load_settings,
    settings_from_dct,
    settings_from_document,
)
from hdlserver.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO.parent / "shared" / "vectors"


def settings_of(text: str) -> Settings:
    return settings_from_document(parse_dct_document(text, "config.dct"))


def config(server: str = "", tcp: str = "", top: str = "") -> str:
    """A minimal valid config.dct with extra lines in server_config, hdl_tcp_config and the top table."""
    return (
        "{\n"
        '  "interfaces" = ( "hdl_tcp" )\n'
        '  "hdl_tcp_config" = {\n'
        '    "bind_port" = "2641"\n'
        f"{tcp}"
        "  }\n"
        '  "server_config" = {\n'
        '    "this_server_id" = "1"\n'
        f"{server}"
        "  }\n"
        f"{top}"
        "}\n"
    )


def config_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        settings_of(text)
    return raised.value


# --- defaults -------------------------------------------------------------------------------------


def test_minimal_config_gets_java_defaults() -> None:
    s = settings_of(config())
    assert s.server_type == "server"
    assert s.path == "config.dct"
    assert s.warnings == ()
    assert s.log_save is None
    assert s.logging == LogSaveConfig(
        interval="Never", weekday="Sunday", directory="logs", redirect_stderr=True
    )
    assert s.client == ClientConfig()
    assert s.servlet_container is None
    assert s.unsupported_interfaces == ()
    (tcp,) = s.interfaces
    assert (tcp.label, tcp.kind, tcp.bind_port, tcp.bind_address, tcp.https) == (
        "hdl_tcp",
        "tcp",
        2641,
        None,
        False,
    )
    assert (tcp.num_threads, tcp.max_handlers, tcp.backlog, tcp.max_idle_time_ms) == (10, 200, 50, 300_000)
    assert tcp.log_accesses is False


def test_server_config_defaults_follow_the_spec() -> None:
    c = settings_of(config()).server
    assert c == ServerConfig(this_server_id=1)
    assert c.this_server_id == 1
    assert c.server_admins == c.home_only_admins == c.status_handle_admins == ()
    assert c.backup_admins == c.replication_admins == c.auto_homed_prefixes == ()
    assert c.server_admin_full_access is False
    assert c.anonymous_admin_full_access is False
    assert c.allow_na_admins is True
    assert c.allow_list_hdls is True
    assert c.require_sessions is False
    assert c.case_sensitive is False
    assert c.max_auth_time_ms == 20_000
    assert c.max_session_time_s == 86_400
    assert c.encryption_alg == "aes"
    assert c.allow_recursion is False
    assert c.perform_recursion_for_legacy_prefix_referral is True
    assert c.enable_status_handle is True
    assert c.enable_monitor_daemon is False
    assert c.enable_homed_prefix_na_lookup_optimization is True
    assert c.template_delimiter == ""
    assert c.namespace is None and c.preferred_global is None
    assert c.template_ns_override is False
    assert c.auto_update_root_info is True
    assert c.storage_type is None
    assert c.db_directory == "hdldb"  # not Java's bdbje: LMDB files never go into a BDB JE directory
    assert c.enable_txn_queue is True
    assert c.txnlog_num_days_to_keep == 0
    assert c.read_only_txn_queue is False
    assert c.do_replication is None  # decided by the site record: multi-primary or not primary
    assert c.replication_keep_other_transactions is True
    assert c.replication_interval_ms == 30_000
    assert c.replication_timeout_ms == 300_000
    assert c.replication_authentication is None
    assert c.replication_sites_handle is None and c.replication_site_handle_value is None
    assert c.replication_pull_other_transactions is False
    assert c.replication_accept_prefixes is None
    assert c.http_config == HttpServerConfig()
    assert c.http_config.session_timeout_seconds == 1800
    assert c.storage_partitions is None  # the store's recorded count (4 for a new store)
    assert c.java_compatible_early_errors is False
    assert c.max_udp_pending == 1024
    assert c.max_tcp_connections == 1000
    assert c.resolution_cache_entries == 16_384


def test_settings_are_immutable_and_hashable() -> None:
    s = settings_of(config())
    with pytest.raises(AttributeError):
        s.server_type = "cache"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s.server.this_server_id = 2  # type: ignore[misc]
    assert hash(s) == hash(settings_of(config()))


def test_raw_keeps_unknown_keys_with_their_lines() -> None:
    s = settings_of(config(server='    "future_key" = "x"\n', top='  "site_notes" = { "a" = "b" }\n'))
    assert s.raw["site_notes"] == {"a": "b"}
    server_raw = s.raw["server_config"]
    assert isinstance(server_raw, dict) and server_raw["future_key"] == "x"
    assert s.line_of("server_config", "future_key") == 8
    assert s.line_of("site_notes") == 10


def test_settings_from_a_parsed_table() -> None:
    s = settings_from_dct(parse_dct(config()), "elsewhere/config.dct")
    assert s.path == "elsewhere/config.dct"
    assert s.server.this_server_id == 1
    with pytest.raises(ConfigError) as raised:
        settings_from_dct({"server_config": {}}, "x.dct")
    assert raised.value.path == "x.dct" and raised.value.line is None


# --- real files -----------------------------------------------------------------------------------


def test_sample_config_in_conf_loads(tmp_path: Path) -> None:
    s = load_settings(REPO / "conf")
    assert s.warnings == ()
    assert [(i.label, i.kind, i.bind_port) for i in s.interfaces] == [
        ("hdl_udp", "udp", 2641),
        ("hdl_tcp", "tcp", 2641),
        ("hdl_http", "http", 8000),
    ]
    assert all(i.log_accesses for i in s.interfaces)
    c = s.server
    assert c.this_server_id == 1
    assert c.server_admins == ("300:0.NA/YOUR_PREFIX",)
    assert c.server_admin_full_access is True
    assert c.max_auth_time_ms == 60_000
    assert c.max_session_time_s == 86_400
    assert (c.storage_type, c.storage_partitions) == ("lmdb", 4)
    assert s.log_save == LogSaveConfig(interval="Monthly")


def test_java_written_config_from_the_vectors_loads() -> None:
    path = VECTORS / "captures" / "inputs" / "server-config.dct"
    if not path.exists():
        pytest.skip(f"Java test vectors not available ({path} is missing; they live outside the repository)")
    from hdlserver.config.dct import load_dct_document

    s = settings_from_document(load_dct_document(path))
    assert s.warnings == ()
    assert [(i.label, i.kind, i.bind_address, i.bind_port, i.num_threads) for i in s.interfaces] == [
        ("hdl_udp", "udp", "127.0.0.1", 23643, 15),
        ("hdl_tcp", "tcp", "127.0.0.1", 23643, 15),
    ]
    c = s.server
    assert c.storage_type == "jdb"
    assert c.enable_txn_queue is False
    assert c.server_admins == ("300:0.NA/TEST", "301:0.NA/TEST")
    assert c.replication_admins == ("300:0.NA/TEST",)
    assert c.auto_homed_prefixes == ("0.NA/0.NA", "0.NA/TEST")
    assert c.max_session_time_s == 86_400_000  # setup writes "ms"; the server reads seconds (auth.md 9.5)
    assert c.max_auth_time_ms == 60_000
    assert c.server_admin_full_access is True
    assert s.log_save == LogSaveConfig(interval="Never", directory="logs")
    assert s.client.no_udp_resolution is False


def test_load_settings_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path)
    assert raised.value.path == str(tmp_path / "config.dct")
    (tmp_path / "config.dct").write_text(config(tcp='    "bind_port" = "abc"\n'))
    with pytest.raises(ConfigError) as raised:
        load_settings(tmp_path)
    assert (
        str(raised.value)
        == f"{tmp_path / 'config.dct'}:5: hdl_tcp_config.bind_port must be an integer, got 'abc'"
    )
    (tmp_path / "config.dct").write_text(config()[:-3])
    with pytest.raises(ConfigError, match="missing '}'") as raised:
        load_settings(tmp_path)
    assert raised.value.line == 1


# --- errors ---------------------------------------------------------------------------------------


def test_bad_bind_port_names_its_line() -> None:
    error = config_error(config(tcp='    "bind_port" = "abc"\n'))  # overrides line 4; the value is on line 5
    assert error.line == 5
    assert error.reason == "hdl_tcp_config.bind_port must be an integer, got 'abc'"


@pytest.mark.parametrize("port", ["-1", "65536", "99999999999"])
def test_out_of_range_ports_are_errors(port: str) -> None:
    error = config_error(config(tcp=f'    "bind_port" = "{port}"\n'))
    assert error.line == 5
    assert "bind_port" in error.reason


def test_port_zero_means_any_free_port() -> None:
    assert settings_of(config(tcp='    "bind_port" = "0"\n')).interfaces[0].bind_port == 0


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{\n  "server_config" = { "this_server_id" = "1" }\n}', 1, 'no "interfaces" specified'),
        (config().replace('( "hdl_tcp" )', '"hdl_tcp"'), 2, "interfaces must be a list"),
        (config().replace('( "hdl_tcp" )', "( )"), 2, '"interfaces" is empty'),
        (config().replace('( "hdl_tcp" )', "( { } )"), 2, "interfaces must hold strings, got a table"),
        (config().replace('( "hdl_tcp" )', '( "hdl_tcp" "hdl_tcp" )'), 2, "'hdl_tcp' is listed twice"),
        (config().replace('( "hdl_tcp" )', '( "tcp" )'), 2, "invalid interface type 'tcp'"),
        (
            config().replace('( "hdl_tcp" )', '( "hdl_tcp" "hdl_udp" )'),
            2,
            "'hdl_udp' has no hdl_udp_config table",
        ),
        (
            config().replace('"hdl_tcp_config" = {', '"hdl_tcp_config" = "x" "other" = {'),
            3,
            "must be a table",
        ),
        (config().replace('"bind_port" = "2641"', ""), 3, "hdl_tcp_config.bind_port is required"),
        (config(tcp='    "backlog" = "many"\n'), 5, "hdl_tcp_config.backlog must be an integer"),
        (config().replace('"server_config" = {', '"other" = {'), 1, '"server_config" table is required'),
        (config().replace('"server_config" = {', '"server_config" = "x" "other" = {'), 6, "must be a table"),
        (config().replace('"this_server_id" = "1"', ""), 6, "server_config.this_server_id is required"),
        (config().replace('"this_server_id" = "1"', '"this_server_id" = "one"'), 7, "must be an integer"),
        (config(top='  "server_type" = "cache"\n'), 9, "caching servers"),
        (config(top='  "server_type" = "proxy"\n'), 9, 'server_type must be "server"'),
        (config(top='  "server_type" = ( "server" )\n'), 9, "server_type must be a string"),
        (
            config(server='    "encryption_alg" = "blowfish"\n'),
            8,
            "invalid server_config.encryption_alg 'blowfish'",
        ),
        (config(server='    "encryption_alg" = ( "aes" )\n'), 8, "encryption_alg must be a string"),
        (config(server='    "server_admins" = "300:0.NA/X"\n'), 8, "server_admins must be a list"),
        (config(server='    "replication_admins" = ( { } )\n'), 8, "replication_admins must hold strings"),
        (config(server='    "auto_homed_prefixes" = "0.NA/X"\n'), 8, "auto_homed_prefixes must be a list"),
        (config(server='    "replication_accept_prefixes" = "1234"\n'), 8, "must be a list"),
        (config(server='    "replication_timeout" = "soon"\n'), 8, "replication_timeout must be an integer"),
        (
            config(server='    "storage_partitions" = "0"\n'),
            8,
            "storage_partitions must be between 1 and 256",
        ),
        (config(server='    "max_udp_pending" = "lots"\n'), 8, "max_udp_pending must be an integer"),
        (config(server='    "max_tcp_connections" = "0"\n'), 8, "max_tcp_connections must be between 1"),
        (config(server='    "resolution_cache_entries" = "-1"\n'), 8, "resolution_cache_entries must be between 0"),
        (config(server='    "http_config" = ( )\n'), 8, "http_config must be a table"),
        (config(top='  "tcp_timeout" = "x"\n'), 9, "tcp_timeout must be an integer"),
        (
            config(top='  "log_save_config" = { "log_save_interval" = "Hourly" }\n'),
            9,
            "log_save_interval 'Hourly'",
        ),
        (config(top='  "log_save_config" = "Monthly"\n'), 9, "log_save_config must be a table"),
    ],
)
def test_unusable_configs_raise_config_error_with_line(text: str, line: int, reason: str) -> None:
    error = config_error(text)
    assert error.path == "config.dct"
    assert error.line == line
    assert reason in error.reason


@pytest.mark.parametrize(
    "value",
    [
        "secret",
        "privatekey:300",
        "privatekey:300:",
        "publickey:300:0.NA/1",
        "privatekey:abc:0.NA/1",
        "secretkey::x",
    ],
)
def test_bad_replication_authentication_is_an_error(value: str) -> None:
    error = config_error(config(server=f'    "replication_authentication" = "{value}"\n'))
    assert error.line == 8
    assert "replication_authentication" in error.reason


# --- Java's leniency: bad booleans and some integers fall back, with a warning --------------------


def test_bad_booleans_are_not_errors() -> None:
    s = settings_of(
        config(
            server='    "case_sensitive" = "maybe"\n    "require_sessions" = ( "yes" )\n',
            tcp='    "log_accesses" = "sometimes"\n',
        )
    )
    assert s.server.case_sensitive is False
    assert s.server.require_sessions is False
    assert s.interfaces[0].log_accesses is False
    assert len(s.warnings) == 3
    assert (
        "config.dct:5: hdl_tcp_config.log_accesses is not yes/no (got the string 'sometimes'); using no"
        in s.warnings
    )
    assert any(w.startswith("config.dct:9: server_config.case_sensitive") for w in s.warnings)


def test_booleans_java_reads_only_when_present_fall_back_to_no() -> None:
    # Java: if (config.containsKey(k)) x = config.getBoolean(k) -- whose own default is false.
    keys = [
        "allow_na_admins",
        "allow_list_hdls",
        "perform_recursion_for_legacy_prefix_referral",
        "enable_txn_queue",
    ]
    s = settings_of(config(server="".join(f'    "{k}" = "?"\n' for k in keys)))
    assert not any(getattr(s.server, k) for k in keys)
    assert len(s.warnings) == len(keys)


@pytest.mark.parametrize(
    ("word", "value"), [("yes", True), ("Y", True), ("true", True), ("No", False), ("f", False)]
)
def test_boolean_words(word: str, value: bool) -> None:
    s = settings_of(config(server=f'    "server_admin_full_access" = "{word}"\n'))
    assert s.server.server_admin_full_access is value


def test_do_replication_is_three_valued() -> None:
    assert settings_of(config(server='    "do_replication" = "yes"\n')).server.do_replication is True
    assert settings_of(config(server='    "do_replication" = "no"\n')).server.do_replication is False
    s = settings_of(config(server='    "do_replication" = "perhaps"\n'))
    assert s.server.do_replication is None
    assert "do_replication" in s.warnings[0]


def test_integers_java_defaults_fall_back_with_a_warning() -> None:
    s = settings_of(
        config(
            server='    "max_auth_time" = "soon"\n    "replication_interval" = "often"\n'
            '    "txnlog_num_days_to_keep" = "forever"\n',
            tcp='    "num_threads" = "many"\n    "max_handlers" = "0"\n    "max_idle_time" = "-5"\n',
        )
    )
    tcp = s.interfaces[0]
    assert (tcp.num_threads, tcp.max_handlers, tcp.max_idle_time_ms) == (10, 200, 300_000)
    assert s.server.max_auth_time_ms == 20_000
    assert s.server.replication_interval_ms == 30_000
    assert s.server.txnlog_num_days_to_keep == 0
    assert len(s.warnings) == 6
    assert "config.dct:5: hdl_tcp_config.num_threads must be an integer, got 'many'; using 10" in s.warnings


def test_times_are_read_in_java_units_and_trimmed() -> None:
    s = settings_of(config(server='    "max_auth_time" = " 90000 "\n    "max_session_time" = "3600\n"\n'))
    assert s.server.max_auth_time_ms == 90_000
    assert s.server.max_session_time_s == 3600
    assert s.warnings == ()


def test_session_time_has_a_one_minute_minimum() -> None:
    s = settings_of(config(server='    "max_session_time" = "30"\n'))
    assert s.server.max_session_time_s == 60
    assert "below 60 seconds" in s.warnings[0]
    s = settings_of(config(server='    "max_session_time" = "never"\n'))
    assert s.server.max_session_time_s == 86_400


def test_non_positive_backlog_means_java_default() -> None:
    assert settings_of(config(tcp='    "backlog" = "-1"\n')).interfaces[0].backlog == 50
    assert settings_of(config(tcp='    "backlog" = "0"\n')).interfaces[0].backlog == 50
    assert settings_of(config(tcp='    "backlog" = "1024"\n')).interfaces[0].backlog == 1024


@pytest.mark.parametrize(("written", "alg"), [("AES", "aes"), (" des ", "des"), ("DESede", "desede")])
def test_encryption_alg_is_case_insensitive_and_trimmed(written: str, alg: str) -> None:
    assert settings_of(config(server=f'    "encryption_alg" = "{written}"\n')).server.encryption_alg == alg


# --- interfaces -----------------------------------------------------------------------------------


def test_interface_kinds_labels_and_dual_stack() -> None:
    text = (
        '{ "interfaces" = ( "hdl_udp" "hdl_tcp4" "hdl_http" "hdl_https" "dns_udp" )\n'
        '  "hdl_udp_config" = { "bind_port" = "2641" "bind_address" = "::" "log_accesses" = "yes" }\n'
        '  "hdl_tcp4_config" = { "bind_port" = "2641" "bind_address" = "192.0.2.1" "thread_life" = "x" }\n'
        '  "hdl_http_config" = { "bind_port" = "8000" "http_only" = "yes" "redirect_port" = "8443" }\n'
        '  "hdl_https_config" = { "bind_port" = "8443" "https_default_self_signed_cert" = "no"\n'
        '    "https_keystore_file" = "ks.jks" "https_keystore_password" = "p" "https_key_password" = "q"\n'
        '    "https_alias" = "srv" "https_client_auth" = "WANT" "enable_trace" = "no" }\n'
        '  "server_config" = { "this_server_id" = "1" } }\n'
    )
    s = settings_of(text)
    udp, tcp4, http, https = s.interfaces
    assert (udp.kind, udp.bind_address, udp.log_accesses) == ("udp", "::", True)
    assert (tcp4.label, tcp4.kind, tcp4.bind_address) == ("hdl_tcp4", "tcp", "192.0.2.1")
    assert (http.kind, http.https, http.http_only, http.redirect_port) == ("http", False, True, 8443)
    assert https == InterfaceConfig(
        label="hdl_https",
        kind="http",
        bind_port=8443,
        https=True,
        https_default_self_signed_cert=False,
        https_keystore_file="ks.jks",
        https_keystore_password="p",
        https_key_password="q",
        https_alias="srv",
        https_client_auth="want",
        enable_trace=False,
    )
    assert s.unsupported_interfaces == ("dns_udp",)
    assert s.warnings == ("config.dct:1: interface 'dns_udp' (DNS) is not supported; it will not be started",)


def test_https_key_and_bad_client_auth_on_http_interfaces() -> None:
    text = config().replace('"hdl_tcp"', '"hdl_http"').replace("hdl_tcp_config", "hdl_http_config")
    s = settings_of(
        text.replace('"bind_port" = "2641"', '"bind_port" = "80" "https" = "yes" "https_client_auth" = "x"')
    )
    assert s.interfaces[0].https is True
    assert s.interfaces[0].https_client_auth == "false"
    assert "https_client_auth" in s.warnings[0]


def test_servlet_container_connectors_become_http_interfaces() -> None:
    s = settings_of(
        config(
            top='  "servlet_container_config" = {\n'
            '    "log_accesses" = "yes"\n'
            '    "enable_trace" = "no"\n'
            '    "connectors" = ( { "bind_port" = "8080" } { "bind_port" = "8081" "https" = "yes" } )\n'
            '    "http_config" = { "bind_port" = "8000" }\n'
            '    "https_config" = { "bind_port" = "8443" }\n'
            "  }\n"
        )
    )
    assert [(i.label, i.bind_port, i.https) for i in s.interfaces[1:]] == [
        ("servlet_container_config.connectors[0]", 8080, False),
        ("servlet_container_config.connectors[1]", 8081, True),
        ("servlet_container_config.http_config", 8000, False),
        ("servlet_container_config.https_config", 8443, True),
    ]
    assert s.servlet_container is not None
    assert s.servlet_container.log_accesses is True
    assert s.servlet_container.enable_trace is False
    assert s.servlet_container.enable_root_web_app is True


def test_bad_servlet_connectors_are_errors() -> None:
    error = config_error(config(top='  "servlet_container_config" = {\n    "connectors" = ( { } )\n  }\n'))
    assert error.reason == "servlet_container_config.connectors[0].bind_port is required"
    assert error.line == 10  # where the connector's table starts
    error = config_error(config(top='  "servlet_container_config" = { "connectors" = ( "x" ) }\n'))
    assert "connectors[0] must be a table" in error.reason


# --- other tables ---------------------------------------------------------------------------------


def test_log_save_config() -> None:
    s = settings_of(
        config(
            top='  "log_save_config" = { "log_save_interval" = "weekly" "log_save_weekday" = "Friday"\n'
            '    "log_save_directory" = "/var/log/hdl" "log_redirect_stderr" = "no" }\n'
        )
    )
    assert s.log_save == LogSaveConfig(
        interval="Weekly", weekday="Friday", directory="/var/log/hdl", redirect_stderr=False
    )
    s = settings_of(
        config(top='  "log_save_config" = { "log_save_interval" = "Weekly" "log_save_weekday" = "fri" }\n')
    )
    assert s.log_save is not None and s.log_save.weekday == "Sunday"  # Java matches weekday names exactly
    assert "log_save_weekday 'fri'" in s.warnings[0]
    s = settings_of(config(top='  "log_save_config" = { }\n'))
    assert s.log_save == LogSaveConfig()


def test_replication_keys() -> None:
    s = settings_of(
        config(
            server='    "replication_authentication" = "privatekey:301:0.NA/1234"\n'
            '    "replication_sites_handle" = ""\n'
            '    "replication_site_handle_value" = "1:0.NA/1234"\n'
            '    "replication_accept_prefixes" = ( "1234" "0.NA/5678" )\n'
            '    "replication_pull_other_transactions" = "yes"\n'
            '    "replication_keep_other_transactions" = "no"\n'
            '    "replication_interval" = "60000"\n'
            '    "replication_timeout" = "10000"\n'
            '    "replication_start_time" = "2026-01-01 00:00:00"\n'
            '    "do_replication" = "yes"\n'
            '    "txnlog_num_days_to_keep" = "30"\n'
        )
    )
    c = s.server
    assert c.replication_authentication == ReplicationAuth(kind="privatekey", index=301, handle="0.NA/1234")
    assert c.replication_sites_handle is None  # Java treats "" as unset
    assert c.replication_site_handle_value == "1:0.NA/1234"
    assert c.replication_accept_prefixes == ("1234", "0.NA/5678")
    assert c.replication_pull_other_transactions is True
    assert c.replication_keep_other_transactions is False
    assert (c.replication_interval_ms, c.replication_timeout_ms) == (60_000, 10_000)
    assert c.replication_start_time == "2026-01-01 00:00:00"
    assert c.do_replication is True
    assert c.txnlog_num_days_to_keep == 30
    secret = settings_of(config(server='    "replication_authentication" = "secretkey:300:0.NA/a:b"\n'))
    assert secret.server.replication_authentication == ReplicationAuth("secretkey", 300, "0.NA/a:b")


def test_admin_lists_templates_and_storage_keys() -> None:
    s = settings_of(
        config(
            server='    "server_admins" = ( "300:0.NA/1234" "0.NA/1234" )\n'
            '    "home_only_admins" = ( "301:0.NA/1234" )\n'
            '    "status_handle_admins" = ( "302:0.NA/1234" )\n'
            '    "backup_admins" = ( "303:0.NA/1234" )\n'
            '    "auto_homed_prefixes" = ( "0.NA/1234" "5678" )\n'
            '    "template_delimiter" = " @ "\n'
            '    "namespace" = "<namespace/>"\n'
            '    "preferred_global" = "192.0.2.7"\n'
            '    "storage_type" = "custom"\n'
            '    "storage_class" = "org.example.Store"\n'
            '    "storage_config" = { "url" = "x" }\n'
            '    "bdbje_timeout" = "500"\n'
            '    "storage_partitions" = "8"\n'
            '    "java_compatible_early_errors" = "yes"\n'
        )
    )
    c = s.server
    assert c.server_admins == ("300:0.NA/1234", "0.NA/1234")
    assert c.home_only_admins == ("301:0.NA/1234",)
    assert c.status_handle_admins == ("302:0.NA/1234",)
    assert c.backup_admins == ("303:0.NA/1234",)
    assert c.auto_homed_prefixes == ("0.NA/1234", "5678")
    assert c.template_delimiter == "@"  # Java trims it
    assert c.namespace == "<namespace/>"
    assert c.preferred_global == "192.0.2.7"
    assert (c.storage_type, c.storage_class, c.storage_config) == (
        "custom",
        "org.example.Store",
        {"url": "x"},
    )
    assert c.bdbje_timeout == 500
    assert c.storage_partitions == 8
    assert c.java_compatible_early_errors is True


def test_http_config() -> None:
    s = settings_of(
        config(
            server='    "http_config" = {\n'
            '      "enable_proxy" = "no"\n'
            '      "headers" = { "X-Frame-Options" = "DENY" "Cache-Control" = "no-store" }\n'
            '      "session_timeout_seconds" = "600"\n'
            '      "robots_txt" = "/srv/robots.txt"\n'
            '      "remote_address_header" = "X-Forwarded-For"\n'
            '      "remote_address_internal_proxies" = "10.0.0.0/8, 192.168.0.0/16"\n'
            "    }\n"
        )
    )
    h = s.server.http_config
    assert h.enable_proxy is False and h.enable_root_web_app is True
    assert h.headers == (("X-Frame-Options", "DENY"), ("Cache-Control", "no-store"))
    assert h.session_timeout_seconds == 600
    assert h.robots_txt == "/srv/robots.txt" and h.favicon is None
    assert h.remote_address_header == "X-Forwarded-For"
    assert h.remote_address_internal_proxies == ("10.0.0.0/8", "192.168.0.0/16")
    listed = settings_of(
        config(server='    "http_config" = { "remote_address_internal_proxies" = ( "::1/128" ) }\n')
    )
    assert listed.server.http_config.remote_address_internal_proxies == ("::1/128",)


def test_client_keys() -> None:
    s = settings_of(
        config(
            top='  "no_udp_resolution" = "yes"\n  "tcp_timeout" = "15000"\n  "trace_resolution" = "yes"\n'
            '  "site_filter_keywords" = " east  west "\n  "ipv6_fast_fallback" = "no"\n'
        )
    )
    assert s.client == ClientConfig(
        no_udp_resolution=True,
        tcp_timeout_ms=15_000,
        trace_resolution=True,
        site_filter_keywords=("east", "west"),
        ipv6_fast_fallback=False,
    )
    listed = settings_of(config(top='  "site_filter_keywords" = ( "a" "b" )\n'))
    assert listed.client.site_filter_keywords == ("a", "b")


def test_default_db_directory_is_the_stores() -> None:
    from hdlserver.store.lmdb_store import DEFAULT_DB_DIRECTORY

    assert ServerConfig(this_server_id=1).db_directory == DEFAULT_DB_DIRECTORY

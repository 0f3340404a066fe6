"""The metrics registry without a server: recording, histogram buckets, replication status, the settings."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hdlserver.config.dct import parse_dct_document
from hdlserver.config.settings import Settings, settings_from_document
from hdlserver.errors import ConfigError
from hdlserver.metrics import LATENCY_BUCKETS, Metrics, MetricsConfig, RequestRecorder, metrics_config
from hdlserver.replication.mirror import SourceStatus
from hdlserver.wire.codes import OpCode, ResponseCode


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(body.decode("utf-8")):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def settings_with(server_config: str) -> Settings:
    text = ('{ "interfaces" = ( "hdl_tcp" ) "hdl_tcp_config" = { "bind_port" = "2641" } '
            '"server_config" = { "this_server_id" = "1"\n' + server_config + "\n} }")
    return settings_from_document(parse_dct_document(text, "config.dct"))


def test_recorder_counts_and_buckets() -> None:
    clock = FakeClock(10.0)
    recorder = RequestRecorder("UDP", clock)
    recorder.record(OpCode.RESOLUTION, ResponseCode.SUCCESS, 10.0 - 0.00004)  # first bucket (50 us)
    recorder.record(OpCode.RESOLUTION, ResponseCode.SUCCESS, 10.0 - 0.001)  # exactly on the 1 ms bound
    recorder.record(OpCode.RESOLUTION, ResponseCode.HANDLE_NOT_FOUND, 10.0 - 60)  # past every bound: +Inf
    assert recorder.counts() == {(1, 1): 2, (1, 100): 1}
    histogram = recorder.by_opcode()[1]
    assert histogram[0] == 1
    assert histogram[LATENCY_BUCKETS.index(0.001)] == 1
    assert histogram[len(LATENCY_BUCKETS)] == 1
    assert histogram[-1] == pytest.approx(60.00104)
    assert sum(histogram[:-1]) == 3


def test_render_parses_with_named_codes_and_cumulative_buckets() -> None:
    metrics = Metrics(MetricsConfig(on_http_interfaces=True), loop_name="asyncio", clock=FakeClock(1000.0),
                      monotonic=FakeClock(5.0))
    recorder = metrics.recorder("TCP")
    assert metrics.recorder("TCP") is recorder
    recorder.record(OpCode.RESOLUTION, ResponseCode.SUCCESS, 5.0)
    recorder.record(OpCode.CREATE_HANDLE, 9999, 4.0)  # a code without a name keeps its number
    metrics.add_gauge("sessions_open", "Open sessions", lambda: 3)
    found = samples(metrics)
    assert found[("hdlserver_requests_total", frozenset({("transport", "TCP"), ("opcode", "RESOLUTION"),
                                                         ("response_code", "SUCCESS")}))] == 1
    assert found[("hdlserver_requests_total", frozenset({("transport", "TCP"), ("opcode", "CREATE_HANDLE"),
                                                         ("response_code", "UNKNOWN(9999)")}))] == 1
    create = frozenset({("transport", "TCP"), ("opcode", "CREATE_HANDLE")})
    assert found[("hdlserver_request_duration_seconds_bucket", create | {("le", "0.5")})] == 0
    assert found[("hdlserver_request_duration_seconds_bucket", create | {("le", "1.0")})] == 1
    assert found[("hdlserver_request_duration_seconds_bucket", create | {("le", "+Inf")})] == 1
    assert found[("hdlserver_sessions_open", frozenset())] == 3
    build = [dict(labels) for name, labels in found if name == "hdlserver_build_info"]
    assert len(build) == 1 and build[0]["loop"] == "asyncio" and build[0]["version"]


def test_replication_status_of_the_mirror_is_exported_at_scrape_time() -> None:
    clock = FakeClock(1045.0)
    metrics = Metrics(MetricsConfig(port=0), clock=clock)
    status = SourceStatus("0:sources", last_txn_id=45, last_timestamp_ms=1_000_000, lag_txns=5,
                          last_success_time=1030.0)
    metrics.watch_replication(lambda: [status])
    source = frozenset({("source", "0:sources")})
    found = samples(metrics)
    assert found[("hdlserver_replication_applied_txn_id", source)] == 45
    assert found[("hdlserver_replication_lag_transactions", source)] == 5
    assert found[("hdlserver_replication_lag_seconds", source)] == 45  # source state of 1000, now 1045
    assert found[("hdlserver_replication_last_success_timestamp_seconds", source)] == 1030
    assert found[("hdlserver_replication_errors_total", source)] == 0
    assert not [name for name, _labels in found if name == "hdlserver_replication_last_error_info"]
    status.errors, status.last_error, status.last_error_time = 1, "connection refused", 1040.0  # a failed round
    found = samples(metrics)
    assert found[("hdlserver_replication_errors_total", source)] == 1
    assert found[("hdlserver_replication_last_error_info", source | {("error", "connection refused")})] == 1040


def test_no_replication_series_without_a_mirror() -> None:
    metrics = Metrics(MetricsConfig(port=0))
    assert not [name for name, _labels in samples(metrics) if name.startswith("hdlserver_replication")]


def test_log_counter_counts_warnings_and_errors_until_closed() -> None:
    metrics = Metrics(MetricsConfig(on_http_interfaces=True))
    metrics.attach_log_counter()
    log = logging.getLogger("hdlserver.test_metrics")
    try:
        log.warning("one")
        log.error("two")
        log.info("not counted")
    finally:
        metrics.close()
    log.error("after close: not counted")
    found = samples(metrics)
    assert found[("hdlserver_log_messages_total", frozenset({("level", "WARNING")}))] == 1
    assert found[("hdlserver_log_messages_total", frozenset({("level", "ERROR")}))] == 1


def test_settings() -> None:
    assert not metrics_config(settings_with("")).enabled
    config = metrics_config(settings_with('"enable_metrics" = "yes"'))
    assert config.enabled and config.on_http_interfaces and config.port is None
    config = metrics_config(settings_with('"metrics_port" = "9464" "metrics_bind_address" = "0.0.0.0"'))
    assert config.enabled and not config.on_http_interfaces
    assert (config.port, config.bind_address) == (9464, "0.0.0.0")


@pytest.mark.parametrize(("entry", "message"), [
    ('"enable_metrics" = "sometimes"', "enable_metrics must be yes or no"),
    ('"metrics_port" = "-1"', "metrics_port must be between 0 and 65535"),
    ('"metrics_port" = ( "1" )', "metrics_port must be an integer"),
    ('"metrics_bind_address" = ""', "metrics_bind_address must be an address"),
])
def test_bad_settings_name_key_and_line(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        metrics_config(settings_with(entry))
    assert message in str(caught.value)
    assert "config.dct:2" in str(caught.value)

"""``/metrics`` on a real server process: counts follow the requests of every transport, the output parses with
prometheus-client's parser, and bad metrics settings stop the server at startup with a readable message."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_support import add_http_interface, request
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerProcess, free_port, run_cli, setup_server_dir, start_server

from hdlserver.client.admin import AdminClient, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer
from hdlserver.client.transport import tcp_exchange
from hdlserver.config.dct import format_dct, load_dct
from hdlserver.http.tunnel import HDL_MESSAGE_TYPE
from hdlserver.wire.bodies import CreateHandleRequest, ResolutionRequest
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.values import HandleValue

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, tuple[str, int]]]]:
    directory = tmp_path_factory.mktemp("metrics") / "srv"
    port = setup_server_dir(directory)
    add_http_interface(directory, free_port(), server_config={"enable_metrics": "yes", "metrics_port": "0"})
    proc = start_server(directory, port)
    ready = (directory / "ready.txt").read_text(encoding="utf-8").split("\n")
    addresses = {label: (host, int(p)) for label, host, p in (line.split() for line in ready if line)}
    yield proc, addresses
    proc.stop()


def scrape(address: tuple[str, int]) -> Samples:
    reply = request(address, "GET", "/metrics")
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type").startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.body.decode("utf-8")):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples: Samples, transport: str, opcode: str, code: str) -> float:
    return value(samples, "hdlserver_requests_total", transport=transport, opcode=opcode, response_code=code)


def test_counts_follow_requests_on_every_transport(server: tuple[ServerProcess, dict[str, tuple[str, int]]]) -> None:
    proc, addresses = server
    http = addresses["hdl_http"]
    before = scrape(http)
    udp = Resolver([proc.address], udp=True, tcp=False)
    tcp = Resolver([proc.address], udp=False, tcp=True)
    for _ in range(3):
        udp.resolve("TEST/hello")
    tcp.resolve("TEST/hello")
    with pytest.raises(HandleResponseError):
        udp.resolve("TEST/does-not-exist")
    assert request(http, "GET", "/api/handles/TEST/hello").status == 200
    tunnelled = request(http, "POST", "/TEST/hello", body=build_request(OpCode.RESOLUTION,
                                                                        ResolutionRequest(b"TEST/hello")),
                        headers={"Accept": HDL_MESSAGE_TYPE, "Content-Type": HDL_MESSAGE_TYPE})
    assert tunnelled.status == 200 and decode_answer(tunnelled.body).header.response_code == ResponseCode.SUCCESS
    after = scrape(http)

    assert requests_of(after, "UDP", "RESOLUTION", "SUCCESS") - requests_of(before, "UDP", "RESOLUTION", "SUCCESS") == 3
    assert (requests_of(after, "UDP", "RESOLUTION", "HANDLE_NOT_FOUND")
            - requests_of(before, "UDP", "RESOLUTION", "HANDLE_NOT_FOUND")) == 1
    assert requests_of(after, "TCP", "RESOLUTION", "SUCCESS") - requests_of(before, "TCP", "RESOLUTION", "SUCCESS") == 1
    assert (requests_of(after, "HTTP", "RESOLUTION", "SUCCESS")
            - requests_of(before, "HTTP", "RESOLUTION", "SUCCESS")) == 2  # REST, and the tunnel's fast path
    # The histogram saw every UDP resolution, and its buckets are cumulative up to +Inf.
    hist = {"transport": "UDP", "opcode": "RESOLUTION"}
    udp_total = sum(requests_of(after, "UDP", "RESOLUTION", code) for code in ("SUCCESS", "HANDLE_NOT_FOUND"))
    assert value(after, "hdlserver_request_duration_seconds_count", **hist) == udp_total
    assert value(after, "hdlserver_request_duration_seconds_bucket", **hist, le="+Inf") == udp_total
    assert 0 < value(after, "hdlserver_request_duration_seconds_sum", **hist) < udp_total * 1.0


def test_state_gauges(server: tuple[ServerProcess, dict[str, tuple[str, int]]]) -> None:
    proc, addresses = server
    samples = scrape(addresses["hdl_http"])
    assert value(samples, "hdlserver_store_handles") >= 2  # 0.NA/TEST and TEST/hello
    assert value(samples, "hdlserver_last_txn_id") >= 1
    partitions = [labels for name, labels in samples if name == "hdlserver_store_partition_bytes"]
    assert sorted(dict(labels)["partition"] for labels in partitions) == ["0", "1", "2", "3"]
    assert value(samples, "hdlserver_challenges_pending") == 0
    assert ("hdlserver_sessions_open", frozenset()) in samples
    assert value(samples, "hdlserver_start_time_seconds") > 0
    assert value(samples, "process_resident_memory_bytes") > 0
    tcp_open = {"transport": "TCP", "interface": "hdl_tcp"}
    with socket.create_connection(proc.address, timeout=5):
        held = scrape(addresses["hdl_http"])
    assert value(held, "hdlserver_open_connections", **tcp_open) == 1
    # The scraping connection itself is open while the HTTP gauge is read.
    assert value(held, "hdlserver_open_connections", transport="HTTP", interface="hdl_http") >= 1


def test_dedicated_metrics_port(server: tuple[ServerProcess, dict[str, tuple[str, int]]]) -> None:
    _proc, addresses = server
    metrics = addresses["metrics"]
    assert value(scrape(metrics), "hdlserver_store_handles") >= 2
    assert request(metrics, "GET", "/api/handles/TEST/hello").status == 404
    assert request(metrics, "POST", "/metrics", body=b"x").status == 405
    head = request(metrics, "HEAD", "/metrics")
    assert head.status == 200 and head.body == b""
    openmetrics = request(metrics, "GET", "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.header("Content-Type").startswith("application/openmetrics-text")
    assert openmetrics.body.rstrip().endswith(b"# EOF")


def test_off_by_default(tmp_path: Path) -> None:
    """A server whose config.dct does not enable metrics has no /metrics: the path is a proxy lookup."""
    directory = tmp_path / "srv"
    port = setup_server_dir(directory)
    http_port = free_port()
    add_http_interface(directory, http_port)
    proc = start_server(directory, port)
    try:
        reply = request(("127.0.0.1", http_port), "GET", "/metrics")
        assert reply.status != 200 or b"hdlserver_requests_total" not in reply.body
        assert Resolver([proc.address], udp=True, tcp=False).resolve("TEST/hello")
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize(("key", "text", "message"), [
    ("enable_metrics", "maybe", "server_config.enable_metrics must be yes or no"),
    ("metrics_port", "nine", "server_config.metrics_port must be an integer"),
    ("metrics_port", "70000", "server_config.metrics_port must be between 0 and 65535"),
])
def test_bad_settings_stop_startup(tmp_path: Path, key: str, text: str, message: str) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    config = load_dct(directory / "config.dct")
    config["server_config"][key] = text  # type: ignore[index]
    (directory / "config.dct").write_text(format_dct(config), encoding="utf-8")
    proc = run_cli("hdlserver.cli.server", directory, check=False, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr and "config.dct" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (directory / "delete_this_to_stop_server").exists()


def test_sessions_and_challenges(server: tuple[ServerProcess, dict[str, tuple[str, int]]]) -> None:
    proc, addresses = server
    http = addresses["hdl_http"]
    # A create request that is never answered leaves its challenge pending.
    request_bytes = build_request(OpCode.CREATE_HANDLE, CreateHandleRequest(b"TEST/pending", (
        HandleValue(1, b"URL", b"https://example.org/"),)))
    (answer,) = tcp_exchange(proc.address, request_bytes)
    assert decode_answer(answer).header.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert value(scrape(http), "hdlserver_challenges_pending") >= 1
    with AdminClient(proc.address, SecretKeyIdentity(b"0.NA/TEST", 300, b"secret"), session=True) as admin:
        admin.open_session()
        during = scrape(http)
    assert value(during, "hdlserver_sessions_open") >= 1
    assert value(scrape(http), "hdlserver_sessions_open") == value(during, "hdlserver_sessions_open") - 1
    assert any(name == "hdlserver_requests_total" and dict(labels)["opcode"] == "SESSION_SETUP"
               for name, labels in during)


def test_metrics_port_in_use_stops_startup(tmp_path: Path) -> None:
    directory = tmp_path / "srv"
    setup_server_dir(directory)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = load_dct(directory / "config.dct")
        config["server_config"]["metrics_port"] = str(taken.getsockname()[1])  # type: ignore[index]
        (directory / "config.dct").write_text(format_dct(config), encoding="utf-8")
        proc = run_cli("hdlserver.cli.server", directory, check=False, timeout=60)
    assert proc.returncode == 1
    assert "cannot start the listeners" in proc.stderr and "Traceback" not in proc.stderr
    assert not (directory / "delete_this_to_stop_server").exists()

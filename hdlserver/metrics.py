"""Prometheus metrics of a running server: what it answered, how fast, and the state it holds (issue 8).

Design: recording is cheap and scraping does the work. A transport records each answered request with one
call that finds one list in a dict and increments two of its items (``RequestRecorder.record``: no locks,
no label objects, no string formatting); prometheus-client objects are built only when ``/metrics`` is
read, by a collector that turns those plain counters into metric families. Recording and scraping both run
on the server's event loop, so the counters need no lock. Gauges (open connections, pending challenges,
the store) are read at scrape time from callables registered with ``Metrics.add_gauge``, so they cost
nothing between scrapes.

Configuration, hdlserver's own keys in ``server_config`` (the Java server has no metrics):

* ``"enable_metrics" = "yes"``: answer ``GET /metrics`` on every HTTP interface (default no);
* ``"metrics_port" = "9464"``: also answer ``/metrics`` (and nothing else) on a plain-HTTP listener of its
  own, e.g. when the HTTP interface is public and the metrics should not be, or there is no HTTP interface;
* ``"metrics_bind_address" = "127.0.0.1"``: the address of that listener (default 127.0.0.1).

Metrics (``hdlserver_`` names; transport is UDP, TCP or HTTP, the codes are the wire names of wire.md):

* ``requests_total{transport,opcode,response_code}`` counter, one per answered request;
* ``request_duration_seconds{transport,opcode}`` histogram, from arrival to the answer being handed to the
  socket;
* ``log_messages_total{level}``: WARNING and ERROR lines logged (ERROR includes every request that failed
  inside the server: those are logged with their traceback);
* ``open_connections{transport,interface}``, ``challenges_pending``, ``sessions_open``, and whatever else is
  registered with ``add_gauge``;
* ``store_handles``, ``store_partition_bytes{partition}``, ``last_txn_id``;
* ``replication_*{source}``: a mirror's progress per source server, read from ``Mirror.status()``;
* ``start_time_seconds``, ``build_info{version,loop}`` and prometheus-client's ``process_*`` figures.

A mirror registers its status function with ``Metrics.watch_replication``; each scrape reads it, so the
figures are the ones its log lines report: the last transaction applied from the source, the lag in
transactions (how many the last round had to apply) and in seconds (now minus the source's time of the
newest state pulled), failed rounds and the last error.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from hdlserver.config.dct import dct_int, dct_optional_bool
from hdlserver.config.settings import Settings
from hdlserver.core.context import RequestInfo, ServerState
from hdlserver.core.dispatch import Dispatcher, Outcome
from hdlserver.errors import ConfigError
from hdlserver.http.messages import HttpRequest, HttpResponse, text_response
from hdlserver.http.protocol import HttpConnections, HttpLimits, HttpProtocol
from hdlserver.net.access import AccessLog
from hdlserver.net.slow_path import SlowPath
from hdlserver.store.base import Store
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import Envelope

# prometheus-client is imported where a registry is built or read (below), not here: a server without metrics
# does not pay its ~3 MB.
if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from hdlserver.replication.mirror import SourceStatus

METRICS_PATH = "/metrics"
DEFAULT_METRICS_BIND_ADDRESS = "127.0.0.1"
NAMESPACE = "hdlserver"
# Upper bounds (seconds) of the latency buckets: a cached UDP answer takes tens of microseconds, an admin
# operation that signs and syncs LMDB milliseconds, a challenged request waits for the client.
LATENCY_BUCKETS: tuple[float, ...] = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BUCKET_LABELS = (*(repr(b) for b in LATENCY_BUCKETS), "+Inf")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The metrics keys of ``server_config``; ``enabled`` when anything serves ``/metrics``."""

    on_http_interfaces: bool = False  # ``enable_metrics``
    port: int | None = None  # ``metrics_port``: a listener of its own
    bind_address: str = DEFAULT_METRICS_BIND_ADDRESS  # ``metrics_bind_address``

    @property
    def enabled(self) -> bool:
        return self.on_http_interfaces or self.port is not None


def metrics_config(settings: Settings) -> MetricsConfig:
    """Read the metrics keys; ConfigError (file, line, key) for a value that cannot be used."""
    table = settings.raw.get("server_config")
    if not isinstance(table, dict):
        return MetricsConfig()
    enable = table.get("enable_metrics")
    on_http = dct_optional_bool(enable)
    if enable is not None and on_http is None:
        raise ConfigError(f"server_config.enable_metrics must be yes or no, got {enable!r}", settings.path,
                          settings.line_of("server_config", "enable_metrics"))
    port_value = table.get("metrics_port")
    port = None
    if port_value is not None:
        port = dct_int(port_value, 0, key="server_config.metrics_port", path=settings.path,
                       line=settings.line_of("server_config", "metrics_port"), trim=True, minimum=0, maximum=65535)
    address = table.get("metrics_bind_address", DEFAULT_METRICS_BIND_ADDRESS)
    if not isinstance(address, str) or not address.strip():
        raise ConfigError("server_config.metrics_bind_address must be an address", settings.path,
                          settings.line_of("server_config", "metrics_bind_address"))
    return MetricsConfig(on_http_interfaces=bool(on_http), port=port, bind_address=address.strip())


class RequestRecorder:
    """Answered requests of one transport: one latency histogram per (opcode, response code), whose counts
    give the request counts (one dict lookup per request; the scrape adds them up per opcode)."""

    __slots__ = ("clock", "histograms", "transport")

    def __init__(self, transport: str, clock: Callable[[], float]) -> None:
        self.transport = transport
        self.clock = clock  # the clock the transports stamp ``started`` with (time.monotonic)
        # (opcode, response code) -> one count per bucket of LATENCY_BUCKETS, one for +Inf, then the sum of the
        # durations
        self.histograms: dict[tuple[int, int], list[float]] = {}

    def record(self, opcode: int, response_code: int, started: float) -> None:
        elapsed = self.clock() - started
        try:
            histogram = self.histograms[opcode, response_code]
        except KeyError:
            histogram = self.histograms[opcode, response_code] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        histogram[bisect.bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        histogram[-1] += elapsed

    def counts(self) -> dict[tuple[int, int], int]:
        """Requests per (opcode, response code)."""
        return {key: int(sum(histogram[:-1])) for key, histogram in self.histograms.items()}

    def by_opcode(self) -> dict[int, list[float]]:
        """The histograms added up per opcode (same layout)."""
        merged: dict[int, list[float]] = {}
        for (opcode, _code), histogram in self.histograms.items():
            total = merged.setdefault(opcode, [0.0] * len(histogram))
            for i, value in enumerate(histogram):
                total[i] += value
        return merged


@dataclass(frozen=True, slots=True)
class _Gauge:
    name: str
    documentation: str
    labels: tuple[tuple[str, str], ...]
    read: Callable[[], float]


class _LogCounter(logging.Handler):
    """Counts WARNING and ERROR records of the ``hdlserver`` loggers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        level = "ERROR" if record.levelno >= logging.ERROR else "WARNING"
        self.counts[level] = self.counts.get(level, 0) + 1


class Metrics:
    """The registry of one server process; ``render`` produces the Prometheus text."""

    def __init__(self, config: MetricsConfig, *, loop_name: str = "", clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.started = clock()
        self.loop_name = loop_name
        self.recorders: dict[str, RequestRecorder] = {}
        self.gauges: list[_Gauge] = []
        self.replication_status: Callable[[], list[SourceStatus]] | None = None
        self.log_counter = _LogCounter()
        self.store: Store | None = None
        self.store_path: Path | None = None
        from prometheus_client import CollectorRegistry, ProcessCollector

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)

    # -- what the server registers

    def recorder(self, transport: str) -> RequestRecorder:
        """The recorder of a transport (one per transport, shared by its listeners)."""
        recorder = self.recorders.get(transport)
        if recorder is None:
            recorder = self.recorders[transport] = RequestRecorder(transport, self.monotonic)
        return recorder

    def add_gauge(self, name: str, documentation: str, read: Callable[[], float], **labels: str) -> None:
        """A gauge read at scrape time; ``name`` without the ``hdlserver_`` prefix."""
        self.gauges.append(_Gauge(f"{NAMESPACE}_{name}", documentation, tuple(sorted(labels.items())), read))

    def watch_store(self, store: Store, path: Path | None) -> None:
        """Export the store's handle count and transaction id, and the size of each ``part-N/data.mdb``."""
        self.store = store
        self.store_path = path

    def attach_log_counter(self) -> None:
        logging.getLogger(NAMESPACE).addHandler(self.log_counter)

    def close(self) -> None:
        logging.getLogger(NAMESPACE).removeHandler(self.log_counter)

    def watch_replication(self, status: Callable[[], list[SourceStatus]]) -> None:
        """Export a mirror's per-source progress (``Mirror.status``), read at scrape time."""
        self.replication_status = status

    # -- output

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (OpenMetrics when ``accept`` asks for it, else the Prometheus text) and its type."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _Collector:
    """Builds the metric families from a Metrics registry's plain counters at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self.metrics
        families: list[Metric] = [*self._requests(), *self._gauges(), *self._store(), *self._replication()]
        logged = CounterMetricFamily(f"{NAMESPACE}_log_messages", "WARNING and ERROR lines logged by the server",
                                     labels=["level"])
        for level in ("WARNING", "ERROR"):
            logged.add_metric([level], m.log_counter.counts.get(level, 0))
        started = GaugeMetricFamily(f"{NAMESPACE}_start_time_seconds", "When the server started (Unix time)",
                                    value=m.started)
        info = GaugeMetricFamily(f"{NAMESPACE}_build_info", "hdlserver version and event loop",
                                 labels=["version", "loop"])
        info.add_metric([_version(), m.loop_name], 1)
        return [*families, logged, started, info]

    def _requests(self) -> list[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        counts = CounterMetricFamily(f"{NAMESPACE}_requests", "Answered requests",
                                     labels=["transport", "opcode", "response_code"])
        durations = HistogramMetricFamily(f"{NAMESPACE}_request_duration_seconds",
                                          "Time from a request's arrival to its answer being sent",
                                          labels=["transport", "opcode"])
        for transport, recorder in sorted(self.metrics.recorders.items()):
            for (opcode, code), count in sorted(recorder.counts().items()):
                counts.add_metric([transport, OpCode.name_of(opcode), ResponseCode.name_of(code)], count)
            for opcode, histogram in sorted(recorder.by_opcode().items()):
                cumulative, buckets = 0.0, []
                for label, count in zip(_BUCKET_LABELS, histogram, strict=False):
                    cumulative += count
                    buckets.append((label, cumulative))
                durations.add_metric([transport, OpCode.name_of(opcode)], buckets, sum_value=histogram[-1])
        return [counts, durations]

    def _gauges(self) -> list[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, GaugeMetricFamily] = {}
        for gauge in self.metrics.gauges:
            family = families.get(gauge.name)
            if family is None:
                family = families[gauge.name] = GaugeMetricFamily(gauge.name, gauge.documentation,
                                                                  labels=[k for k, _ in gauge.labels])
            family.add_metric([v for _, v in gauge.labels], gauge.read())
        return list(families.values())

    def _store(self) -> list[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        m = self.metrics
        if m.store is None:
            return []
        handles = GaugeMetricFamily(f"{NAMESPACE}_store_handles", "Handles in the store",
                                    value=m.store.count_handles())
        txn = GaugeMetricFamily(f"{NAMESPACE}_last_txn_id", "Newest transaction id in the transaction log",
                                value=m.store.last_txn_id())
        sizes = GaugeMetricFamily(f"{NAMESPACE}_store_partition_bytes", "Size of each LMDB partition's data file",
                                  labels=["partition"])
        if m.store_path is not None:
            for data in sorted(m.store_path.glob("part-*/data.mdb")):
                try:
                    sizes.add_metric([data.parent.name.removeprefix("part-")], data.stat().st_size)
                except OSError:
                    continue  # a partition being replaced by a restore; the next scrape sees it
        return [handles, txn, sizes]

    def _replication(self) -> list[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        m = self.metrics
        statuses = m.replication_status() if m.replication_status is not None else []
        if not statuses:
            return []
        now = m.clock()
        labels = ["source"]
        applied = GaugeMetricFamily(f"{NAMESPACE}_replication_applied_txn_id",
                                    "Newest transaction of the source applied here", labels=labels)
        lag = GaugeMetricFamily(f"{NAMESPACE}_replication_lag_transactions",
                                "Transactions the last pull round from the source had to apply", labels=labels)
        lag_seconds = GaugeMetricFamily(f"{NAMESPACE}_replication_lag_seconds",
                                        "Seconds between now and the source's time of the newest state pulled",
                                        labels=labels)
        success = GaugeMetricFamily(f"{NAMESPACE}_replication_last_success_timestamp_seconds",
                                    "When the last pull from the source succeeded (Unix time)", labels=labels)
        errors = CounterMetricFamily(f"{NAMESPACE}_replication_errors", "Failed pulls from the source",
                                     labels=labels)
        last_error = GaugeMetricFamily(f"{NAMESPACE}_replication_last_error_info",
                                       "The last pull error of the source (value: its Unix time)",
                                       labels=["source", "error"])
        for status in sorted(statuses, key=lambda s: s.queue):
            source = [status.queue]
            applied.add_metric(source, status.last_txn_id)
            lag.add_metric(source, status.lag_txns)
            seconds = status.lag_seconds(now)
            if seconds is not None:
                lag_seconds.add_metric(source, seconds)
            if status.last_success_time is not None:
                success.add_metric(source, status.last_success_time)
            errors.add_metric(source, status.errors)
            if status.last_error is not None and status.last_error_time is not None:
                last_error.add_metric([status.queue, status.last_error], status.last_error_time)
        return [applied, lag, lag_seconds, success, errors, last_error]


def _version() -> str:
    try:
        return metadata.version("hdlserver")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- the hooks the listeners use


class MeteredAccessLog(AccessLog):
    """The access log of a UDP or TCP listener that also counts every answered request."""

    def __init__(self, enabled: bool, transport: str, recorder: RequestRecorder) -> None:
        super().__init__(enabled, transport)
        self.observe = recorder.record  # bound once: one attribute lookup less per request

    def record(self, client: str, suggested: tuple[int, int], started: float, opcode: int, response_code: int,
               handle: bytes, identity: str = "") -> None:
        self.observe(opcode, response_code, started)
        if self.enabled:  # checked here too: no second call on the hot path when access logging is off
            super().record(client, suggested, started, opcode, response_code, handle, identity)


def access_log(metrics: Metrics | None, enabled: bool, transport: str) -> AccessLog:
    """The access log of a UDP or TCP listener: a counting one when metrics are on."""
    if metrics is None:
        return AccessLog(enabled, transport)
    return MeteredAccessLog(enabled, transport, metrics.recorder(transport))


class MeteredDispatcher(Dispatcher):
    """The dispatcher of the HTTP interfaces (REST API, tunnel, proxy pages), counting what it answers."""

    def __init__(self, state: ServerState, recorder: RequestRecorder) -> None:
        super().__init__(state)
        self.recorder = recorder

    def handle(self, env: Envelope, message: bytes, info: RequestInfo) -> Outcome:
        outcome = super().handle(env, message, info)
        self.recorder.record(outcome.opcode, outcome.response_code, info.received)
        return outcome


def enable_metrics(state: ServerState, loop_name: str) -> Metrics | None:
    """Create the registry when config.dct enables metrics and put it in ``state.metrics``; None when off."""
    config = metrics_config(state.settings)
    if not config.enabled:
        return None
    metrics = Metrics(config, loop_name=loop_name, clock=state.clock)
    metrics.watch_store(state.store, getattr(state.store, "path", None))
    metrics.add_gauge("challenges_pending", "Authentication challenges waiting for an answer",
                      lambda: len(state.challenges))
    metrics.add_gauge("sessions_open", "Sessions set up and not expired or terminated", lambda: len(state.sessions))
    metrics.attach_log_counter()
    state.metrics = metrics
    return metrics


def metrics_response(metrics: Metrics, request: HttpRequest) -> HttpResponse:
    """The answer to a request for ``/metrics``."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(405, [("Allow", "GET, HEAD")])
    body, content_type = metrics.render(request.header("accept") or "")
    return HttpResponse(200, [("Content-Type", content_type), ("Cache-Control", "no-store")],
                        b"" if request.method == "HEAD" else body)


class _MetricsOnly:
    """The application of the dedicated metrics listener."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != METRICS_PATH:
            return text_response(404, "Not found: this port serves /metrics only")
        return metrics_response(self.metrics, request)


async def start_metrics_listener(metrics: Metrics, slow: SlowPath) -> asyncio.AbstractServer:
    """The plain-HTTP listener of ``metrics_port``; OSError when the port cannot be bound."""
    loop = asyncio.get_running_loop()
    app, limits, connections = _MetricsOnly(metrics), HttpLimits(), HttpConnections()
    return await loop.create_server(lambda: HttpProtocol(app, limits, connections, slow),
                                    host=metrics.config.bind_address, port=metrics.config.port, reuse_address=True)

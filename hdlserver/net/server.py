"""Listeners and lifecycle: start the interfaces of config.dct, stop on a signal or when
``delete_this_to_stop_server`` disappears (server.md 13)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hdlserver.core.context import TRANSPORT_HTTP, TRANSPORT_TCP, TRANSPORT_UDP, InterfaceRole, ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.core.session_ops import SessionSweeper
from hdlserver.http.server import start_http_listener
from hdlserver.metrics import MeteredDispatcher, access_log, enable_metrics, start_metrics_listener
from hdlserver.net.loop import loop_name
from hdlserver.net.slow_path import SlowPath
from hdlserver.net.tcp import TcpConnections, TcpHandleProtocol
from hdlserver.net.udp import UdpHandleProtocol
from hdlserver.replication.task import start_replication
from hdlserver.wire.site import PROTO_HTTP, PROTO_TCP, PROTO_UDP

log = logging.getLogger("hdlserver.server")

STOP_FILE = "delete_this_to_stop_server"
STOP_FILE_POLL_SECONDS = 1.0
UDP_EXPIRY_SECONDS = 1.0
# How long a stopping server keeps sending the answers still buffered for slow readers (docker stop's
# default grace period is 10 s), polling every DRAIN_POLL_SECONDS.
DRAIN_SECONDS = 5.0
DRAIN_POLL_SECONDS = 0.02


def interface_role(state: ServerState, protocol: int, port: int) -> InterfaceRole:
    """Admin/query capability from the HS_SITE interface with this protocol and port; both if none."""
    for iface in state.this_server.interfaces:
        if iface.protocol == protocol and iface.port == port:
            return InterfaceRole(admin=iface.admin, query=iface.query)
    return InterfaceRole()


@dataclass
class RunningServer:
    """The listeners of one server; ``addresses`` holds the bound (host, port) per interface label."""

    state: ServerState
    slow: SlowPath = field(default_factory=SlowPath)  # every request the fast path does not answer
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    udp_transports: list[asyncio.DatagramTransport] = field(default_factory=list)
    udp_protocols: list[UdpHandleProtocol] = field(default_factory=list)
    tcp_connections: list[TcpConnections] = field(default_factory=list)
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)

    def close(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.udp_transports:
            transport.close()
        for conns in self.tcp_connections:
            conns.close_all()
        if self.state.metrics is not None:
            self.state.metrics.close()

    async def drain(self, timeout: float) -> None:
        """Wait until every closed TCP connection has sent what it still had buffered (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        while any(conns.open for conns in self.tcp_connections) and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_SECONDS)


async def start_listeners(state: ServerState) -> RunningServer:
    loop = asyncio.get_running_loop()
    running = RunningServer(state)
    dispatcher = Dispatcher(state)
    metrics = enable_metrics(state, loop_name())
    http_dispatcher = dispatcher if metrics is None else MeteredDispatcher(state, metrics.recorder(TRANSPORT_HTTP))
    limits = state.settings.server
    for iface in state.settings.interfaces:
        host = iface.bind_address or "0.0.0.0"
        if iface.kind == "udp":
            role = interface_role(state, PROTO_UDP, iface.bind_port)
            sock = _udp_socket(host, iface.bind_port)
            transport, protocol = await loop.create_datagram_endpoint(
                lambda role=role, iface=iface: UdpHandleProtocol(
                    state, dispatcher, role, access_log(metrics, iface.log_accesses, TRANSPORT_UDP),
                    limits.max_udp_pending, running.slow),
                sock=sock)
            running.udp_transports.append(transport)  # type: ignore[arg-type]
            running.udp_protocols.append(protocol)
            running.addresses[iface.label] = transport.get_extra_info("sockname")[:2]
        elif iface.kind == "tcp":
            role = interface_role(state, PROTO_TCP, iface.bind_port)
            conns = TcpConnections(limits.max_tcp_connections)
            idle = iface.max_idle_time_ms / 1000.0
            server = await loop.create_server(
                lambda role=role, conns=conns, idle=idle, iface=iface: TcpHandleProtocol(
                    state, dispatcher, role, access_log(metrics, iface.log_accesses, TRANSPORT_TCP), conns, idle,
                    running.slow),
                host=host, port=iface.bind_port, backlog=iface.backlog, reuse_address=True)
            running.servers.append(server)
            running.tcp_connections.append(conns)
            if metrics is not None:
                metrics.add_gauge("open_connections", "Open connections", lambda conns=conns: len(conns.open),
                                  transport=TRANSPORT_TCP, interface=iface.label)
            running.addresses[iface.label] = server.sockets[0].getsockname()[:2]
        else:
            role = interface_role(state, PROTO_HTTP, iface.bind_port)
            server = await start_http_listener(state, http_dispatcher, iface, role, running.slow)
            running.servers.append(server)
            running.addresses[iface.label] = server.sockets[0].getsockname()[:2]
    if metrics is not None and metrics.config.port is not None:
        server = await start_metrics_listener(metrics, running.slow)
        running.servers.append(server)
        running.addresses["metrics"] = server.sockets[0].getsockname()[:2]
    for label, (host, port) in running.addresses.items():
        log.info("listening on %s %s:%d", label, host, port)
    return running


def _udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


async def serve(state: ServerState, server_dir: Path, *, ready_file: Path | None = None,
                pid_file: Path | None = None, on_hangup: Callable[[], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT or until the stop file is deleted; then close everything cleanly.

    SIGHUP calls ``on_hangup`` (the server passes the log files' reopen, for logrotate) and never stops
    the server.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):  # no SIGHUP on Windows
        loop.add_signal_handler(signal.SIGHUP, _hangup, on_hangup)
    running = await start_listeners(state)
    replication = start_replication(state, server_dir)  # pull loop (mirrors), txn log pruning
    if state.metrics is not None and state.mirror is not None:
        state.metrics.watch_replication(state.mirror.status)
    stop_file = server_dir / STOP_FILE
    stop_file.write_text("Delete this file to stop the handle server.\n", encoding="utf-8")
    if pid_file is not None:
        pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    if ready_file is not None:
        ready_file.write_text(_addresses_text(running), encoding="utf-8")
    log.info("hdlserver started on %s with %d handles", loop_name(), state.store.count_handles())
    sweeper = SessionSweeper(state.sessions)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STOP_FILE_POLL_SECONDS)
            if not stop_file.exists():
                log.info("%s was deleted: stopping", STOP_FILE)
                stop.set()
            for protocol in running.udp_protocols:
                protocol.expire()
            sweeper.tick(state.clock())
    finally:
        log.info("stopping")
        await running.slow.close(DRAIN_SECONDS)  # answers of requests under way go out first
        running.close()
        await replication.stop()
        for server in running.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        await running.drain(DRAIN_SECONDS)
        state.store.close()
        with contextlib.suppress(FileNotFoundError):
            stop_file.unlink()
        if pid_file is not None:
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
        log.info("stopped")


def _hangup(on_hangup: Callable[[], None] | None) -> None:
    if on_hangup is None:
        log.info("SIGHUP: no log files to reopen")
        return
    on_hangup()
    log.info("SIGHUP: log files reopened")  # after the reopen, so this line starts the new files


def _addresses_text(running: RunningServer) -> str:
    return "".join(f"{label} {host} {port}\n" for label, (host, port) in running.addresses.items())

"""HTTP interface test support: server directories with an ``hdl_http`` interface, the listener run in-process
(a background event-loop thread), and small blocking HTTP clients over real loopback sockets."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers import free_port, setup_server_dir

from hdlserver.config.dct import format_dct, load_dct
from hdlserver.config.settings import InterfaceConfig
from hdlserver.core.context import ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.http.rest import Authenticator
from hdlserver.http.server import start_http_listener
from hdlserver.net.loop import loop_name
from hdlserver.net.server import interface_role
from hdlserver.net.slow_path import SlowPath
from hdlserver.serverdir import open_server_state
from hdlserver.wire.site import PROTO_HTTP

TIMEOUT = 10.0


def add_http_interface(directory: Path, port: int, *, interface: Mapping[str, str] | None = None,
                       http_config: Mapping[str, object] | None = None, server_config: Mapping[str, str] | None = None,
                       label: str = "hdl_http", site_interface: tuple[bool, bool] | None = None) -> None:
    """Add ``label`` with ``<label>_config`` (127.0.0.1:port) to config.dct, optionally an ``http_config``
    table and other keys in server_config, and optionally an HTTP interface (query, admin) to siteinfo.json."""
    config_path = directory / "config.dct"
    config = load_dct(config_path)
    config["interfaces"] = [*config["interfaces"], label]  # type: ignore[misc]
    config[f"{label}_config"] = {"bind_address": "127.0.0.1", "bind_port": str(port), "log_accesses": "yes",
                                 **(interface or {})}
    if http_config is not None:
        config["server_config"]["http_config"] = dict(http_config)  # type: ignore[index]
    config["server_config"].update(server_config or {})  # type: ignore[union-attr]
    config_path.write_text(format_dct(config), encoding="utf-8")
    if site_interface is not None:
        site_path = directory / "siteinfo.json"
        site = json.loads(site_path.read_text(encoding="utf-8"))
        query, admin = site_interface
        site["servers"][0]["interfaces"].append({"query": query, "admin": admin, "protocol": "HTTP", "port": port})
        site_path.write_text(json.dumps(site, indent=2), encoding="utf-8")


def http_server_dir(directory: Path, **options: object) -> tuple[int, int]:
    """A fresh server directory (prefix TEST, secret 'secret', TEST/hello) with an HTTP interface.

    Returns (handle port, http port).
    """
    port = setup_server_dir(directory)
    http_port = free_port()
    add_http_interface(directory, http_port, **options)  # type: ignore[arg-type]
    return port, http_port


@dataclass
class InProcessHttp:
    """The HTTP listener of a server directory, on an event loop in a background thread."""

    state: ServerState
    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    server: asyncio.AbstractServer

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def call(self, fn: object) -> object:
        """Run a plain function on the server's loop thread (e.g. to read its state safely)."""
        async def run() -> object:
            return fn()  # type: ignore[operator]
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT)


def http_interface(state: ServerState) -> InterfaceConfig:
    return next(i for i in state.settings.interfaces if i.kind == "http")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop the server itself runs on: uvloop when installed."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@contextmanager
def in_process_http(directory: Path, authenticate: Authenticator | None = None) -> Iterator[InProcessHttp]:
    """Open the server directory and serve its first HTTP interface until the block ends."""
    state = open_server_state(directory)
    iface = http_interface(state)
    loop = new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="http-test-loop", daemon=True)
    thread.start()
    try:
        dispatcher = Dispatcher(state)
        role = interface_role(state, PROTO_HTTP, iface.bind_port)
        slow = SlowPath()
        server = asyncio.run_coroutine_threadsafe(start_http_listener(state, dispatcher, iface, role, slow,
                                                                      authenticate=authenticate),
                                                  loop).result(TIMEOUT)
        try:
            yield InProcessHttp(state, iface.bind_port, loop, thread, server)
        finally:
            async def stop() -> None:
                await slow.close(TIMEOUT)
                server.close()
                await server.wait_closed()
            asyncio.run_coroutine_threadsafe(stop(), loop).result(TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()
        state.store.close()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def request(address: tuple[str, int], method: str, path: str, body: bytes | str | None = None,
            headers: Mapping[str, str] | None = None, context: ssl.SSLContext | None = None) -> Reply:
    """One HTTP(S) request on a new connection."""
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(*address, timeout=TIMEOUT)
    else:
        conn = http.client.HTTPSConnection(*address, timeout=TIMEOUT, context=context)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


class ResponseReader:
    """Reads HTTP/1.1 responses (Content-Length bodies) one after the other from a raw socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self, what: str) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed inside a response {what}")
        self.buffer += chunk

    def next(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill("head")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill("body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body


def read_http_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read exactly one response; bytes after it are an error."""
    reader = ResponseReader(sock)
    response = reader.next()
    if reader.buffer:
        raise AssertionError(f"unexpected bytes after the response: {reader.buffer!r}")
    return response


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes the connection (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True

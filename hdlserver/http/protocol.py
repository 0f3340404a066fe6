"""HTTP/1.1 on an asyncio transport (plain or TLS), parsed by h11.

One connection serves requests one after the other (keep-alive), pipelined requests included: h11 keeps
the bytes of the next request until the current response is written. Limits that keep a slow or hostile
client from holding the server (all bounded):

* ``header_timeout``: the whole request head must arrive within this time of its first byte;
* ``idle_timeout``: no byte for this long -- between requests or inside one -- closes the connection;
* ``max_header_bytes``: a longer request head is answered 431 and the connection closed;
* ``max_body_bytes``: a longer body (declared or received) is answered 413 and the connection closed.

The application is a plain function from ``HttpRequest`` to ``HttpResponse``; it runs in the slow path's
worker thread (hdlserver/net/slow_path.py), never on the event loop, and the connection reads nothing
more until its response is written. When the slow path is full the answer is 503 at once. A
``HandOverResponse`` (a replication stream) ends the connection's HTTP life: its head and first bytes are
written, then its ``take_over`` owns the transport and writes the rest of the body up to the close.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import h11

from hdlserver.config.settings import InterfaceConfig
from hdlserver.http.messages import TEXT_CONTENT_TYPE, HttpRequest, HttpResponse
from hdlserver.net.slow_path import SlowPath, SlowPathClosed

log = logging.getLogger("hdlserver.http")

HttpApp = Callable[[HttpRequest], HttpResponse]

DEFAULT_TIMEOUT = 30.0  # seconds; Jetty's idle time for the Java server's connectors
MAX_HEADER_BYTES = 8192  # Jetty's request header size in the Java server
MAX_BODY_BYTES = 4 * 1024 * 1024  # a native message is at most 262 164 bytes; JSON records are larger
_NO_BODY_STATUSES = frozenset({204, 304})
_FRAMING_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})


@dataclass(slots=True)
class HandOverResponse(HttpResponse):
    """A response whose body goes on after ``body``: ``take_over`` gets the transport once the head and
    ``body`` are written, writes the rest and closes it. The body is close-delimited (no Content-Length, no
    chunking) because Java's native HTTP client reads the bytes after the head raw, up to the close."""

    take_over: Callable[[asyncio.Transport], None] | None = None


@dataclass(frozen=True, slots=True)
class HttpLimits:
    idle_timeout: float = DEFAULT_TIMEOUT
    header_timeout: float = DEFAULT_TIMEOUT
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def for_interface(cls, iface: InterfaceConfig) -> HttpLimits:
        """The interface's ``max_idle_time`` is the idle timeout (0 = the default); the request head must
        arrive within the same time, at most ``DEFAULT_TIMEOUT``."""
        idle = iface.max_idle_time_ms / 1000.0 if iface.max_idle_time_ms > 0 else DEFAULT_TIMEOUT
        return cls(idle_timeout=idle, header_timeout=min(idle, DEFAULT_TIMEOUT))


class HttpConnections:
    """The open connections of one listener, so that it can refuse more than its limit and close them all."""

    def __init__(self) -> None:
        self.open: set[HttpProtocol] = set()

    def __len__(self) -> int:
        return len(self.open)

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()


class HttpProtocol(asyncio.Protocol):
    def __init__(self, app: HttpApp, limits: HttpLimits, connections: HttpConnections, slow: SlowPath) -> None:
        self.app = app
        self.slow = slow
        self._waiting = False  # the response to the current request is being made in the slow path
        self.limits = limits
        self.connections = connections
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.secure = False
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._idle: asyncio.TimerHandle | None = None
        self._head_deadline: asyncio.TimerHandle | None = None
        self._writing_paused = False

    # --- asyncio callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        self.secure = transport.get_extra_info("ssl_object") is not None
        self.connections.open.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.open.discard(self)
        for timer in (self._idle, self._head_deadline):
            if timer is not None:
                timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self._arm_idle()
        if self.h11.their_state is h11.IDLE:
            self._arm_head_deadline()
        try:
            self.h11.receive_data(data)
        except RuntimeError:  # bytes after the peer's own close: nothing more to read
            return
        self._process()

    def eof_received(self) -> bool | None:
        try:
            self.h11.receive_data(b"")
        except RuntimeError:
            return None
        if self._waiting:
            return True  # half-closed: keep the transport for the response; h11 then reports the close
        self._process()
        return None  # the transport closes once what was written is sent

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.transport is not None and not self._waiting:
            self.transport.resume_reading()
            self._process()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # --- timers ---------------------------------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.limits.idle_timeout, self._timed_out, "idle")

    def _arm_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = asyncio.get_running_loop().call_later(
                self.limits.header_timeout, self._timed_out, "request head")

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _timed_out(self, what: str) -> None:
        if self._waiting:  # the client waits for us, not the other way round
            self._arm_idle()
            return
        log.debug("closing HTTP connection from %s: %s timeout", self.peer, what)
        self.close()

    # --- request processing ---------------------------------------------------------------------------

    def _process(self) -> None:
        while (self.transport is not None and not self.transport.is_closing() and not self._writing_paused
               and not self._waiting):
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint, f"Bad request: {exc}")
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                    return
                self.h11.start_next_cycle()
                if self.h11.trailing_data[0]:
                    self._arm_head_deadline()
                continue
            if isinstance(event, h11.Request):
                self._start_request(event)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.limits.max_body_bytes:
                    self._refuse(413, "Request body too large")
            elif isinstance(event, h11.EndOfMessage):
                self._respond()
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _start_request(self, event: h11.Request) -> None:
        self._cancel_head_deadline()
        self._request = event
        self._body = bytearray()
        # h11 bounds only a head it is still waiting for; one that arrived whole is measured here
        head_size = len(event.method) + len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if head_size > self.limits.max_header_bytes:
            self._refuse(431, "Request header fields too large")
            return
        declared = next((v for k, v in event.headers if k == b"content-length"), None)
        if declared is not None and any(k == b"transfer-encoding" for k, _ in event.headers):
            # RFC 9112 6.1: a request smuggling vector; refuse it and close rather than guess the framing
            self._refuse(400, "Bad request: both Content-Length and Transfer-Encoding")
            return
        if declared is not None and int(declared) > self.limits.max_body_bytes:
            self._refuse(413, "Request body too large")
            return
        if self.h11.they_are_waiting_for_100_continue:
            self._write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))

    def _respond(self) -> None:
        event = self._request
        if event is None:
            return
        self._request = None
        request = HttpRequest(
            method=event.method.decode("ascii", "replace"),
            target=event.target.decode("utf-8", "replace"),
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers),
            body=bytes(self._body), client=self.peer, secure=self.secure, received=time.monotonic(),
            http_version=event.http_version.decode("ascii", "replace"))
        self._body = bytearray()
        if self.slow.full:
            self._send(HttpResponse(503, [("Content-Type", TEXT_CONTENT_TYPE)], b"Server too busy"),
                       head_only=request.method == "HEAD")
            self._after_response()
            return
        try:
            future = self.slow.run(self.app, request)
        except SlowPathClosed:
            self.close()
            return
        self._waiting = True
        if self.transport is not None:
            self.transport.pause_reading()
        future.add_done_callback(functools.partial(self._answered, request=request))

    def _answered(self, done: asyncio.Future[HttpResponse], *, request: HttpRequest) -> None:
        """The application's response (on the event loop): send it, then go on with what arrived meanwhile."""
        self._waiting = False
        try:
            response = done.result()
        except Exception:
            log.exception("HTTP %s %s from %s failed", request.method, request.target, self.peer)
            response = HttpResponse(500, [("Content-Type", TEXT_CONTENT_TYPE)], b"Internal server error")
        if self.transport is None or self.transport.is_closing():
            return  # the client went away meanwhile
        if isinstance(response, HandOverResponse) and response.take_over is not None:
            self._hand_over(response, response.take_over)
            return
        self._send(response, head_only=request.method == "HEAD")
        self._after_response()
        if self.transport is not None and not self.transport.is_closing():
            if not self._writing_paused:
                self.transport.resume_reading()
            self._process()

    def _after_response(self) -> None:
        if self.h11.our_state is h11.MUST_CLOSE:
            self.close()
        else:
            self._arm_idle()

    def _hand_over(self, response: HttpResponse, take_over: Callable[[asyncio.Transport], None]) -> None:
        """Write the head by hand (h11 would chunk a body of unknown length for an HTTP/1.1 client), then
        leave the connection to ``take_over``: no more requests are read on it."""
        transport, self.transport = self.transport, None
        self.connections.open.discard(self)
        for timer in (self._idle, self._head_deadline):
            if timer is not None:
                timer.cancel()
        if transport is None or transport.is_closing():
            return
        lines = [f"HTTP/1.1 {response.status} {_reason(response.status)}"]
        lines += [f"{k}: {v}" for k, v in response.headers if k.lower() not in _FRAMING_HEADERS]
        lines.append("Connection: close")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        take_over(transport)

    def _send(self, response: HttpResponse, head_only: bool = False) -> None:
        headers = [(k, v) for k, v in response.headers if k.lower() not in _FRAMING_HEADERS]
        body = response.body
        if response.status in _NO_BODY_STATUSES:
            body = b""
        else:
            headers.append(("Content-Length", str(len(body))))
        if response.close:
            headers.append(("Connection", "close"))
        try:
            out = self.h11.send(h11.Response(status_code=response.status, headers=headers,
                                             reason=_reason(response.status)))
            if body and not head_only:
                out += self.h11.send(h11.Data(data=body))
            out += self.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            log.exception("cannot send the HTTP response to %s", self.peer)
            self.close()
            return
        self._write(out)

    def _refuse(self, status: int, text: str) -> None:
        """Answer an unusable request with ``status`` (if a response can still be sent) and close."""
        self._request = None
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._send(HttpResponse(status, [("Content-Type", TEXT_CONTENT_TYPE)], text.encode("utf-8"),
                                    close=True))
        self.close()

    def _write(self, data: bytes | None) -> None:
        if data and self.transport is not None:
            self.transport.write(data)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

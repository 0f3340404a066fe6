"""The HTTP interface: routing between the REST API, native tunnelling and the proxy pages, the headers every
response gets (CORS, ``http_config.headers``), and ``start_http_listener``.

Routing, as the Java server's root web app does it:

* ``/api`` and ``/api/...`` -> the REST API (server.md 14);
* ``/hrls/...`` -> reverse lookup (hrls.py), as the B2HANDLE servlet pyhandle searches with;
* a POST with Accept and Content-Type ``application/x-hdl-message`` -> a native message (wire.md 13.2);
* anything else -> the proxy pages, or with ``enable_proxy = no`` the native handler (POST = native message,
  GET = redirect to ``/api/handles/...``);
* ``enable_root_web_app = no``: nothing is served (404).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import replace
from pathlib import Path

from hdlserver.config.settings import InterfaceConfig
from hdlserver.core.context import InterfaceRole, ServerState
from hdlserver.core.dispatch import Dispatcher
from hdlserver.http.certificate import load_or_create_certificate
from hdlserver.http.hrls import ReverseLookup, is_hrls_path
from hdlserver.http.messages import HttpRequest, HttpResponse, text_response
from hdlserver.http.protocol import HttpConnections, HttpLimits, HttpProtocol
from hdlserver.http.proxy import ProxyPages
from hdlserver.http.rest import Authenticator, RestApi, is_api_path
from hdlserver.http.tls import TlsMode, UnifiedListener, listening_socket, server_ssl_context
from hdlserver.http.tunnel import NativeTunnel, is_native_request
from hdlserver.metrics import METRICS_PATH, metrics_response
from hdlserver.net.access import AccessLog
from hdlserver.net.slow_path import SlowPath
from hdlserver.wire.site import PROTO_HTTPS

log = logging.getLogger("hdlserver.http")

CORS_METHODS = ("GET", "POST", "HEAD", "PUT", "DELETE")
CORS_HEADERS = ("X-Requested-With", "Authorization", "Origin", "Accept", "Content-Type")
CORS_MAX_AGE = "1800"
# Response headers a browser shows scripts without being told (CORS "simple response headers").
_SIMPLE_HEADERS = frozenset({"cache-control", "content-language", "content-type", "expires", "last-modified",
                             "pragma"})
_NOT_ECHOED_BY_TRACE = frozenset({"authorization", "cookie"})
_NATIVE_METHODS = "GET, HEAD, POST, TRACE, OPTIONS"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def tls_role(state: ServerState, port: int, role: InterfaceRole) -> InterfaceRole:
    """What TLS connections may do: the HTTP role, widened by an HTTPS interface on the same port (as Java's
    native handler allows on secure connections whatever the HTTP or the HTTPS entry allows)."""
    for iface in state.this_server.interfaces:
        if iface.protocol == PROTO_HTTPS and iface.port == port:
            return InterfaceRole(admin=role.admin or iface.admin, query=role.query or iface.query)
    return role


def _networks(texts: tuple[str, ...]) -> list[IpNetwork]:
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            log.warning("ignoring %r in remote_address_internal_proxies: not an address or CIDR block", text)
    return networks


def _in_networks(address: str, networks: list[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class HttpApplication:
    """Answers one request. REST credentials on TLS connections (auth.md 10) are verified by ``authenticate``,
    by default ``RestAuthenticator`` (Basic and ``Authorization: Handle`` against this server's store)."""

    def __init__(self, state: ServerState, dispatcher: Dispatcher, iface: InterfaceConfig, role: InterfaceRole,
                 server_dir: Path, authenticate: Authenticator | None = None) -> None:
        http = state.settings.server.http_config
        container = state.settings.servlet_container
        log_accesses = iface.log_accesses or (container is not None and container.log_accesses)
        self.enable_trace = http.enable_trace and iface.enable_trace and (container is None or container.enable_trace)
        self.enable_proxy = http.enable_proxy
        self.enable_root = http.enable_root_web_app and (container is None or container.enable_root_web_app)
        self.extra_headers = list(http.headers)
        self.remote_address_header = http.remote_address_header
        self.internal_proxies = _networks(http.remote_address_internal_proxies)
        self.rest = RestApi(state, dispatcher, log_accesses=log_accesses, authenticate=authenticate)
        self.hrls = ReverseLookup(state.store, self.rest.authenticate)
        self.tunnel = NativeTunnel(state, dispatcher, role, tls_role(state, iface.bind_port, role),
                                   AccessLog(log_accesses, "HTTP"))
        self.proxy = ProxyPages(state, dispatcher, server_dir, http)
        metrics = state.metrics
        self.metrics = metrics if metrics is not None and metrics.config.on_http_interfaces else None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request = self._with_client_address(request)
        response = self._route(request)
        for name, value in self.extra_headers:
            if response.header(name) is None:
                response.headers.append((name, value))
        self._add_cors_headers(request, response)
        return response

    def _route(self, request: HttpRequest) -> HttpResponse:
        if request.method == "TRACE":
            return self._trace(request)
        if request.path == METRICS_PATH and self.metrics is not None:  # asked for in config.dct: always served
            return metrics_response(self.metrics, request)
        if not self.enable_root:
            return text_response(404, "Not found")
        if is_api_path(request.path):
            return self.rest.handle(request)
        if is_hrls_path(request.path):
            return self.hrls.handle(request)
        if is_native_request(request):
            return self.tunnel.handle(request)
        if self.enable_proxy:
            return self.proxy.handle(request)
        if request.method == "POST":
            return self.tunnel.handle(request)
        if request.method in ("GET", "HEAD"):
            return self.tunnel.redirect_to_api(request)
        if request.method == "OPTIONS":
            return HttpResponse(200, [("Allow", _NATIVE_METHODS)])
        return HttpResponse(405, [("Allow", _NATIVE_METHODS)])

    def _trace(self, request: HttpRequest) -> HttpResponse:
        if not self.enable_trace:
            return text_response(405, "TRACE is disabled")
        lines = [f"TRACE {request.target} HTTP/{request.http_version}"]
        lines += [f"{name}: {value}" for name, value in request.headers if name not in _NOT_ECHOED_BY_TRACE]
        return HttpResponse(200, [("Content-Type", "message/http")], ("\r\n".join(lines) + "\r\n").encode("latin-1"))

    def _with_client_address(self, request: HttpRequest) -> HttpRequest:
        """The client behind a trusted reverse proxy (``remote_address_header``, e.g. X-Forwarded-For): the
        right-most address of the header that is not itself one of ``remote_address_internal_proxies``."""
        if self.remote_address_header is None:
            return request
        if self.internal_proxies and not _in_networks(request.client, self.internal_proxies):
            return request
        forwarded = request.header(self.remote_address_header)
        if not forwarded:
            return request
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        client = next((a for a in reversed(chain) if not _in_networks(a, self.internal_proxies)), chain[0])
        return replace(request, client=client)

    @staticmethod
    def _add_cors_headers(request: HttpRequest, response: HttpResponse) -> None:
        origin = request.header("origin")
        if origin is None:
            return
        requested_method = request.header("access-control-request-method")
        if request.method == "OPTIONS" and requested_method is not None:
            requested_headers = [h.strip().lower() for h in
                                 (request.header("access-control-request-headers") or "").split(",") if h.strip()]
            allowed_headers = {h.lower() for h in CORS_HEADERS}
            if requested_method not in CORS_METHODS or not set(requested_headers) <= allowed_headers:
                return
            response.headers += [("Access-Control-Allow-Methods", ",".join(CORS_METHODS)),
                                 ("Access-Control-Allow-Headers", ",".join(CORS_HEADERS)),
                                 ("Access-Control-Max-Age", CORS_MAX_AGE)]
        else:
            exposed = ["Content-Length"] + [name for name, _ in response.headers
                                            if name.lower() not in _SIMPLE_HEADERS
                                            and not name.lower().startswith("access-control-")]
            response.headers.append(("Access-Control-Expose-Headers", ",".join(dict.fromkeys(exposed))))
        response.headers += [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")]


def _tls_mode(iface: InterfaceConfig) -> TlsMode:
    if iface.http_only:
        return TlsMode.PLAIN
    return TlsMode.TLS if iface.https else TlsMode.DETECT


async def start_http_listener(state: ServerState, dispatcher: Dispatcher, iface: InterfaceConfig,
                              role: InterfaceRole, slow: SlowPath, *, authenticate: Authenticator | None = None
                              ) -> UnifiedListener:
    """Listen on the interface's address and port; HTTPS on the same port unless ``http_only``.

    Creates ``serverCertificate.pem`` (and for DSA server keys ``serverCertificatePrivateKey.bin``) in the
    server directory when TLS may be used and it does not exist yet. Raises ConfigError for an unusable
    certificate and OSError when the port cannot be bound.
    """
    server_dir = Path(state.settings.path).parent
    mode = _tls_mode(iface)
    ssl_context = None
    if mode is not TlsMode.PLAIN:
        if not iface.https_default_self_signed_cert and iface.https_keystore_file:
            log.warning("%s: Java keystores (https_keystore_file) are not supported; using serverCertificate.pem",
                        iface.label)
        if iface.https_client_auth != "false":
            log.warning("%s: TLS client certificates (https_client_auth) are not supported yet", iface.label)
        certificate = load_or_create_certificate(server_dir, state.signer.private_key, state.this_server.public_key)
        ssl_context = server_ssl_context(certificate)
    app = HttpApplication(state, dispatcher, iface, role, server_dir, authenticate)
    limits = HttpLimits.for_interface(iface)
    connections = HttpConnections()
    if state.metrics is not None:
        state.metrics.add_gauge("open_connections", "Open connections", connections.__len__, transport="HTTP",
                                interface=iface.label)
    sock = listening_socket(iface.bind_address or "0.0.0.0", iface.bind_port, iface.backlog)
    return UnifiedListener(sock, lambda: HttpProtocol(app, limits, connections, slow), mode, ssl_context,
                           start_timeout=limits.header_timeout,
                           max_connections=state.settings.server.max_tcp_connections,
                           open_connections=connections.__len__, close_connections=connections.close_all)


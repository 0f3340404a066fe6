"""GET_SITE_INFO from one server over TCP, UDP or the HTTP tunnel (HOME/UNHOME lines, hdl-home-na,
hdl-getsiteinfo): the site record that says which servers a prefix must be homed on."""

from __future__ import annotations

import http.client

from hdlserver.client.resolver import HandleResponseError, Resolver, build_request, decode_answer, raise_for_error
from hdlserver.wire.bodies import SiteInfoRequest, SiteInfoResponse
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, decode_envelope
from hdlserver.wire.site import SiteInfo, decode_site

HDL_MESSAGE_TYPE = "application/x-hdl-message"
SITE_INFO_VERSION = (2, 3)  # what Java's GetSiteInfo speaks, so that old servers answer too


def http_exchange(host: str, port: int, request: bytes, timeout: float = 30.0) -> bytes:
    """One native message through the HTTP tunnel (wire.md 13.1); returns the first answer message."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/%2F", body=request, headers={
            "Accept": HDL_MESSAGE_TYPE, "Content-Type": HDL_MESSAGE_TYPE, "User-Agent": "hdlserver"})
        body = conn.getresponse().read()
    finally:
        conn.close()
    if len(body) < ENVELOPE_SIZE:
        raise HandleResponseError(ResponseCode.PROTOCOL_ERROR, f"HTTP answer of {len(body)} bytes is no message")
    return body[: ENVELOPE_SIZE + decode_envelope(body).message_length]


def fetch_site_info(host: str, port: int, protocol: str) -> SiteInfo:
    """The site record served by ``host:port``; ``protocol`` is "tcp", "udp" or "http"."""
    if protocol in ("tcp", "udp"):
        return Resolver([(host, port)], udp=protocol == "udp", tcp=protocol == "tcp").get_site_info()
    request = build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(b"/"), version=SITE_INFO_VERSION)
    answer = decode_answer(http_exchange(host, port, request))
    raise_for_error(answer)
    if not isinstance(answer.body, SiteInfoResponse):
        raise HandleResponseError(ResponseCode.PROTOCOL_ERROR, "unexpected answer to a site info request")
    return decode_site(answer.body.site_data)

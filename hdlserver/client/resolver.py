"""A Python handle resolver: builds requests, talks UDP then TCP, returns decoded answers.

    from hdlserver.client.resolver import Resolver
    r = Resolver([("127.0.0.1", 2641)])
    result = r.resolve("DEMO/hello")
    for v in result.values: print(v.index, v.type, v.data)
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hdlserver.client.transport import ClientTimeout, tcp_exchange, udp_exchange
from hdlserver.errors import HandleError
from hdlserver.wire.bodies import (
    ErrorBody,
    ResolutionRequest,
    ResolutionResponse,
    SiteInfoRequest,
    SiteInfoResponse,
)
from hdlserver.wire.buffer import to_utf8
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.envelope import ENVELOPE_SIZE, SERVER_VERSION, Envelope, decode_envelope, encode_envelope
from hdlserver.wire.message import Header, Message, decode_message, encode_message
from hdlserver.wire.site import PROTO_TCP, PROTO_UDP, SiteInfo, decode_site
from hdlserver.wire.values import HandleValue

REQUEST_LIFETIME = 43_200
JAVA_REQUEST_FLAGS = OpFlag.REC | OpFlag.CA | OpFlag.PO


class HandleResponseError(HandleError):
    """The server answered with an error response code."""

    def __init__(self, response_code: int, message: str = "") -> None:
        name = ResponseCode.name_of(response_code)
        super().__init__(f"Error({response_code}): {name}" + (f": {message}" if message else ""))
        self.response_code = response_code
        self.message = message


@dataclass(frozen=True)
class Resolution:
    handle: bytes
    values: tuple[HandleValue, ...]
    transport: str
    server: tuple[str, int]


def servers_of_site(site: SiteInfo) -> list[tuple[str, int, int]]:
    """(address, port, protocol) of every UDP/TCP query interface of a site, UDP first."""
    out = []
    for protocol in (PROTO_UDP, PROTO_TCP):
        for server in site.servers:
            for iface in server.interfaces:
                if iface.protocol == protocol and iface.query:
                    out.append((server.address_text(), iface.port, protocol))
    return out


def build_request(opcode: int, body: object, flags: int = JAVA_REQUEST_FLAGS,
                  version: tuple[int, int] = SERVER_VERSION) -> bytes:
    header = Header(opcode=opcode, flags=flags, site_serial=-1, expiration=int(time.time()) + REQUEST_LIFETIME)
    message = encode_message(Message(header=header, body=body), version)
    env = Envelope(major=version[0], minor=version[1], suggested_major=SERVER_VERSION[0],
                   suggested_minor=SERVER_VERSION[1], request_id=secrets.randbelow(2**31 - 1) + 1,
                   message_length=len(message))
    return encode_envelope(env) + message


def decode_answer(answer: bytes) -> Message:
    env = decode_envelope(answer)
    return decode_message(answer[ENVELOPE_SIZE:], (env.major, env.minor))


def raise_for_error(msg: Message) -> None:
    if msg.header.response_code != ResponseCode.SUCCESS:
        text = ""
        if isinstance(msg.body, ErrorBody):
            text = msg.body.message.decode("utf-8", "replace")
        raise HandleResponseError(msg.header.response_code, text)


class Resolver:
    """Resolves against fixed servers (host, port), UDP first then TCP, like the Java client."""

    def __init__(self, servers: Sequence[tuple[str, int]], *, udp: bool = True, tcp: bool = True,
                 tcp_timeout: float = 30.0) -> None:
        if not servers:
            raise ValueError("no servers to ask")
        self.servers = list(servers)
        self.udp = udp
        self.tcp = tcp
        self.tcp_timeout = tcp_timeout

    @classmethod
    def for_site(cls, site: SiteInfo, **kwargs: object) -> Resolver:
        seen: list[tuple[str, int]] = []
        for host, port, _proto in servers_of_site(site):
            if (host, port) not in seen:
                seen.append((host, port))
        return cls(seen, **kwargs)  # type: ignore[arg-type]

    def exchange(self, request: bytes) -> tuple[Message, str, tuple[str, int]]:
        errors: list[str] = []
        for address in self.servers:
            if self.udp:
                try:
                    return decode_answer(udp_exchange(address, request)), "UDP", address
                except (ClientTimeout, OSError) as exc:
                    errors.append(f"UDP {address[0]}:{address[1]}: {exc}")
            if self.tcp:
                try:
                    parts = tcp_exchange(address, request, self.tcp_timeout)
                    return decode_answer(parts[0]), "TCP", address
                except (OSError, HandleError) as exc:
                    errors.append(f"TCP {address[0]}:{address[1]}: {exc}")
        raise ClientTimeout("no server answered: " + "; ".join(errors))

    def resolve(self, handle: str | bytes, *, types: Sequence[str | bytes] = (), indexes: Sequence[int] = (),
                public_only: bool = True) -> Resolution:
        flags = JAVA_REQUEST_FLAGS if public_only else JAVA_REQUEST_FLAGS & ~OpFlag.PO
        body = ResolutionRequest(handle=to_utf8(handle), indexes=tuple(indexes),
                                 types=tuple(to_utf8(t) for t in types))
        msg, transport, address = self.exchange(build_request(OpCode.RESOLUTION, body, flags))
        raise_for_error(msg)
        if not isinstance(msg.body, ResolutionResponse):
            raise HandleResponseError(ResponseCode.PROTOCOL_ERROR, "unexpected answer to a resolution")
        return Resolution(msg.body.handle, msg.body.values, transport, address)

    def get_site_info(self) -> SiteInfo:
        msg, _transport, _address = self.exchange(build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(b"/"),
                                                                version=(2, 3)))
        raise_for_error(msg)
        if not isinstance(msg.body, SiteInfoResponse):
            raise HandleResponseError(ResponseCode.PROTOCOL_ERROR, "unexpected answer to a site info request")
        return decode_site(msg.body.site_data)

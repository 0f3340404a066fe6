"""``hdl-trace HANDLE``: resolve HANDLE printing every message exchanged on the way: which site serves its
prefix, each request sent (UDP first, then TCP, as the Java resolver does) and each answer received."""

from __future__ import annotations

import argparse
import time

from hdlserver.batch.executor import describe_error
from hdlserver.batch.routing import RoutingError
from hdlserver.batch.target_options import add_target_options, router_from_args
from hdlserver.cli.common import fail
from hdlserver.cli.qresolver import format_value
from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.client.transport import ClientTimeout, tcp_exchange, udp_exchange
from hdlserver.errors import ConfigError, HandleError
from hdlserver.wire.bodies import ErrorBody, ResolutionRequest, ResolutionResponse
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import decode_envelope
from hdlserver.wire.site import PROTO_TCP, PROTO_UDP, SiteInfo

Attempt = tuple[str, str, int]  # (transport, host, port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hdl-trace", description=__doc__)
    p.add_argument("handle", metavar="HANDLE")
    add_target_options(p)
    return p


def attempts_for(site: SiteInfo, handle: bytes) -> list[Attempt]:
    """The query interfaces of the server responsible for ``handle``: UDP ones first, then TCP."""
    server = site.responsible_server(handle)
    out = []
    for protocol, name in ((PROTO_UDP, "UDP"), (PROTO_TCP, "TCP")):
        out += [(name, server.address_text(), i.port) for i in server.interfaces if i.protocol == protocol and i.query]
    return out


def describe_site(site: SiteInfo) -> str:
    servers = ", ".join(f"{s.server_id}@{s.address_text()}" for s in site.servers)
    kind = "primary" if site.primary else "mirror"
    return f"{kind} site, serial {site.serial}, servers {servers}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handle = args.handle.encode("utf-8")
    print(f"resolving {args.handle}")
    try:
        router = router_from_args(args)
        site = router.site_for(handle)
    except (ConfigError, RoutingError) as exc:
        return fail(str(exc), 2)
    if site is None:
        host, port = router.admin_server(handle)
        attempts: list[Attempt] = [("UDP", host, port), ("TCP", host, port)]
        print(f"  server: {host}:{port} (given)")
    else:
        attempts = attempts_for(site, handle)
        print(f"  site: {describe_site(site)}")
    body = ResolutionRequest(handle=handle, indexes=(), types=())
    for transport, host, port in attempts:
        request = build_request(OpCode.RESOLUTION, body)
        print(f"  sending {transport} RESOLUTION request (id {decode_envelope(request).request_id}) to {host}:{port}")
        start = time.perf_counter()
        try:
            raw = udp_exchange((host, port), request) if transport == "UDP" else tcp_exchange((host, port), request)[0]
            answer = decode_answer(raw)
        except (ClientTimeout, HandleError, OSError) as exc:
            print(f"  no answer over {transport} from {host}:{port}: {describe_error(exc)}")
            continue
        env, header = decode_envelope(raw), answer.header
        print(f"  received {transport} answer from {host}:{port} in {(time.perf_counter() - start) * 1000:.1f} ms: "
              f"version {env.major}.{env.minor}, response code {header.response_code} "
              f"({ResponseCode.name_of(header.response_code)}), flags {header.flags:#010x}")
        if isinstance(answer.body, ResolutionResponse):
            print(f"\nGot Response: {answer.body.handle.decode('utf-8', 'replace')} "
                  f"({len(answer.body.values)} values)")
            for value in answer.body.values:
                print(format_value(value))
            return 0
        message = answer.body.message.decode("utf-8", "replace") if isinstance(answer.body, ErrorBody) else ""
        print(f"\nGot Error: Error({header.response_code}): {ResponseCode.name_of(header.response_code)}"
              + (f": {message}" if message else ""))
        return 1
    return fail("no server answered", 2)


if __name__ == "__main__":
    raise SystemExit(main())

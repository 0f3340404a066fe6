"""Which source site a dump comes from: the one that answers a GET_SITE_INFO fastest, as Java's
``ReplicationDaemon.getFastestSite`` chooses (REPLICATION.md, "Wire observations").

Each source site gets one GET_SITE_INFO (op 2, handle "/") at the server of the site responsible for
"/", over UDP first and then TCP, as the Java resolver sends it, each bounded in time. Sites that
answered with success come first, fastest first; then sites that answered with an error; then sites that
did not answer. All stay in the list, so a dump still tries the slow and the silent ones when the fast
ones fail. Ordering is a pure function of the measured timings; the probe is a thin I/O adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hdlserver.client.resolver import build_request, decode_answer
from hdlserver.client.transport import UDP_WAITS, ClientTimeout, tcp_exchange, udp_exchange
from hdlserver.errors import HandleError
from hdlserver.replication.source_sites import SourceSite
from hdlserver.wire.bodies import SiteInfoRequest
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.site import PROTO_TCP, PROTO_UDP, SiteInfo

BLANK_HANDLE = b"/"  # what Java's GET_SITE_INFO carries
PROBE_TCP_TIMEOUT = 5.0  # seconds for a TCP probe (connect and answer)

_ANSWERED_OK, _ANSWERED_ERROR, _NO_ANSWER = 0, 1, 2


@dataclass(frozen=True)
class Answer:
    response_code: int
    transport: str  # "UDP" or "TCP", and where: "UDP 127.0.0.1:2641"


Probe = Callable[[SiteInfo], Answer]  # raises HandleError / OSError when nothing answered


@dataclass(frozen=True)
class SiteTiming:
    source: SourceSite
    seconds: float  # time to the answer, or until the probe gave up
    answer: Answer | None
    error: str = ""

    @property
    def rank(self) -> int:
        if self.answer is None:
            return _NO_ANSWER
        return _ANSWERED_OK if self.answer.response_code == ResponseCode.SUCCESS else _ANSWERED_ERROR

    def describe(self) -> str:
        if self.answer is None:
            what = f"no answer ({self.error})"
        elif self.rank == _ANSWERED_OK:
            what = f"ok over {self.answer.transport}"
        else:
            code = self.answer.response_code
            what = f"RC {code} {ResponseCode.name_of(code)} over {self.answer.transport}"
        return f"{self.seconds * 1000:9.1f} ms  {self.source.name}: {what}"


def by_speed(timings: Sequence[SiteTiming]) -> list[SiteTiming]:
    """Successful answers fastest first, then error answers, then silent sites (each in their order)."""
    return sorted(timings, key=lambda t: (t.rank, t.seconds if t.rank == _ANSWERED_OK else 0.0))


def time_sites(sources: Sequence[SourceSite], probe: Probe,
               clock: Callable[[], float] = time.monotonic) -> list[SiteTiming]:
    """Probe every source site once, in order; the timings sorted by ``by_speed``."""
    timings = []
    for source in sources:
        start = clock()
        try:
            answer = probe(source.site)
        except (HandleError, OSError, ValueError) as e:
            timings.append(SiteTiming(source, clock() - start, None, str(e) or type(e).__name__))
            continue
        timings.append(SiteTiming(source, clock() - start, answer))
    return by_speed(timings)


def site_info_probe(tcp_timeout: float = PROBE_TCP_TIMEOUT, udp_waits: tuple[float, ...] = UDP_WAITS) -> Probe:
    """GET_SITE_INFO to the site's server for "/": its UDP query interfaces, then its TCP ones."""

    def probe(site: SiteInfo) -> Answer:
        server = site.responsible_server(BLANK_HANDLE)  # ValueError for a site without servers
        host = server.address_text()
        request = build_request(OpCode.GET_SITE_INFO, SiteInfoRequest(BLANK_HANDLE), version=(2, 3))
        errors: list[str] = []
        for protocol in (PROTO_UDP, PROTO_TCP):
            for port in dict.fromkeys(i.port for i in server.interfaces if i.protocol == protocol and i.query):
                where = f"{'UDP' if protocol == PROTO_UDP else 'TCP'} {host}:{port}"
                try:
                    raw = (udp_exchange((host, port), request, udp_waits) if protocol == PROTO_UDP
                           else tcp_exchange((host, port), request, tcp_timeout)[0])
                    return Answer(decode_answer(raw).header.response_code, where)
                except (ClientTimeout, OSError, HandleError) as e:
                    errors.append(f"{where}: {e}")
        raise ClientTimeout("; ".join(errors) or f"server {host} has no UDP or TCP query interface")

    return probe

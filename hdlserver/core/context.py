"""State the request handlers work with: the server's identity and storage, and one request's origin.

Handlers are pure functions of (request, RequestInfo, ServerState); the transports build RequestInfo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hdlserver.auth.challenges import ChallengeStore, IdAllocator
from hdlserver.auth.sessions import SessionStore
from hdlserver.config.settings import Settings
from hdlserver.core.answer_templates import AnswerTemplates
from hdlserver.core.homed import HomedPrefixes
from hdlserver.core.signing import ResponseSigner
from hdlserver.store.base import Store
from hdlserver.wire.site import ServerInfo, SiteInfo

if TYPE_CHECKING:  # hdlserver.metrics uses this module
    from hdlserver.metrics import Metrics
    from hdlserver.replication.mirror import Mirror

TRANSPORT_UDP = "UDP"
TRANSPORT_TCP = "TCP"
TRANSPORT_HTTP = "HTTP"
TRANSPORT_HTTPS = "HTTPS"  # a message tunnelled over a TLS connection (http/tunnel.py)


@dataclass(frozen=True, slots=True)
class InterfaceRole:
    """What a listener may serve, from the HS_SITE interface with its protocol and port (wire.md 12.3)."""

    admin: bool = True
    query: bool = True


@dataclass(frozen=True, slots=True)
class RequestInfo:
    transport: str
    client_address: str
    role: InterfaceRole
    received: float  # clock value when the request arrived (seconds)
    # An identity the transport has already verified (REST Basic / Handle authorization over HTTPS,
    # auth.md 10): (handle, index). The Authorizer treats it like an accepted challenge answer.
    verified_identity: tuple[bytes, int] | None = None


@dataclass(slots=True)
class ServerState:
    settings: Settings
    site: SiteInfo
    site_bytes: bytes  # the encoded HS_SITE record served by GET_SITE_INFO
    this_server: ServerInfo
    this_server_position: int  # array position in site.servers (for the multi-server hash)
    store: Store
    homed: HomedPrefixes
    signer: ResponseSigner
    challenges: ChallengeStore
    ids: IdAllocator  # challenge and session ids come from one counter (auth.md 3)
    sessions: SessionStore  # live sessions (auth.md 9), shareable between workers (design.md 5)
    clock: Callable[[], float]
    metrics: Metrics | None = None  # the Prometheus registry when config.dct enables metrics (hdlserver.metrics)
    # The replication pull loop when this server replicates: its status() feeds metrics, dumps carry its state.
    mirror: Mirror | None = None
    answer_templates: AnswerTemplates = field(default_factory=AnswerTemplates)  # fast_answer's (resolve.py)

    @property
    def primary(self) -> bool:
        return self.site.primary

    @property
    def case_sensitive(self) -> bool:
        return self.settings.server.case_sensitive

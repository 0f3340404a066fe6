"""Running parsed GenericBatch items against handle servers, reporting each outcome as the Java tool does.

An operation that fails (error response, unreachable server, no identity) is reported and the batch goes
on with the next one. One admin connection is kept per server and reused for every operation of the batch
until the identity or the session settings change.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from hdlserver.auth import keys
from hdlserver.batch.operations import (
    Action,
    Authenticate,
    BatchItem,
    HandleOperation,
    HomePrefixes,
    Invalid,
    PublicKeyCredentials,
    SessionSetup,
)
from hdlserver.batch.routing import Address, Router, RoutingError, admin_interface
from hdlserver.client.admin import AdminClient, Identity, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.client.session import DEFAULT_SESSION_TIMEOUT
from hdlserver.errors import HandleError, KeyFileError
from hdlserver.wire.site import SiteInfo


class Status(Enum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    INVALID = "INVALID"


@dataclass(frozen=True, slots=True)
class Outcome:
    line: int
    status: Status
    label: str = ""  # "create", "add values", ... (empty for INVALID)
    handle: str = ""
    detail: str = ""
    seconds: float = 0.0
    counted: bool = True  # whether it is one of the "Total Entries" (AUTHENTICATE problems are not)

    def log_line(self) -> str:
        """``==>SUCCESS[12]: create:TEST/x``, ``==>FAILURE[12]: create:TEST/x: <why>``, ``==>INVALID[12]: <why>``."""
        if self.status is Status.INVALID:
            return f"==>INVALID[{self.line}]: {self.detail}"
        text = f"==>{self.status.value}[{self.line}]: {self.label}:{self.handle}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class BatchSummary:
    outcomes_total: int = 0
    successes: int = 0
    failures: int = 0
    invalid: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        if outcome.counted:
            self.outcomes_total += 1
        if outcome.status is Status.SUCCESS:
            self.successes += 1
            self.latencies.append(outcome.seconds)
        elif outcome.status is Status.FAILURE:
            self.failures += 1
            self.latencies.append(outcome.seconds)
        else:
            self.invalid += 1

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.invalid == 0


@dataclass(frozen=True, slots=True)
class SessionChoice:
    """How admin connections authenticate: one Diffie-Hellman session per server for the whole batch (the
    Java tool's way: one challenge, then MACs), or a challenge-response exchange for every request."""

    use_session: bool = True
    encrypted: bool = False
    timeout: int | None = None  # seconds; None: the Java client default


ClientFactory = Callable[[Address, Identity, SessionChoice, keys.PublicKey | None], AdminClient]
KeyLoader = Callable[[str, bytes | None], keys.PrivateKey]
SiteFetcher = Callable[[str, int, str], SiteInfo]


def describe_error(exc: Exception) -> str:
    if isinstance(exc, HandleResponseError | RoutingError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"cannot reach the server: {exc.strerror or exc}"
    return str(exc) or type(exc).__name__


def new_admin_client(address: Address, identity: Identity, choice: SessionChoice,
                     server_key: keys.PublicKey | None) -> AdminClient:
    """``server_key`` (from the site information, when known) verifies the signed session setup answer."""
    return AdminClient(address, identity, session=choice.use_session, encrypt=choice.encrypted,
                       server_key=server_key, session_timeout=choice.timeout or DEFAULT_SESSION_TIMEOUT)


def server_key_of(site: SiteInfo | None, address: Address) -> keys.PublicKey | None:
    """The public key of the site's server listening at ``address``; None when unknown or undecodable."""
    for server in site.servers if site is not None else ():
        if any((server.address_text(), i.port) == address for i in server.interfaces):
            try:
                return keys.public_key_from_bytes(server.public_key)
            except (HandleError, ValueError):
                return None
    return None


class BatchExecutor:
    """Runs batch items one by one; ``report`` gets every outcome as it happens, ``summary`` the totals.

    The collaborators that do I/O (admin clients, key files, site information) are injected, so the
    executor's rules can be tested without sockets."""

    def __init__(self, router: Router, *, report: Callable[[Outcome], None],
                 fetch_site_info: SiteFetcher, client_factory: ClientFactory = new_admin_client,
                 load_key: KeyLoader = keys.load_private_key, clock: Callable[[], float] = time.perf_counter,
                 session: SessionChoice = SessionChoice(), warn: Callable[[int, str], None] | None = None) -> None:
        self.router = router
        self.report = report
        self.fetch_site_info = fetch_site_info
        self.client_factory = client_factory
        self.load_key = load_key
        self.clock = clock
        self.session = session
        self.warn = warn
        self.summary = BatchSummary()
        self._identity: Identity | None = None
        self._identity_problem = "no AUTHENTICATE line before this operation"
        self._clients: dict[Address, AdminClient] = {}

    def close(self) -> None:
        """End every session (SESSION_TERMINATE) and close the connections."""
        for client in self._clients.values():
            with contextlib.suppress(HandleError, OSError):  # the server drops idle sessions by itself
                client.close_session()
            client.close()
        self._clients.clear()

    def run(self, items: Iterable[BatchItem]) -> BatchSummary:
        try:
            for item in items:
                self.execute(item)
        finally:
            self.close()
        return self.summary

    def _emit(self, outcome: Outcome) -> None:
        self.summary.add(outcome)
        self.report(outcome)

    def execute(self, item: BatchItem) -> None:
        if isinstance(item, Invalid):
            self._emit(Outcome(item.line, Status.INVALID, detail=item.reason, counted=item.operation))
        elif isinstance(item, Authenticate):
            self._authenticate(item)
        elif isinstance(item, SessionSetup):
            self._session_setup(item)
        elif isinstance(item, HandleOperation):
            self._handle_operation(item)
        else:
            self._home_prefixes(item)

    # --- identity and session ---------------------------------------------------------------------

    def _authenticate(self, item: Authenticate) -> None:
        self.close()
        creds = item.credentials
        handle = creds.handle.encode("utf-8")
        if isinstance(creds, PublicKeyCredentials):
            try:
                private_key = self.load_key(creds.key_file, creds.passphrase)
            except KeyFileError as exc:
                # Later operations must not run under an identity the file did not ask for.
                self._identity = None
                self._identity_problem = f"AUTHENTICATE at line {item.line} failed"
                self._emit(Outcome(item.line, Status.INVALID, detail=f"error in authentication: {exc}",
                                   counted=False))
                return
            self._identity = PublicKeyIdentity(handle, creds.index, private_key)
        else:
            self._identity = SecretKeyIdentity(handle, creds.index, creds.secret)

    def _session_setup(self, item: SessionSetup) -> None:
        self.close()
        if item.exchange_key and item.use_session and self.warn is not None:
            self.warn(item.line, "exchange-key session setup (PUBEXNGKEY*/PRIVEXNGKEYFILE) cannot work with "
                                 "Handle.Net 9.2 servers; using a Diffie-Hellman session")
        self.session = SessionChoice(item.use_session, item.encrypted, item.timeout)

    def _client(self, address: Address, site: SiteInfo | None) -> AdminClient:
        client = self._clients.get(address)
        if client is None:
            assert self._identity is not None
            client = self.client_factory(address, self._identity, self.session, server_key_of(site, address))
            self._clients[address] = client
        return client

    # --- operations ---------------------------------------------------------------------------------

    def _handle_operation(self, op: HandleOperation) -> None:
        label = op.action.value
        if self._identity is None:
            self._emit(Outcome(op.line, Status.FAILURE, label, op.handle, f"not sent: {self._identity_problem}"))
            return
        handle = op.handle.encode("utf-8")
        start = self.clock()
        try:
            client = self._client(self.router.admin_server(handle), self.router.site_for(handle))
            if op.action is Action.CREATE:
                client.create_handle(handle, op.values)
            elif op.action is Action.ADD:
                client.add_values(handle, op.values)
            elif op.action is Action.MODIFY:
                client.modify_values(handle, op.values)
            elif op.action is Action.REMOVE:
                client.remove_values(handle, op.indexes)
            else:
                client.delete_handle(handle)
        except (HandleError, OSError) as exc:
            self._emit(Outcome(op.line, Status.FAILURE, label, op.handle, describe_error(exc), self.clock() - start))
            return
        self._emit(Outcome(op.line, Status.SUCCESS, label, op.handle, seconds=self.clock() - start))

    def _home_prefixes(self, item: HomePrefixes) -> None:
        label = "home/unhome"
        try:
            site = self.fetch_site_info(item.host, item.port, item.protocol)
        except (HandleError, OSError) as exc:
            self._emit(Outcome(item.line, Status.INVALID, counted=False, detail=(
                f"error in {item.label}: cannot get the site information of {item.host}:{item.port} "
                f"over {item.protocol}: {describe_error(exc)}")))
            return
        if not site.primary:
            self._emit(Outcome(item.line, Status.INVALID, counted=False, detail=(
                f"error in {item.label}: {item.host}:{item.port} is not a primary server")))
            return
        for prefix in item.prefixes:
            if self._identity is None:
                self._emit(Outcome(prefix.line, Status.FAILURE, label, prefix.handle,
                                   f"not sent: {self._identity_problem}"))
                continue
            start = self.clock()
            try:
                for server in site.servers:  # a prefix is homed on every server of the site
                    client = self._client(admin_interface(server), site)
                    if item.home:
                        client.home_prefix(prefix.handle)
                    else:
                        client.unhome_prefix(prefix.handle)
            except (HandleError, OSError) as exc:
                self._emit(Outcome(prefix.line, Status.FAILURE, label, prefix.handle, describe_error(exc),
                                   self.clock() - start))
                continue
            self._emit(Outcome(prefix.line, Status.SUCCESS, label, prefix.handle, seconds=self.clock() - start))

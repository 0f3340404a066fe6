"""The batch executor with a recording stand-in for AdminClient: outcomes, identities, sessions, HOME rules,
and the genericbatch CLI's progress line and statistics."""

from __future__ import annotations

import io
from typing import Any

import pytest

from hdlserver.auth import keys
from hdlserver.batch.executor import BatchExecutor, Outcome, SessionChoice, Status, server_key_of
from hdlserver.batch.parser import parse_batch, split_lines
from hdlserver.batch.routing import FixedRouter, RoutingError, SiteRouter
from hdlserver.cli.genericbatch import Progress, count_operations, latency_line, write_statistics
from hdlserver.client.admin import Identity, PublicKeyIdentity, SecretKeyIdentity
from hdlserver.client.resolver import HandleResponseError
from hdlserver.errors import KeyFileError
from hdlserver.wire.codes import ResponseCode
from hdlserver.wire.site import IF_ADMIN_AND_QUERY, PROTO_TCP, Interface, ServerInfo, SiteInfo, address_from_text

ADMIN = "100 HS_ADMIN 86400 1110 ADMIN 300:111111111111:0.NA/TEST"
AUTH = "AUTHENTICATE SECKEY:300:0.NA/TEST\nsecret\n\n"


class FakeClient:
    def __init__(self, log: list[tuple[Any, ...]], address: tuple[str, int], identity: Identity,
                 choice: SessionChoice, fail: dict[str, Exception]) -> None:
        self.log, self.address, self.identity, self.choice, self.fail = log, address, identity, choice, fail

    def _call(self, name: str, *args: object) -> None:
        self.log.append((name, self.address, *args))
        handle = args[0] if args else b""
        error = self.fail.get(handle.decode() if isinstance(handle, bytes) else str(handle))
        if error is not None:
            raise error

    def create_handle(self, handle: bytes, values: object) -> None:
        self._call("create", handle)

    def add_values(self, handle: bytes, values: object) -> None:
        self._call("add", handle)

    def modify_values(self, handle: bytes, values: object) -> None:
        self._call("modify", handle)

    def remove_values(self, handle: bytes, indexes: object) -> None:
        self._call("remove", handle, tuple(indexes))  # type: ignore[arg-type]

    def delete_handle(self, handle: bytes) -> None:
        self._call("delete", handle)

    def home_prefix(self, prefix: str) -> None:
        self._call("home", prefix)

    def unhome_prefix(self, prefix: str) -> None:
        self._call("unhome", prefix)

    def close_session(self) -> None:
        self.log.append(("close_session", self.address))

    def close(self) -> None:
        self.log.append(("close", self.address))


def site(*ports: int, primary: bool = True) -> SiteInfo:
    servers = tuple(ServerInfo(i + 1, address_from_text("127.0.0.1"), b"",
                               (Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, port),)) for i, port in enumerate(ports))
    return SiteInfo(primary=primary, servers=servers)


class Harness:
    def __init__(self, router: Any = None, fail: dict[str, Exception] | None = None,
                 site_info: SiteInfo | None = None, load_key: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.clients: list[FakeClient] = []
        self.outcomes: list[Outcome] = []
        self.warnings: list[tuple[int, str]] = []
        fail = fail or {}

        def factory(address: tuple[str, int], identity: Identity, choice: SessionChoice, key: object) -> Any:
            client = FakeClient(self.calls, address, identity, choice, fail)
            self.clients.append(client)
            return client

        def fetch(host: str, port: int, protocol: str) -> SiteInfo:
            if site_info is None:
                raise ConnectionRefusedError(111, "Connection refused")
            return site_info

        self.executor = BatchExecutor(router or FixedRouter(("127.0.0.1", 2641)), report=self.outcomes.append,
                                      fetch_site_info=fetch, client_factory=factory,
                                      load_key=load_key or (lambda path, phrase: keys.generate_key_pair("RSA", 1024)),
                                      clock=iter(range(1000)).__next__,
                                      warn=lambda line, text: self.warnings.append((line, text)))

    def run(self, text: str) -> list[str]:
        self.executor.run(parse_batch(split_lines(text.encode())))
        return [o.log_line() for o in self.outcomes]


def test_outcomes_and_connection_reuse() -> None:
    h = Harness(fail={"TEST/b": HandleResponseError(ResponseCode.HANDLE_ALREADY_EXISTS, "exists")})
    lines = h.run(f"{AUTH}CREATE TEST/a\n{ADMIN}\n\nCREATE TEST/b\n{ADMIN}\n\nREMOVE 1,2:TEST/a\nDELETE TEST/a\n")
    assert lines == ["==>SUCCESS[4]: create:TEST/a",
                     "==>FAILURE[7]: create:TEST/b: Error(101): HANDLE_ALREADY_EXISTS: exists",
                     "==>SUCCESS[10]: remove values:TEST/a", "==>SUCCESS[11]: delete:TEST/a"]
    assert len(h.clients) == 1  # one connection (and session) for the whole batch
    assert h.calls[-2:] == [("close_session", ("127.0.0.1", 2641)), ("close", ("127.0.0.1", 2641))]
    assert ("remove", ("127.0.0.1", 2641), b"TEST/a", (1, 2)) in h.calls
    summary = h.executor.summary
    assert (summary.successes, summary.failures, summary.outcomes_total, summary.ok) == (3, 1, 4, False)
    assert summary.latencies == [1, 1, 1, 1]  # the injected clock ticks once per call


def test_nothing_is_sent_without_an_identity() -> None:
    h = Harness()
    assert h.run(f"CREATE TEST/a\n{ADMIN}\n") == [
        "==>FAILURE[1]: create:TEST/a: not sent: no AUTHENTICATE line before this operation"]
    assert h.calls == []


def test_failed_authenticate_drops_the_previous_identity() -> None:
    def load_key(path: str, phrase: bytes | None) -> keys.PrivateKey:
        raise KeyFileError(f"{path}: wrong passphrase or corrupt key file")

    h = Harness(load_key=load_key)
    lines = h.run(f"{AUTH}AUTHENTICATE PUBKEY:301:0.NA/TEST\nk.bin|x\n\nDELETE TEST/a\n")
    assert lines == ["==>INVALID[4]: error in authentication: k.bin: wrong passphrase or corrupt key file",
                     "==>FAILURE[7]: delete:TEST/a: not sent: AUTHENTICATE at line 4 failed"]


def test_identities_and_session_choices_reach_the_clients() -> None:
    h = Harness()
    h.run(f"{AUTH}DELETE TEST/a\nSESSIONSETUP\nUSESESSION:1\nOPTIONS:10\nTIMEOUT:1\nPUBEXNGKEYREF:300:0.NA/TEST\n\n"
          "AUTHENTICATE PUBKEY:301:0.NA/TEST\nk.bin\n\nDELETE TEST/b\nSESSIONSETUP\nUSESESSION:0\n\nDELETE TEST/c\n")
    first, second, third = h.clients
    assert isinstance(first.identity, SecretKeyIdentity) and first.choice == SessionChoice()
    assert isinstance(second.identity, PublicKeyIdentity) and second.identity.index == 301
    assert second.choice == SessionChoice(use_session=True, encrypted=True, timeout=3600)
    assert third.choice.use_session is False
    assert h.warnings == [(5, "exchange-key session setup (PUBEXNGKEY*/PRIVEXNGKEYFILE) cannot work with "
                              "Handle.Net 9.2 servers; using a Diffie-Hellman session")]


def test_requests_go_to_the_server_the_site_hash_picks() -> None:
    router = SiteRouter(site(1001, 1002, 1003))
    h = Harness(router=router)
    handles = [f"TEST/h{i}" for i in range(12)]
    h.run(AUTH + "".join(f"DELETE {handle}\n" for handle in handles))
    for handle, call in zip(handles, [c for c in h.calls if c[0] == "delete"], strict=True):
        assert call[1] == router.admin_server(handle.encode())
    assert len({c[1] for c in h.calls if c[0] == "delete"}) == 3


def test_routing_errors_are_failures_of_that_operation() -> None:
    class NoRoute(FixedRouter):
        def admin_server(self, handle: bytes) -> tuple[str, int]:
            raise RoutingError("0.NA/NOPE has no HS_SITE value to send requests to")

    h = Harness(router=NoRoute(("127.0.0.1", 1)))
    assert h.run(f"{AUTH}DELETE NOPE/x\n") == [
        "==>FAILURE[4]: delete:NOPE/x: 0.NA/NOPE has no HS_SITE value to send requests to"]


def test_home_goes_to_every_server_of_a_primary_site() -> None:
    h = Harness(site_info=site(2001, 2002))
    assert h.run(f"{AUTH}HOME 127.0.0.1:2001:tcp\n0.NA/P\n\n") == ["==>SUCCESS[5]: home/unhome:0.NA/P"]
    assert [c[1] for c in h.calls if c[0] == "home"] == [("127.0.0.1", 2001), ("127.0.0.1", 2002)]


def test_home_refused_on_a_mirror_and_without_site_information() -> None:
    mirror = Harness(site_info=site(2001, primary=False))
    assert mirror.run(f"{AUTH}UNHOME 127.0.0.1:2001:udp\n0.NA/P\n") == [
        "==>INVALID[4]: error in unhome: 127.0.0.1:2001 is not a primary server"]
    silent = Harness()
    assert silent.run(f"{AUTH}HOME 127.0.0.1:2001:http\n0.NA/P\n") == [
        "==>INVALID[4]: error in home: cannot get the site information of 127.0.0.1:2001 over http: "
        "cannot reach the server: Connection refused"]
    assert mirror.calls == silent.calls == []


def test_server_key_of_a_site() -> None:
    private = keys.generate_key_pair("RSA", 1024)
    encoded = keys.public_key_to_bytes(private.public_key())
    info = SiteInfo(servers=(ServerInfo(1, address_from_text("127.0.0.1"), encoded,
                                        (Interface(IF_ADMIN_AND_QUERY, PROTO_TCP, 2641),)),))
    found = server_key_of(info, ("127.0.0.1", 2641))
    assert found is not None and keys.public_key_to_bytes(found) == encoded
    assert server_key_of(info, ("127.0.0.1", 9)) is None and server_key_of(None, ("127.0.0.1", 2641)) is None
    assert server_key_of(site(2641), ("127.0.0.1", 2641)) is None  # an undecodable key is no key


# --- the CLI's pieces ----------------------------------------------------------------------------------


def test_count_operations_and_progress_line() -> None:
    lines = split_lines(f"{AUTH}CREATE TEST/a\n{ADMIN}\n\ndelete TEST/a\nHOME 1.2.3.4:1:tcp\n".encode())
    assert count_operations(lines) == 2
    stream = io.StringIO()
    progress = Progress(stream, 2)
    progress.step()
    progress.step()
    progress.finish()
    assert stream.getvalue().startswith("\r[") and "[2/2] 100% " in stream.getvalue()
    assert stream.getvalue().endswith(" ops/s\n")


def test_statistics_lines() -> None:
    h = Harness()
    h.run(f"{AUTH}DELETE TEST/a\nDELETE TEST/b\n")
    out = io.StringIO()
    write_statistics(out, h.executor.summary, 6, 2.0)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["Successes/Total Entries: 2/2", "Batch File Lines: 6"]
    assert lines[3] == "This batch took 2 seconds to complete at an average speed of 1.0 operations/second"
    assert latency_line(h.executor.summary).startswith("operation latency: p50 1000.00 ms, p99 1000.00 ms")


@pytest.mark.parametrize("status", list(Status))
def test_log_line_forms(status: Status) -> None:
    outcome = Outcome(3, status, "add values", "TEST/a", "why")
    expected = {Status.SUCCESS: "==>SUCCESS[3]: add values:TEST/a: why",
                Status.FAILURE: "==>FAILURE[3]: add values:TEST/a: why", Status.INVALID: "==>INVALID[3]: why"}
    assert outcome.log_line() == expected[status]

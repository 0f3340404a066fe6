"""Verifying identities whose handles another server is responsible for (auth.md 5, steps 1.2 and 2.1).

A secret-key answer is sent as a VERIFY_CHALLENGE (201) to the identity's responsible server; for a
public-key answer the identity's HS_PUBKEY values are fetched from it by a certified resolution. Every
request asks for CT and RD, and the answer must carry the request's digest and a signature by the
answering server's key from its HS_SITE record, as the Java client checks.

The identity's site is found as the Java client finds it: the HS_SITE values of its prefix handle
``0.NA/<prefix>``, read from the local store when this server is responsible for that handle (it homes
``0.NA/0.NA``), otherwise resolved at the root site; identities that are prefix handles themselves
(``0.NA/<prefix>``, the usual administrator of a prefix) live at the root site. The root site is the
internal client's ``root_info`` file, ``~/.handle/root_info`` (binary or JSON site record), as for Java.
Every failure is RC 406 with a message that names the identity and the reason.

Group (HS_VLIST) references homed elsewhere are fetched the same way during authorization (auth.md 6.4
step 3), through ``RemoteGroups`` and within a per-check budget.

Each exchange is a blocking TCP round trip bounded by ``REMOTE_TIMEOUT``, made in the request's path. It
only happens for identities and groups that are not homed here and that an HS_ADMIN value or a server list
names (permission is checked before the proof).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hdlserver.auth import keys
from hdlserver.client.resolver import JAVA_REQUEST_FLAGS, build_request, decode_answer
from hdlserver.client.transport import ClientTimeout, tcp_exchange
from hdlserver.config.siteinfo import read_site_info_file
from hdlserver.core.homed import HomedPrefixes
from hdlserver.errors import ConfigError, DecodeError, HandleError, ProtocolError
from hdlserver.store.base import Store
from hdlserver.wire.bodies import (
    ErrorBody,
    ResolutionRequest,
    ResolutionResponse,
    VerifyChallengeRequest,
    VerifyChallengeResponse,
)
from hdlserver.wire.codes import OpCode, OpFlag, ResponseCode
from hdlserver.wire.credential import HS_SIGNED, signed_prefix
from hdlserver.wire.digest import request_digest
from hdlserver.wire.envelope import decode_envelope
from hdlserver.wire.handles import ROOT_PREFIX_HANDLE, prefix_handle_of
from hdlserver.wire.message import Message
from hdlserver.wire.site import PROTO_TCP, SiteInfo, decode_site
from hdlserver.wire.valuedata import HS_PUBKEY, HS_SITE
from hdlserver.wire.values import HandleValue

log = logging.getLogger("hdlserver.auth")

REMOTE_TIMEOUT = 5.0  # seconds for connecting to, and hearing back from, the identity's server
CERTIFIED_FLAGS = JAVA_REQUEST_FLAGS | OpFlag.CT | OpFlag.RD
MAX_REMOTE_GROUP_LOOKUPS = 8  # per authorization check
REMOTE_GROUP_SECONDS = 5.0  # per authorization check: no new remote group lookup after this
SITE_TYPES = (HS_SITE, b"HS_SITE.6")  # exact bytes, as Java extracts site records (values.md 1.4)


def _fail(identity: str, reason: str) -> ProtocolError:
    log.warning("cannot verify %s: %s", identity, reason)
    return ProtocolError(ResponseCode.AUTHEN_ERROR, f"Cannot verify {identity}: {reason}")


class RemoteIdentities:
    """The network side of verifying one identity ``index:handle`` that is not homed here."""

    def __init__(self, store: Store, homed: HomedPrefixes, handle: bytes, index: int, *,
                 what: str = "identity", timeout: float = REMOTE_TIMEOUT) -> None:
        self.store = store
        self.homed = homed
        self.handle = handle
        self.index = index
        self.timeout = timeout
        self.identity = f"{what} {index}:{handle.decode('utf-8', 'replace')}"

    def verify_secret(self, nonce: bytes, digest: bytes, signed_response: bytes) -> bool:
        """Ask the identity's server whether the HS_SECKEY answer is valid (op 201)."""
        body = VerifyChallengeRequest(self.handle, self.index, nonce, 0, digest, signed_response)
        answer = self._certified(OpCode.VERIFY_CHALLENGE, body)
        if not isinstance(answer.body, VerifyChallengeResponse):
            raise _fail(self.identity, "its server sent a malformed VERIFY_CHALLENGE answer")
        return answer.body.valid

    def public_keys(self) -> Sequence[HandleValue]:
        """The identity's public HS_PUBKEY values: index ``index`` if > 0, else every HS_PUBKEY value."""
        indexes, types = ((self.index,), ()) if self.index > 0 else ((), (HS_PUBKEY,))
        answer = self._certified(OpCode.RESOLUTION, ResolutionRequest(self.handle, indexes, types))
        if not isinstance(answer.body, ResolutionResponse):
            raise _fail(self.identity, "its server sent a malformed resolution answer")
        return answer.body.values

    def public_values(self) -> Sequence[HandleValue]:
        """The publicly readable values at ``index`` (a group's HS_VLIST, auth.md 6.4 step 3)."""
        return self.values((), (self.index,))

    def values(self, types: tuple[bytes, ...], indexes: tuple[int, ...]) -> Sequence[HandleValue]:
        """The handle's public values of these types or indexes (all when both are empty), by a certified
        resolution at its site (the replication sources handle uses this too)."""
        answer = self._certified(OpCode.RESOLUTION, ResolutionRequest(self.handle, indexes, types))
        if not isinstance(answer.body, ResolutionResponse):
            raise _fail(self.identity, "its server sent a malformed resolution answer")
        return answer.body.values

    def site(self) -> SiteInfo:
        """The site of the identity handle's prefix (see the module docstring)."""
        prefix = prefix_handle_of(self.handle)
        if self.homed.serves(prefix):
            return self._site_in(prefix, self.store.get_values(prefix) or ())
        root = self._root_site()
        if prefix == ROOT_PREFIX_HANDLE:
            return root
        answer = self._certified_at(root, prefix, OpCode.RESOLUTION, ResolutionRequest(prefix, (), SITE_TYPES),
                                    who="the root server")
        if not isinstance(answer.body, ResolutionResponse):
            raise _fail(self.identity, "the root site sent a malformed resolution answer")
        return self._site_in(prefix, answer.body.values)

    def _site_in(self, prefix: bytes, values: Sequence[HandleValue]) -> SiteInfo:
        for value in values:
            if value.type in SITE_TYPES:
                try:
                    return decode_site(value.data)
                except DecodeError:
                    continue
        raise _fail(self.identity, f"{prefix.decode('utf-8', 'replace')} has no usable HS_SITE value")

    def _root_site(self) -> SiteInfo:
        path = root_info_path()
        if not path.exists():
            raise _fail(self.identity, f"this server does not hold {prefix_handle_of(self.handle).decode()} and "
                        f"has no root site to resolve it ({path} does not exist)")
        try:
            return read_site_info_file(path)
        except ConfigError as exc:
            raise _fail(self.identity, f"the root site file is unusable: {exc}") from None

    def _certified(self, opcode: int, body: object) -> Message:
        return self._certified_at(self.site(), self.handle, opcode, body)

    def _certified_at(self, site: SiteInfo, handle: bytes, opcode: int, body: object, *,
                      who: str = "its server") -> Message:
        """Send one certified request about ``handle`` to its server in ``site``; check the signed answer."""
        try:
            server = site.responsible_server(handle)
        except ValueError:
            raise _fail(self.identity, f"the site for {handle.decode('utf-8', 'replace')} lists no servers") from None
        port = next((i.port for i in server.interfaces if i.protocol == PROTO_TCP), None)
        if port is None:
            raise _fail(self.identity, f"{who} has no TCP interface")
        address = (server.address_text(), port)
        where = f"{address[0]}:{address[1]}"
        request = build_request(opcode, body, CERTIFIED_FLAGS)
        try:
            raw = tcp_exchange(address, request, self.timeout)[0]
            answer = decode_answer(raw)
        except (ClientTimeout, OSError) as exc:
            raise _fail(self.identity, f"{who} {where} did not answer within {self.timeout:g} s "
                        f"({exc})") from None
        except HandleError as exc:
            raise _fail(self.identity, f"{who} {where} sent an undecodable answer ({exc})") from None
        if answer.header.response_code != ResponseCode.SUCCESS:
            text = answer.body.message.decode("utf-8", "replace") if isinstance(answer.body, ErrorBody) else ""
            code = answer.header.response_code
            raise _fail(self.identity, f"{who} {where} answered RC {code} {ResponseCode.name_of(code)}"
                        + (f": {text}" if text else ""))
        self._check_signed(request, raw, answer, server.public_key, where)
        return answer

    def _check_signed(self, request: bytes, raw: bytes, answer: Message, server_key: bytes, where: str) -> None:
        env = decode_envelope(raw)
        if answer.request_digest != request_digest(decode_answer(request).header_body, env.version):
            raise _fail(self.identity, f"the answer of {where} is for another request (request digest differs)")
        cred = answer.credential
        if cred is None or cred.type != HS_SIGNED:
            raise _fail(self.identity, f"the answer of {where} is not signed")
        try:
            key = keys.public_key_from_bytes(server_key)
        except DecodeError as exc:
            raise _fail(self.identity, f"the HS_SITE key of {where} is unusable ({exc})") from None
        prefix = signed_prefix(env.version, env.suggested, env.session_id, env.request_id, cred.signer_index)
        if not keys.verify(key, cred.signature, prefix + answer.header_body, cred.digest_alg):
            raise _fail(self.identity, f"the signature of {where}'s answer does not verify with its HS_SITE key")


def root_info_path() -> Path:
    """Where the internal client's root site record is, as for Java's server (server.md 1)."""
    return Path.home() / ".handle" / "root_info"


class RemoteGroups:
    """Group (HS_VLIST) values of handles not homed here, for one authorization check (auth.md 6.4 step 3).

    As in Java, every admin reference that does not match the identity is looked up as a possible group,
    and failures only make that branch contribute nothing. Each lookup is a network round trip in the
    request's path, so one check makes at most ``MAX_REMOTE_GROUP_LOOKUPS`` of them and starts none after
    ``REMOTE_GROUP_SECONDS``.
    """

    def __init__(self, store: Store, homed: HomedPrefixes, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.homed = homed
        self.clock = clock
        self.lookups = 0
        self.started: float | None = None

    def values(self, handle: bytes, index: int) -> Sequence[HandleValue] | None:
        now = self.clock()
        if self.started is None:
            self.started = now
        if self.lookups >= MAX_REMOTE_GROUP_LOOKUPS or now - self.started >= REMOTE_GROUP_SECONDS:
            log.info("group %d:%s not looked up: remote lookup budget of this check spent (%d lookups, %.1f s)",
                     index, handle.decode("utf-8", "replace"), self.lookups, now - self.started)
            return None
        self.lookups += 1
        try:
            return RemoteIdentities(self.store, self.homed, handle, index, what="group").public_values()
        except ProtocolError:
            return None

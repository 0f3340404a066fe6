"""The primary side of replication: ops 1000-1003 (replication.md 4) and the streams they answer with.

Handlers are pure over the request, the ServerState and an injected ``now``; what they return for 1001
and 1002 is a ``StreamingResult``: the response message plus an ``OutgoingStream`` whose segments are
produced lazily from the transaction log and the store, so a dump of millions of handles is streamed in
constant memory. The transport writes the stream after the response (sender.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from hdlserver.core.context import RequestInfo, ServerState
from hdlserver.core.handler_api import Authorizer, HandlerResult
from hdlserver.errors import ProtocolError
from hdlserver.replication import streams
from hdlserver.replication.stream_choice import stream_signer
from hdlserver.replication.streams import SegmentSigner, StreamMode
from hdlserver.store.base import TXN_DELETE_HANDLE, TXN_HOME_NA, TXN_UNHOME_NA, Store, Transaction
from hdlserver.wire.bodies import (
    DumpHandlesRequest,
    DumpHandlesResponse,
    GenericSuccessResponse,
    RetrieveTxnLogRequest,
    RetrieveTxnLogResponse,
)
from hdlserver.wire.codes import OpCode, ResponseCode
from hdlserver.wire.envelope import response_version
from hdlserver.wire.handles import HASH_BY_ALL, HASH_BY_PREFIX, HASH_BY_SUFFIX, site_hash

log = logging.getLogger("hdlserver.replication")

DAY_MS = 86_400_000
FRESH_QUEUE_MS = 10 * DAY_MS  # redump rule 4: a queue starting at id 1 within the last 10 days
NOT_SUPPORTED = "This server does not support replication."
NOT_PRIMARY = "Not a primary server"
NEXT_TXN_ID_OBSOLETE = "Next txn id no longer supported; upgrade required"
DEFAULT_SITE_NAME = "sources"  # the site name of file-based sources (txnsrcsv.*), replication.md 3


class ReplicationCall(Protocol):
    """What the handlers need of the dispatcher's call (hdlserver.core.dispatch.Call)."""

    @property
    def msg(self) -> object: ...

    @property
    def view(self) -> object: ...

    @property
    def info(self) -> RequestInfo: ...


@dataclass
class OutgoingStream:
    """A stream to write after the response: the preamble, each segment framed by the signer, the trailer."""

    signer: SegmentSigner
    segments: Iterator[bytes]
    trailer: bytes = b""
    what: str = "stream"

    @property
    def mode(self) -> StreamMode:
        return self.signer.mode

    def preamble(self) -> bytes:
        return self.signer.preamble()

    def body(self) -> Iterator[bytes]:
        for segment in self.segments:
            yield self.signer.segment(segment)
        if self.trailer:
            yield self.signer.unsigned(self.trailer)


@dataclass(frozen=True, slots=True)
class StreamingResult(HandlerResult):
    stream: OutgoingStream | None = None


# ---------------------------------------------------------------------------------------------------
# Pure decisions


def hashes_to(handle: bytes, hash_type: int, num_servers: int, server_num: int) -> bool:
    """Whether a requester that is server ``server_num`` of ``num_servers`` holds ``handle`` (6.1 rule 2)."""
    if num_servers <= 1 or hash_type not in (HASH_BY_PREFIX, HASH_BY_SUFFIX, HASH_BY_ALL):
        return True
    return site_hash(handle, hash_type) % num_servers == server_num


def needs_redump(store: Store, last_txn_id: int, last_timestamp: int, now_ms: int) -> bool:
    """The redump decision of replication.md 6.3 for this server's own queue."""
    return redump_needed(store.last_txn_id(), next(iter(store.transactions_since(0)), None), True, last_txn_id,
                         last_timestamp, now_ms)


def redump_needed(latest: int, first: Transaction | None, has_queue: bool, last_txn_id: int, last_timestamp: int,
                  now_ms: int) -> bool:
    """Replication.md 6.3 for a queue whose newest safe id is ``latest`` and oldest kept transaction
    ``first``, asked from (``last_txn_id``, ``last_timestamp``); plus one rule of ours: a requester that
    already has ids this queue never issued (the queue was reset) must redump rather than wait, silently,
    until the ids catch up."""
    if latest <= 0:
        return False
    if last_txn_id > latest:
        log.warning("a mirror asks for transactions after id %d, but the newest here is %d: it must redump",
                    last_txn_id, latest)
        return True
    if not has_queue or first is None:
        return latest > last_txn_id
    if first.date_ms <= last_timestamp:
        return False
    starts_at_one = first.txn_id == 1
    if last_txn_id <= 0 and starts_at_one and first.date_ms >= now_ms - FRESH_QUEUE_MS:
        return False
    if last_txn_id <= 0 and starts_at_one and first.date_ms <= last_timestamp + DAY_MS:
        return False
    return not (last_txn_id > 0 and first.date_ms <= last_timestamp + DAY_MS and first.txn_id == last_txn_id + 1)


def txn_segments(store: Store, after: int, hash_type: int, num_servers: int, server_num: int,
                 txns: Iterator[Transaction] | None = None) -> Iterator[bytes]:
    """HANDLE_RECORD segments for the transactions after ``after`` (6.1) of this server's own log, or of
    ``txns`` (a kept copy of another queue): the requester's share, each with the handle's current
    values; skipped when a later transaction will carry the state."""
    for txn in store.transactions_since(after) if txns is None else txns:
        if txn.action not in (TXN_HOME_NA, TXN_UNHOME_NA) and not hashes_to(txn.handle, hash_type, num_servers,
                                                                           server_num):
            continue
        segment = _txn_record(store, txn)
        if segment is not None:
            yield segment


def _txn_record(store: Store, txn: Transaction) -> bytes | None:
    if txn.action in streams.ACTIONS_WITH_VALUES:
        record = store.get_record(txn.handle)
        if record is None:
            return None
        return streams.encode_txn_record(txn.txn_id, txn.handle, txn.action, txn.date_ms,
                                         streams.split_values(record.encoded_values))
    if txn.action == TXN_DELETE_HANDLE and store.exists(txn.handle):
        return None
    return streams.encode_txn_record(txn.txn_id, txn.handle, txn.action, txn.date_ms, None)


# ---------------------------------------------------------------------------------------------------
# Handlers


def _signer(state: ServerState, call: ReplicationCall) -> SegmentSigner:
    version = response_version(call.view.suggested)  # type: ignore[attr-defined]
    return stream_signer(call.info.transport, version, state.signer.private_key)


def _authorize_replication(auth: Authorizer, peer: str) -> None:
    auth.require_authentication()
    try:
        auth.check_server_list("replication_admins", "server_admins")
    except ProtocolError as e:
        identity = auth.identity
        who = f"{identity[1]}:{identity[0].decode('utf-8', 'replace')}" if identity else "anonymous"
        log.warning("refused replication to %s as %s: RC %d %s", peer, who, e.response_code, e.message)
        raise


def get_next_txn_id(state: ServerState, call: ReplicationCall, auth: Authorizer) -> HandlerResult:
    """1000 is obsolete in Java 9 (4.5); mirrors refuse it earlier with RC 301 (dispatcher)."""
    raise ProtocolError(ResponseCode.OPERATION_NOT_SUPPORTED, NEXT_TXN_ID_OBSOLETE)


def own_queue_name(state: ServerState) -> bytes:
    """``<this server's index>:<site name>`` (4.4): the name the all-sources stream gives our queue. The
    site name is the one the replication sites handle gives this server's site, once the pull loop has
    found it."""
    site_name = (state.mirror.own_name if state.mirror is not None else None) \
        or state.settings.server.replication_site_handle_value or DEFAULT_SITE_NAME
    return f"{state.this_server_position}:{site_name}".encode()


def retrieve_txn_log(state: ServerState, call: ReplicationCall, auth: Authorizer) -> HandlerResult:
    config = state.settings.server
    if not config.enable_txn_queue:
        raise ProtocolError(ResponseCode.OPERATION_NOT_SUPPORTED, NOT_SUPPORTED)
    request = call.msg.body  # type: ignore[attr-defined]
    assert isinstance(request, RetrieveTxnLogRequest)
    if request.replication_state is None and not state.primary:
        raise ProtocolError(ResponseCode.OPERATION_NOT_SUPPORTED, NOT_PRIMARY)
    _authorize_replication(auth, call.info.client_address)
    signer = _signer(state, call)
    now_ms = int(state.clock() * 1000)
    if request.replication_state is None:
        segments = _single_source(state.store, request, now_ms)
    else:
        segments = _all_sources(state, request, now_ms)
    stream = OutgoingStream(signer, segments, what="transaction log")
    return StreamingResult(ResponseCode.SUCCESS, RetrieveTxnLogResponse(), stream=stream)


def _single_source(store: Store, request: RetrieveTxnLogRequest, now_ms: int) -> Iterator[bytes]:
    if needs_redump(store, request.last_txn_id, request.last_query_date, now_ms):
        log.warning("answering NEED_TO_REDUMP to a mirror at txn id %d", request.last_txn_id)
        yield streams.txn_stream_head(streams.TXN_FORMAT_SINGLE, streams.STATUS_NEED_TO_REDUMP)
        yield streams.txn_end(request.last_query_date)
        return
    yield streams.txn_stream_head(streams.TXN_FORMAT_SINGLE, streams.STATUS_SENDING_TRANSACTIONS)
    yield from txn_segments(store, request.last_txn_id, request.receiver_hash_type, request.num_servers,
                            request.server_num)
    yield streams.txn_end(now_ms)


@dataclass(frozen=True, slots=True)
class _QueueShare:
    """One queue of an all-sources answer: its name, where the requester is, and what this server has."""

    name: bytes
    after: int
    latest: int
    last_timestamp: int | None  # None: this server's own queue (its timestamp is now)


def _requester_states(request: RetrieveTxnLogRequest) -> tuple[dict[str, tuple[int, int]], str | None]:
    try:
        document = json.loads(request.replication_state or b"{}")
        states = document.get("replicationServerStates") or {}
        out = {str(name): (int(v.get("lastTxnId", -1)), int(v.get("lastTimestamp", 0))) for name, v in states.items()}
        own = document.get("ownName")
    except (ValueError, AttributeError, TypeError) as e:
        raise ProtocolError(ResponseCode.PROTOCOL_ERROR, f"Invalid replication state: {e}") from e
    return out, own if isinstance(own, str) else None


def _all_sources(state: ServerState, request: RetrieveTxnLogRequest, now_ms: int) -> Iterator[bytes]:
    """Format 2 (6.2): this server's own queue (a primary's), then each other queue this server pulled and
    keeps, except the requester's own site's and those never pulled to an end. Any queue needing a redump
    makes the whole answer NEED_TO_REDUMP."""
    store = state.store
    states, requester_site = _requester_states(request)
    shares: list[_QueueShare] = []
    redump = False
    if state.primary:
        name = own_queue_name(state)
        last_id, last_ts = states.get(name.decode(), (-1, 0))
        redump |= needs_redump(store, last_id, last_ts, now_ms)
        shares.append(_QueueShare(name, last_id, store.last_txn_id(), None))
    keeping = state.settings.server.replication_keep_other_transactions
    for site, queues in state.mirror.state.snapshot() if state.mirror is not None else ():
        if site == requester_site:
            continue
        for index, queue in enumerate(queues):
            if queue.last_timestamp <= 0:
                continue
            name = f"{index}:{site}"
            last_id, last_ts = states.get(name, (-1, 0))
            first = next(iter(store.other_queue_transactions(name.encode())), None) if keeping else None
            redump |= redump_needed(queue.last_txn_id, first, keeping, last_id, last_ts, now_ms)
            shares.append(_QueueShare(name.encode(), last_id, queue.last_txn_id, queue.last_timestamp))
    status = streams.STATUS_NEED_TO_REDUMP if redump else streams.STATUS_SENDING_TRANSACTIONS
    if redump:
        log.warning("answering NEED_TO_REDUMP to an all-sources pull")
    yield streams.txn_stream_head(streams.TXN_FORMAT_ALL_SOURCES, status)
    if not redump:
        for share in shares:
            yield from _queue_share(store, request, share, now_ms, keeping)
    yield streams.txn_end(None)


def _queue_share(store: Store, request: RetrieveTxnLogRequest, share: _QueueShare, now_ms: int,
                 keeping: bool) -> Iterator[bytes]:
    yield streams.queue_name_record(share.name)
    if share.last_timestamp is None:
        yield from txn_segments(store, share.after, request.receiver_hash_type, request.num_servers,
                                request.server_num)
        yield streams.queue_last_timestamp_record(now_ms)
        return
    if keeping:
        copies = (t for t in store.other_queue_transactions(share.name, share.after) if t.txn_id <= share.latest)
        yield from txn_segments(store, share.after, request.receiver_hash_type, request.num_servers,
                                request.server_num, copies)
    yield streams.queue_last_timestamp_record(share.last_timestamp)


def dump_handles(state: ServerState, call: ReplicationCall, auth: Authorizer) -> HandlerResult:
    config = state.settings.server
    if not config.enable_txn_queue:
        raise ProtocolError(ResponseCode.OPERATION_NOT_SUPPORTED, NOT_SUPPORTED)
    if not state.primary and not config.replication_keep_other_transactions:
        raise ProtocolError(ResponseCode.OPERATION_NOT_SUPPORTED, NOT_PRIMARY)
    request = call.msg.body  # type: ignore[attr-defined]
    assert isinstance(request, DumpHandlesRequest)
    _authorize_replication(auth, call.info.client_address)
    signer = _signer(state, call)
    now_ms = int(state.clock() * 1000)
    segments = dump_segments(state, request, now_ms)
    stream = OutgoingStream(signer, segments, trailer=streams.DUMP_DONE, what="dump")
    return StreamingResult(ResponseCode.SUCCESS, DumpHandlesResponse(), stream=stream)


RESUME_HANDLE_DATES, RESUME_PREFIX_DATES, RESUME_HANDLES, RESUME_PREFIXES = 0, 1, 2, 3  # startingPointType


def dump_segments(state: ServerState, request: DumpHandlesRequest, now_ms: int) -> Iterator[bytes]:
    """The dump stream of replication.md 7, in Java's order (OTHER_SITE before THIS_SERVER), then the
    replication dates (only a server that tracks them has any: replication.md 10), the handles that hash
    to the requester and the homed prefixes. A resumed dump continues after its starting point's record
    type and key, with the sections after it."""
    store = state.store
    yield streams.dump_head()
    start = request.starting_point
    kind = request.starting_point_type if start is not None else None
    if start is None:
        status = state.mirror.status_text() if state.mirror is not None else None
        if status:
            yield streams.dump_other_site_info(status)
        if state.primary:
            yield streams.dump_this_server_info(now_ms, store.last_txn_id())
    for section, prefixes in ((RESUME_HANDLE_DATES, False), (RESUME_PREFIX_DATES, True)):
        if kind is None or kind <= section:
            after = start if kind == section else None
            for key, date_ms, priority in store.replication_dates(prefixes, after):
                yield streams.dump_date(prefixes, key, date_ms, priority)
    if kind is None or kind <= RESUME_HANDLES:
        after = start if kind == RESUME_HANDLES else None
        for record in store.iter_records():
            if after is not None and record.handle <= after:
                continue
            if hashes_to(record.handle, request.receiver_hash_type, request.num_servers, request.server_num):
                yield streams.dump_handle(record.handle, streams.split_values(record.encoded_values))
    for prefix in store.homed_prefixes():
        if kind == RESUME_PREFIXES and start is not None and prefix <= start:
            continue
        yield streams.dump_homed_prefix(prefix)


def backup_server(state: ServerState, call: ReplicationCall, auth: Authorizer) -> HandlerResult:
    """1003: Java checkpoints its database. Every LMDB commit is already synced, so once authorized
    there is nothing left to flush; ``hdl-backup`` makes the online copy."""
    auth.require_authentication()
    auth.check_server_list("backup_admins", "server_admins")
    return HandlerResult(ResponseCode.SUCCESS, GenericSuccessResponse())


REPLICATION_HANDLERS = {
    OpCode.GET_NEXT_TXN_ID: get_next_txn_id,
    OpCode.RETRIEVE_TXN_LOG: retrieve_txn_log,
    OpCode.DUMP_HANDLES: dump_handles,
    OpCode.BACKUP_SERVER: backup_server,
}

"""Message bodies: one frozen dataclass per request and response layout of wire.md 9-10.

Each class reads and writes its own fields through ``read(r, version)`` / ``write(w, version)``; the
request digest (RD) that precedes response bodies is handled by ``hdlserver.wire.message``, which also
picks the class from the op code and response code. Handles, types and strings stay bytes.

Trailing bytes after the last field are ignored, as the Java decoders ignore them (they never look at the
body length except where a layout has optional parts). The one body Java does check to the end, the site
record of a GET_SITE_INFO response, is kept raw here and checked by the HS_SITE codec.
"""

from __future__ import annotations

from dataclasses import dataclass

from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.codes import DIGEST_LENGTHS, DigestAlgorithm, OpCode
from hdlserver.wire.envelope import version_at_least
from hdlserver.wire.values import MAX_HANDLE_VALUES, HandleValue, read_values, write_values

MAX_HANDLE_LENGTH = 2_048  # Java Common.MAX_HANDLE_LENGTH, checked by the Java response decoders

# SESSION_SETUP key exchange modes (wire.md 9.15).
KEY_EXCHANGE_CIPHER_CLIENT = 1
KEY_EXCHANGE_CIPHER_SERVER = 2
KEY_EXCHANGE_CIPHER_HDL = 3
KEY_EXCHANGE_DH = 4

# Java's SESSION_SETUP encoders reserve 4 bytes for the int2 mode and leave the last 2 zero.
SESSION_SETUP_PADDING = b"\x00\x00"

Version = tuple[int, int]


def _read_limited_handle(r: Reader) -> bytes:
    handle = r.get_utf8()
    if len(handle) > MAX_HANDLE_LENGTH:
        raise DecodeError(f"Invalid handle length: {len(handle)}")
    return handle


def _read_limited_values(r: Reader) -> tuple[HandleValue, ...]:
    values = read_values(r)
    if len(values) > MAX_HANDLE_VALUES:
        raise DecodeError(f"Invalid number of values: {len(values)}")
    return values


# ---------------------------------------------------------------------------------------------------
# Layouts shared by several op codes


@dataclass(frozen=True, slots=True)
class _HandleBody:
    """``handle UTF8String``: the generic request layout."""

    handle: bytes

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.handle)

    @classmethod
    def read(cls, r: Reader, version: Version) -> _HandleBody:
        return cls(r.get_utf8())


@dataclass(frozen=True, slots=True)
class _HandleValuesBody:
    """``handle UTF8String | int4 count | values`` (create, add, modify)."""

    handle: bytes
    values: tuple[HandleValue, ...]

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.handle)
        write_values(w, self.values)

    @classmethod
    def read(cls, r: Reader, version: Version) -> _HandleValuesBody:
        return cls(r.get_utf8(), read_values(r))


@dataclass(frozen=True, slots=True)
class _HandleListBody:
    """``int4 count | count x UTF8String`` (list handles, list homed prefixes)."""

    handles: tuple[bytes, ...]

    def write(self, w: Writer, version: Version) -> None:
        w.put_string_array(self.handles)

    @classmethod
    def read(cls, r: Reader, version: Version) -> _HandleListBody:
        return cls(r.get_string_array())


@dataclass(frozen=True, slots=True)
class _EmptyBody:
    """No fields (the RD digest, if any, is written by the message codec)."""

    def write(self, w: Writer, version: Version) -> None:
        pass

    @classmethod
    def read(cls, r: Reader, version: Version) -> _EmptyBody:
        return cls()


# ---------------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, slots=True)
class ResolutionRequest:
    handle: bytes
    indexes: tuple[int, ...] = ()
    types: tuple[bytes, ...] = ()

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.handle).put_int_array(self.indexes).put_string_array(self.types)

    @classmethod
    def read(cls, r: Reader, version: Version) -> ResolutionRequest:
        return cls(r.get_utf8(), r.get_int_array(), r.get_string_array())


@dataclass(frozen=True, slots=True)
class SiteInfoRequest(_HandleBody):
    """GET_SITE_INFO; Java clients send "/" and the server ignores it."""


@dataclass(frozen=True, slots=True)
class CreateHandleRequest(_HandleValuesBody):
    pass


@dataclass(frozen=True, slots=True)
class DeleteHandleRequest(_HandleBody):
    pass


@dataclass(frozen=True, slots=True)
class AddValueRequest(_HandleValuesBody):
    pass


@dataclass(frozen=True, slots=True)
class RemoveValueRequest:
    handle: bytes
    indexes: tuple[int, ...]

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.handle).put_int_array(self.indexes)

    @classmethod
    def read(cls, r: Reader, version: Version) -> RemoveValueRequest:
        return cls(r.get_utf8(), r.get_int_array())


@dataclass(frozen=True, slots=True)
class ModifyValueRequest(_HandleValuesBody):
    pass


@dataclass(frozen=True, slots=True)
class ListHandlesRequest(_HandleBody):
    pass


@dataclass(frozen=True, slots=True)
class ChallengeAnswerRequest:
    """RESPONSE_TO_CHALLENGE (200): there is no handle field (wire.md 9.10)."""

    auth_type: bytes
    identity_handle: bytes
    identity_index: int
    signed_response: bytes

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.auth_type).put_utf8(self.identity_handle).put_int4(self.identity_index)
        w.put_byte_array(self.signed_response)

    @classmethod
    def read(cls, r: Reader, version: Version) -> ChallengeAnswerRequest:
        return cls(r.get_utf8(), r.get_utf8(), r.get_int4(), r.get_byte_array())


@dataclass(frozen=True, slots=True)
class VerifyChallengeRequest:
    """VERIFY_CHALLENGE (201). ``digest_alg`` 0 = the ByteArray form Java always writes (wire.md 9.11);
    1/2/3 = algorithm byte followed by the raw digest, which Java also accepts on input."""

    handle: bytes
    index: int
    nonce: bytes
    digest_alg: int
    request_digest: bytes
    signed_response: bytes

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.handle).put_int4(self.index).put_byte_array(self.nonce)
        write_digest(w, self.digest_alg, self.request_digest)
        w.put_byte_array(self.signed_response)

    @classmethod
    def read(cls, r: Reader, version: Version) -> VerifyChallengeRequest:
        handle = r.get_utf8()
        index = r.get_int4()
        nonce = r.get_byte_array()
        alg, digest = read_digest(r)
        return cls(handle, index, nonce, alg, digest, r.get_byte_array())


@dataclass(frozen=True, slots=True)
class HomeNARequest(_HandleBody):
    pass


@dataclass(frozen=True, slots=True)
class UnhomeNARequest(_HandleBody):
    pass


@dataclass(frozen=True, slots=True)
class ListHomedNAsRequest(_HandleBody):
    """LIST_HOMED_NAS (302); the handle is ignored (Java sends "/")."""


@dataclass(frozen=True, slots=True)
class SessionSetupRequest:
    """SESSION_SETUP (400), wire.md 9.15. ``public_key`` is used by modes 1 and 4, the exchange key
    reference by mode 3. The two padding bytes Java writes are written, and ignored when reading."""

    mode: int
    timeout: int
    identity_handle: bytes
    identity_index: int
    public_key: bytes = b""
    exchange_key_handle: bytes = b""
    exchange_key_index: int = 0

    def write(self, w: Writer, version: Version) -> None:
        w.put_int2(self.mode).put_int4(self.timeout).put_utf8(self.identity_handle).put_int4(self.identity_index)
        if self.mode in (KEY_EXCHANGE_CIPHER_CLIENT, KEY_EXCHANGE_DH):
            w.put_byte_array(self.public_key)
        elif self.mode == KEY_EXCHANGE_CIPHER_HDL:
            w.put_utf8(self.exchange_key_handle).put_int4(self.exchange_key_index)
        w.put_raw(SESSION_SETUP_PADDING)

    @classmethod
    def read(cls, r: Reader, version: Version) -> SessionSetupRequest:
        mode = r.get_int2()
        timeout = r.get_int4()
        identity_handle = r.get_utf8()
        identity_index = r.get_int4()
        if mode in (KEY_EXCHANGE_CIPHER_CLIENT, KEY_EXCHANGE_DH):
            return cls(mode, timeout, identity_handle, identity_index, public_key=r.get_byte_array())
        if mode == KEY_EXCHANGE_CIPHER_HDL:
            return cls(mode, timeout, identity_handle, identity_index,
                       exchange_key_handle=r.get_utf8(), exchange_key_index=r.get_int4())
        return cls(mode, timeout, identity_handle, identity_index)


@dataclass(frozen=True, slots=True)
class SessionTerminateRequest(_HandleBody):
    pass


@dataclass(frozen=True, slots=True)
class SessionExchangeKeyRequest:
    """SESSION_EXCHANGEKEY (402): ``ByteArray encryptedSessionKey``; Java writes an empty body for no key,
    which is ``None`` here."""

    encrypted_key: bytes | None

    def write(self, w: Writer, version: Version) -> None:
        if self.encrypted_key is not None:
            w.put_byte_array(self.encrypted_key)

    @classmethod
    def read(cls, r: Reader, version: Version) -> SessionExchangeKeyRequest:
        if r.remaining == 0:
            return cls(None)
        return cls(r.get_byte_array())


@dataclass(frozen=True, slots=True)
class GetNextTxnIdRequest(_HandleBody):
    pass


@dataclass(frozen=True, slots=True)
class RetrieveTxnLogRequest:
    """RETRIEVE_TXN_LOG (1001), replication.md 4.1. ``replication_state`` (raw JSON bytes) selects the
    all-sources form, which exists from version 2.9; otherwise the single-source fields are used."""

    last_txn_id: int = 0
    last_query_date: int = 0
    receiver_hash_type: int = 0
    num_servers: int = 1
    server_num: int = 0
    replication_state: bytes | None = None

    def write(self, w: Writer, version: Version) -> None:
        if version_at_least(version, (2, 9)):
            if self.replication_state is not None:
                w.put_byte(1).put_byte_array(self.replication_state)
                self._write_receiver(w)
                return
            w.put_byte(0)
        elif self.replication_state is not None:
            raise ValueError("an all-sources RETRIEVE_TXN_LOG request needs protocol version 2.9")
        w.put_int8(self.last_txn_id).put_int8(self.last_query_date)
        self._write_receiver(w)

    def _write_receiver(self, w: Writer) -> None:
        w.put_byte(self.receiver_hash_type).put_int4(self.num_servers).put_int4(self.server_num)

    @classmethod
    def read(cls, r: Reader, version: Version) -> RetrieveTxnLogRequest:
        # Java: any first byte other than 1 means single source.
        if version_at_least(version, (2, 9)) and r.get_byte() == 1:
            state = r.get_byte_array()
            return cls(receiver_hash_type=r.get_byte(), num_servers=r.get_int4(), server_num=r.get_int4(),
                       replication_state=state)
        return cls(last_txn_id=r.get_int8(), last_query_date=r.get_int8(), receiver_hash_type=r.get_byte(),
                   num_servers=r.get_int4(), server_num=r.get_int4())


@dataclass(frozen=True, slots=True)
class DumpHandlesRequest:
    """DUMP_HANDLES (1002), replication.md 4.3: the resume point is present iff bytes remain."""

    receiver_hash_type: int
    num_servers: int
    server_num: int
    starting_point: bytes | None = None
    starting_point_type: int = 0

    def write(self, w: Writer, version: Version) -> None:
        w.put_byte(self.receiver_hash_type).put_int4(self.num_servers).put_int4(self.server_num)
        if self.starting_point is not None:
            w.put_byte_array(self.starting_point).put_int4(self.starting_point_type)

    @classmethod
    def read(cls, r: Reader, version: Version) -> DumpHandlesRequest:
        hash_type, num_servers, server_num = r.get_byte(), r.get_int4(), r.get_int4()
        if r.remaining == 0:
            return cls(hash_type, num_servers, server_num)
        return cls(hash_type, num_servers, server_num, r.get_byte_array(), r.get_int4())


@dataclass(frozen=True, slots=True)
class BackupServerRequest(_HandleBody):
    pass


# ---------------------------------------------------------------------------------------------------
# Success (RC 1) responses


@dataclass(frozen=True, slots=True)
class ResolutionResponse:
    handle: bytes
    values: tuple[HandleValue, ...]

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.handle)
        write_values(w, self.values)

    @classmethod
    def read(cls, r: Reader, version: Version) -> ResolutionResponse:
        return cls(_read_limited_handle(r), _read_limited_values(r))


@dataclass(frozen=True, slots=True)
class SiteInfoResponse:
    """The raw HS_SITE record; it fills the rest of the body (wire.md 9.2)."""

    site_data: bytes

    def write(self, w: Writer, version: Version) -> None:
        w.put_raw(self.site_data)

    @classmethod
    def read(cls, r: Reader, version: Version) -> SiteInfoResponse:
        return cls(r.rest())


@dataclass(frozen=True, slots=True)
class CreateHandleResponse:
    """``[handle]``: Java servers always send it; an empty body (``None``) is accepted too."""

    handle: bytes | None

    def write(self, w: Writer, version: Version) -> None:
        if self.handle is not None:
            w.put_utf8(self.handle)

    @classmethod
    def read(cls, r: Reader, version: Version) -> CreateHandleResponse:
        if r.remaining == 0:
            return cls(None)
        return cls(_read_limited_handle(r))


@dataclass(frozen=True, slots=True)
class GenericSuccessResponse(_EmptyBody):
    """RC 1 of delete, add, remove, modify, home, unhome, session terminate/exchange-key, backup."""


@dataclass(frozen=True, slots=True)
class ListHandlesResponse(_HandleListBody):
    pass


@dataclass(frozen=True, slots=True)
class ListHomedNAsResponse(_HandleListBody):
    pass


@dataclass(frozen=True, slots=True)
class VerifyChallengeResponse:
    valid: bool

    def write(self, w: Writer, version: Version) -> None:
        w.put_byte(1 if self.valid else 0)

    @classmethod
    def read(cls, r: Reader, version: Version) -> VerifyChallengeResponse:
        return cls(bool(r.get_byte() & 0x01))


@dataclass(frozen=True, slots=True)
class SessionSetupResponse:
    """``keyExchangeMode int2 | data ByteArray`` plus Java's two padding bytes (written, ignored on input)."""

    mode: int
    data: bytes

    def write(self, w: Writer, version: Version) -> None:
        w.put_int2(self.mode).put_byte_array(self.data).put_raw(SESSION_SETUP_PADDING)

    @classmethod
    def read(cls, r: Reader, version: Version) -> SessionSetupResponse:
        return cls(r.get_int2(), r.get_byte_array())


@dataclass(frozen=True, slots=True)
class NextTxnIdResponse:
    txn_id: int

    def write(self, w: Writer, version: Version) -> None:
        w.put_int8(self.txn_id)

    @classmethod
    def read(cls, r: Reader, version: Version) -> NextTxnIdResponse:
        return cls(r.get_int8())


@dataclass(frozen=True, slots=True)
class RetrieveTxnLogResponse:
    """One flag byte, 0x01 = keep alive; the transaction stream follows the message.

    Java fills this byte from the header's KA flag, which its server never sets, so it sends 0.
    """

    keep_alive: bool = False

    def write(self, w: Writer, version: Version) -> None:
        w.put_byte(1 if self.keep_alive else 0)

    @classmethod
    def read(cls, r: Reader, version: Version) -> RetrieveTxnLogResponse:
        return cls(bool(r.get_byte() & 0x01))


@dataclass(frozen=True, slots=True)
class DumpHandlesResponse(_EmptyBody):
    """No fields; the dump stream follows the message."""


# ---------------------------------------------------------------------------------------------------
# Bodies chosen by response code


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """``message ByteArray`` (wire.md 10.2). Before 2.1 the length field could be missing."""

    message: bytes = b""

    def write(self, w: Writer, version: Version) -> None:
        w.put_byte_array(self.message)

    @classmethod
    def read(cls, r: Reader, version: Version) -> ErrorBody:
        if not version_at_least(version, (2, 1)) and r.remaining < 4:
            return cls(b"")
        return cls(r.get_byte_array())


@dataclass(frozen=True, slots=True)
class ReferralBody:
    """RC 302/303: ``referralHandle UTF8String | [int4 count | values]`` (wire.md 10.3)."""

    handle: bytes
    values: tuple[HandleValue, ...] | None = None

    def write(self, w: Writer, version: Version) -> None:
        w.put_utf8(self.handle)
        if self.values is not None:
            write_values(w, self.values)

    @classmethod
    def read(cls, r: Reader, version: Version) -> ReferralBody:
        handle = _read_limited_handle(r)
        if r.remaining == 0:
            return cls(handle)
        return cls(handle, _read_limited_values(r))


@dataclass(frozen=True, slots=True)
class ChallengeBody:
    """RC 402: ``nonce ByteArray``. The digest travels as the RD prefix (>= 2.1) or, in the old layout,
    as a ByteArray after the nonce; the message codec handles both (wire.md 9.14)."""

    nonce: bytes

    def write(self, w: Writer, version: Version) -> None:
        w.put_byte_array(self.nonce)

    @classmethod
    def read(cls, r: Reader, version: Version) -> ChallengeBody:
        return cls(r.get_byte_array())


@dataclass(frozen=True, slots=True)
class OpaqueBody:
    """The raw body of a message without a known layout (unknown op or response code), kept so that
    it can be answered and re-encoded unchanged."""

    data: bytes

    def write(self, w: Writer, version: Version) -> None:
        w.put_raw(self.data)

    @classmethod
    def read(cls, r: Reader, version: Version) -> OpaqueBody:
        return cls(r.rest())


Body = (
    ResolutionRequest | SiteInfoRequest | CreateHandleRequest | DeleteHandleRequest | AddValueRequest
    | RemoveValueRequest | ModifyValueRequest | ListHandlesRequest | ChallengeAnswerRequest
    | VerifyChallengeRequest | HomeNARequest | UnhomeNARequest | ListHomedNAsRequest | SessionSetupRequest
    | SessionTerminateRequest | SessionExchangeKeyRequest | GetNextTxnIdRequest | RetrieveTxnLogRequest
    | DumpHandlesRequest | BackupServerRequest
    | ResolutionResponse | SiteInfoResponse | CreateHandleResponse | GenericSuccessResponse
    | ListHandlesResponse | ListHomedNAsResponse | VerifyChallengeResponse | SessionSetupResponse
    | NextTxnIdResponse | RetrieveTxnLogResponse | DumpHandlesResponse
    | ErrorBody | ReferralBody | ChallengeBody | OpaqueBody
)

REQUEST_BODIES: dict[int, type] = {
    OpCode.RESOLUTION: ResolutionRequest,
    OpCode.GET_SITE_INFO: SiteInfoRequest,
    OpCode.CREATE_HANDLE: CreateHandleRequest,
    OpCode.DELETE_HANDLE: DeleteHandleRequest,
    OpCode.ADD_VALUE: AddValueRequest,
    OpCode.REMOVE_VALUE: RemoveValueRequest,
    OpCode.MODIFY_VALUE: ModifyValueRequest,
    OpCode.LIST_HANDLES: ListHandlesRequest,
    OpCode.CHALLENGE_RESPONSE: ChallengeAnswerRequest,
    OpCode.VERIFY_CHALLENGE: VerifyChallengeRequest,
    OpCode.HOME_NA: HomeNARequest,
    OpCode.UNHOME_NA: UnhomeNARequest,
    OpCode.LIST_HOMED_NAS: ListHomedNAsRequest,
    OpCode.SESSION_SETUP: SessionSetupRequest,
    OpCode.SESSION_TERMINATE: SessionTerminateRequest,
    OpCode.SESSION_EXCHANGEKEY: SessionExchangeKeyRequest,
    OpCode.GET_NEXT_TXN_ID: GetNextTxnIdRequest,
    OpCode.RETRIEVE_TXN_LOG: RetrieveTxnLogRequest,
    OpCode.DUMP_HANDLES: DumpHandlesRequest,
    OpCode.BACKUP_SERVER: BackupServerRequest,
}

SUCCESS_BODIES: dict[int, type] = {
    OpCode.RESOLUTION: ResolutionResponse,
    OpCode.GET_SITE_INFO: SiteInfoResponse,
    OpCode.CREATE_HANDLE: CreateHandleResponse,
    OpCode.DELETE_HANDLE: GenericSuccessResponse,
    OpCode.ADD_VALUE: GenericSuccessResponse,
    OpCode.REMOVE_VALUE: GenericSuccessResponse,
    OpCode.MODIFY_VALUE: GenericSuccessResponse,
    OpCode.LIST_HANDLES: ListHandlesResponse,
    OpCode.VERIFY_CHALLENGE: VerifyChallengeResponse,
    OpCode.HOME_NA: GenericSuccessResponse,
    OpCode.UNHOME_NA: GenericSuccessResponse,
    OpCode.LIST_HOMED_NAS: ListHomedNAsResponse,
    OpCode.SESSION_SETUP: SessionSetupResponse,
    OpCode.SESSION_TERMINATE: GenericSuccessResponse,
    OpCode.SESSION_EXCHANGEKEY: GenericSuccessResponse,
    OpCode.GET_NEXT_TXN_ID: NextTxnIdResponse,
    OpCode.RETRIEVE_TXN_LOG: RetrieveTxnLogResponse,
    OpCode.DUMP_HANDLES: DumpHandlesResponse,
    OpCode.BACKUP_SERVER: GenericSuccessResponse,
}


# The digest field shared by the RD prefix (wire.md 7) and VERIFY_CHALLENGE (9.11): an algorithm byte
# followed by the raw digest, or algorithm 0, the old format, where that byte is the top byte of a
# ByteArray length.


def write_digest(w: Writer, alg: int, digest: bytes) -> None:
    if alg == DigestAlgorithm.OLD_FORMAT:
        w.put_byte_array(digest)
        return
    try:
        expected = DIGEST_LENGTHS[DigestAlgorithm(alg)]
    except ValueError:
        raise ValueError(f"unknown digest algorithm {alg}") from None
    if len(digest) != expected:
        raise ValueError(f"digest algorithm {alg} needs {expected} bytes, got {len(digest)}")
    w.put_byte(alg).put_raw(digest)


def read_digest(r: Reader) -> tuple[int, bytes]:
    alg = r.get_byte()
    if alg == DigestAlgorithm.OLD_FORMAT:
        r.pos -= 1
        return alg, r.get_byte_array()
    try:
        length = DIGEST_LENGTHS[DigestAlgorithm(alg)]
    except ValueError:
        raise DecodeError(f"Unrecognized request hash type: {alg}") from None
    return alg, r.get_raw(length)


"""Op codes, response codes and flag bits of the Handle protocol (wire.md sections 3, 5, 9, 10).

Messages carry these as plain ints so that unknown codes survive decoding; the enums give names.
"""

from __future__ import annotations

from enum import IntEnum


class _NamedCodes(IntEnum):
    @classmethod
    def name_of(cls, code: int) -> str:
        try:
            return cls(code).name
        except ValueError:
            return f"UNKNOWN({code})"


class OpCode(_NamedCodes):
    RESERVED = 0
    RESOLUTION = 1
    GET_SITE_INFO = 2
    CREATE_HANDLE = 100
    DELETE_HANDLE = 101
    ADD_VALUE = 102
    REMOVE_VALUE = 103
    MODIFY_VALUE = 104
    LIST_HANDLES = 105
    CHALLENGE_RESPONSE = 200
    VERIFY_CHALLENGE = 201
    HOME_NA = 300
    UNHOME_NA = 301
    LIST_HOMED_NAS = 302
    SESSION_SETUP = 400
    SESSION_TERMINATE = 401
    SESSION_EXCHANGEKEY = 402
    GET_NEXT_TXN_ID = 1000
    RETRIEVE_TXN_LOG = 1001
    DUMP_HANDLES = 1002
    BACKUP_SERVER = 1003


class ResponseCode(_NamedCodes):
    RESERVED = 0
    SUCCESS = 1
    ERROR = 2
    SERVER_TOO_BUSY = 3
    PROTOCOL_ERROR = 4
    OPERATION_NOT_SUPPORTED = 5
    RECURSION_COUNT_TOO_HIGH = 6
    SERVER_BACKUP = 7
    HANDLE_NOT_FOUND = 100
    HANDLE_ALREADY_EXISTS = 101
    INVALID_HANDLE = 102
    VALUES_NOT_FOUND = 200
    VALUE_ALREADY_EXISTS = 201
    INVALID_VALUE = 202
    OUT_OF_DATE_SITE_INFO = 300
    SERVER_NOT_RESP = 301
    SERVICE_REFERRAL = 302
    PREFIX_REFERRAL = 303
    INVALID_ADMIN = 400
    INSUFFICIENT_PERMISSIONS = 401
    AUTHENTICATION_NEEDED = 402
    AUTHENTICATION_FAILED = 403
    INVALID_CREDENTIAL = 404
    AUTHEN_TIMEOUT = 405
    AUTHEN_ERROR = 406
    SESSION_TIMEOUT = 500
    SESSION_FAILED = 501
    INVALID_SESSION_KEY = 502
    NEED_RSAKEY_FOR_SESSIONEXCHANGE = 503
    INVALID_SESSIONSETUP_REQUEST = 504
    SESSION_MESSAGE_REJECTED = 505


# Op codes whose requests need an ADMIN interface (wire.md 12.3).
ADMIN_OPCODES = frozenset({100, 101, 102, 103, 104, 105, 300, 301, 302, 1000, 1001, 1002, 1003})


class OpFlag:
    """Header OpFlags bits (wire.md section 5)."""

    AT = 0x80000000  # authoritative
    CT = 0x40000000  # certify: sign the response
    ENC = 0x20000000  # encrypt the response
    REC = 0x10000000  # recursive
    CA = 0x08000000  # cache certify
    CN = 0x04000000  # continuous: more parts follow
    KA = 0x02000000  # keep alive
    PO = 0x01000000  # public only
    RD = 0x00800000  # return request digest
    OVRW = 0x00400000  # overwrite when exists
    MINT = 0x00200000  # mint new suffix
    DNRF = 0x00100000  # do not refer


# Flags copied from a request into its response (wire.md 5.1).
RESPONSE_COPIED_FLAGS = OpFlag.CT | OpFlag.ENC | OpFlag.CA | OpFlag.PO | OpFlag.DNRF


class EnvelopeFlag:
    """Envelope byte 2 bits (wire.md section 3)."""

    CP = 0x80
    EC = 0x40
    TC = 0x20
    SUGGESTED_MAJOR_MASK = 0x03


class DigestAlgorithm(IntEnum):
    """Request digest algorithm byte (wire.md section 7)."""

    OLD_FORMAT = 0
    MD5 = 1
    SHA1 = 2
    SHA256 = 3


DIGEST_LENGTHS = {DigestAlgorithm.MD5: 16, DigestAlgorithm.SHA1: 20, DigestAlgorithm.SHA256: 32}

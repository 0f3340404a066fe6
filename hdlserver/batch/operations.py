"""What a GenericBatch file says, once parsed: one item per operation, credential or setting.

Every item carries the 1-based line number of the batch-file line that started it, so that the log and
error messages can name it. Handles are kept as text: the batch file is UTF-8 and the wire takes its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hdlserver.wire.values import HandleValue


class Action(Enum):
    """A handle operation; the value is the label the Java tool's log uses for it."""

    CREATE = "create"
    DELETE = "delete"
    ADD = "add values"
    REMOVE = "remove values"
    MODIFY = "modify values"


@dataclass(frozen=True, slots=True)
class SecretKeyCredentials:
    handle: str
    index: int
    secret: bytes


@dataclass(frozen=True, slots=True)
class PublicKeyCredentials:
    handle: str
    index: int
    key_file: str
    passphrase: bytes | None


@dataclass(frozen=True, slots=True)
class Authenticate:
    line: int
    credentials: SecretKeyCredentials | PublicKeyCredentials


@dataclass(frozen=True, slots=True)
class HandleOperation:
    """CREATE, ADD and MODIFY carry ``values``; REMOVE carries ``indexes``; DELETE only the handle."""

    line: int
    action: Action
    handle: str
    values: tuple[HandleValue, ...] = ()
    indexes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PrefixLine:
    line: int
    handle: str


@dataclass(frozen=True, slots=True)
class HomePrefixes:
    """HOME / UNHOME: the prefixes are (un)homed on every server of the site ``host:port`` belongs to."""

    line: int
    home: bool
    host: str
    port: int
    protocol: str  # "tcp", "udp" or "http": how the site information is fetched
    prefixes: tuple[PrefixLine, ...]

    @property
    def label(self) -> str:
        return "home" if self.home else "unhome"


@dataclass(frozen=True, slots=True)
class SessionSetup:
    """A SESSIONSETUP block. ``use_session`` False means plain challenge-response for every request."""

    line: int
    use_session: bool
    encrypted: bool = False
    authenticated: bool = False
    timeout: int | None = None  # seconds
    exchange_key: bool = False  # the block names an RSA exchange key (session modes 1 and 3)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A part of the file that cannot be run: it is reported and nothing is sent for it."""

    line: int
    reason: str
    operation: bool = False  # an operation that could not be parsed: it counts among the batch's entries


BatchItem = Authenticate | HandleOperation | HomePrefixes | SessionSetup | Invalid

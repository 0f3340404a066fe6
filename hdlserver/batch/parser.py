"""GenericBatch file parser (values.md 11): batch-file bytes in, ``BatchItem`` objects out.

Accepts both the Java tool's layout (blocks ended by blank lines) and the one pyhandle's BatchHandleClient
writes (values.md 11.1: no blank line between blocks, no newline at the end): a line that starts with an
operation keyword also ends the open block, and end of file ends the last one.

An operation is yielded only when all of its lines parsed; otherwise an ``Invalid`` naming the first bad
line is yielded instead and nothing of it is sent. File reads (FILE values) go through an injected
function, so the parser itself does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hdlserver.batch.operations import (
    Action,
    Authenticate,
    BatchItem,
    HandleOperation,
    HomePrefixes,
    Invalid,
    PrefixLine,
    PublicKeyCredentials,
    SecretKeyCredentials,
    SessionSetup,
)
from hdlserver.config.siteinfo import site_info_from_json_text
from hdlserver.errors import ConfigError
from hdlserver.wire.site import encode_site
from hdlserver.wire.valuedata import HS_SITE, AdminRecord, admin_perms_from_batch, encode_admin, encode_vlist
from hdlserver.wire.values import (
    PERM_ADMIN_READ,
    PERM_ADMIN_WRITE,
    PERM_PUBLIC_READ,
    PERM_PUBLIC_WRITE,
    HandleValue,
    ValueReference,
    has_type,
)

ReadFile = Callable[[str], bytes]

AUTHENTICATE = "AUTHENTICATE"
SESSIONSETUP = "SESSIONSETUP"
HOME = "HOME"
UNHOME = "UNHOME"
ACTIONS = {action.name: action for action in Action}
KEYWORDS = frozenset({AUTHENTICATE, SESSIONSETUP, HOME, UNHOME, *ACTIONS})

# The four permission characters, in batch order (values.md 1.2): adminRead adminWrite publicRead publicWrite.
_PERMISSION_BITS = (PERM_ADMIN_READ, PERM_ADMIN_WRITE, PERM_PUBLIC_READ, PERM_PUBLIC_WRITE)
_INT = re.compile(r"[+-]?[0-9]+")
# <index> <type> <ttl> <perm4> <kind> [<data>]: fields separated by spaces (only spaces, as Java's tokenizer).
_VALUE_LINE = re.compile(r" *([^ ]+) +([^ ]+) +([^ ]+) +([^ ]+) +([^ ]+)(?: +(.*))?")
_HOME_IPV6 = re.compile(r"\[(.+)\]:([0-9]+):(\w+)")
_HOME_IPV4 = re.compile(r"([^:\[\]]+):([0-9]+):(\w+)")
_HOME_PROTOCOLS = ("tcp", "udp", "http")
_SESSION_OPTION = re.compile(r"([A-Za-z]+):(.*)")
# Lines naming an RSA exchange key (session modes 1 and 3), which Handle.Net 9.2 cannot use (auth.md 9.3).
_EXCHANGE_KEY_OPTIONS = frozenset({"PUBEXNGKEYFILE", "PUBEXNGKEYREF", "PRIVEXNGKEYFILE", "PASSPHRASE"})


class LineError(ValueError):
    """A line that cannot be parsed; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    text: str | None  # None: the line is not valid UTF-8
    error: str = ""

    @property
    def blank(self) -> bool:
        return self.text is not None and not self.text.strip()

    @property
    def keyword(self) -> str | None:
        """The operation keyword this line starts with, if any (case-insensitive, as Java)."""
        if self.text is None:
            return None
        head = self.text.strip().split(" ", 1)[0].upper()
        return head if head in KEYWORDS else None


class _Lines:
    """The file's lines, numbered from 1, with one line of push-back."""

    def __init__(self, raw_lines: Iterable[bytes]) -> None:
        self._raw = iter(raw_lines)
        self._number = 0
        self._pushed: _Line | None = None

    def next(self) -> _Line | None:
        if self._pushed is not None:
            line, self._pushed = self._pushed, None
            return line
        raw = next(self._raw, None)
        if raw is None:
            return None
        self._number += 1
        raw = raw.rstrip(b"\r\n")
        if self._number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark some editors write
        try:
            return _Line(self._number, raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return _Line(self._number, None, f"not valid UTF-8 (byte {exc.start + 1} of the line)")

    def push_back(self, line: _Line) -> None:
        self._pushed = line

    def block(self) -> Iterator[_Line]:
        """The lines of the open block: up to a blank line (consumed), a keyword line (left for the caller)
        or the end of the file."""
        while (line := self.next()) is not None:
            if line.blank:
                return
            if line.keyword is not None:
                self.push_back(line)
                return
            yield line

    def skip_block(self) -> None:
        for _line in self.block():
            pass


def read_file_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def split_lines(data: bytes) -> list[bytes]:
    """A batch file's lines; a final newline does not start another line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def parse_batch(raw_lines: Iterable[bytes], read_file: ReadFile = read_file_bytes) -> Iterator[BatchItem]:
    """Parse a batch file given as its lines (bytes, without or with their line ends)."""
    lines = _Lines(raw_lines)
    while (line := lines.next()) is not None:
        if line.text is None:
            yield Invalid(line.number, line.error)
            lines.skip_block()
            continue
        text = line.text.strip()
        if not text:
            continue
        command, _, rest = text.partition(" ")
        command = command.upper()
        rest = rest.strip()
        if command == AUTHENTICATE:
            yield _authenticate(line.number, rest, lines)
        elif command in ACTIONS:
            yield _handle_operation(line.number, ACTIONS[command], rest, lines, read_file)
        elif command in (HOME, UNHOME):
            yield from _home_prefixes(line.number, command == HOME, rest, lines)
        elif command == SESSIONSETUP:
            yield from _session_setup(line.number, lines)
        else:
            yield Invalid(line.number, f"unknown operation {command!r} (expected one of {', '.join(sorted(KEYWORDS))})")
            lines.skip_block()


# --- AUTHENTICATE ------------------------------------------------------------------------------------


def _parse_int4(text: str, what: str) -> int:
    text = text.strip()
    if not _INT.fullmatch(text):
        raise LineError(f"{what} {text!r} is not an integer")
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise LineError(f"{what} {text} does not fit in 32 bits")
    return value


def _authenticate(number: int, rest: str, lines: _Lines) -> BatchItem:
    kind, index_text, handle = (part.strip() for part in ([*rest.split(":", 2), "", ""])[:3])
    kind = kind.upper()
    if kind not in ("SECKEY", "PUBKEY") or not handle:
        return Invalid(number, f"AUTHENTICATE needs SECKEY:<index>:<handle> or PUBKEY:<index>:<handle>, got {rest!r}")
    try:
        index = _parse_int4(index_text, "identity index")
    except LineError as exc:
        return Invalid(number, f"AUTHENTICATE: {exc}")
    what = "password" if kind == "SECKEY" else "key file"
    secret_line = lines.next()
    if secret_line is None or secret_line.blank or secret_line.keyword is not None:
        if secret_line is not None and secret_line.keyword is not None:
            lines.push_back(secret_line)
        return Invalid(number, f"AUTHENTICATE {kind}:{index}:{handle}: the {what} line is missing")
    if secret_line.text is None:
        return Invalid(secret_line.number, f"{what} line of AUTHENTICATE {kind}: {secret_line.error}")
    secret = secret_line.text.strip()
    if kind == "SECKEY":
        return Authenticate(number, SecretKeyCredentials(handle, index, secret.encode("utf-8")))
    key_file, pipe, passphrase = secret.partition("|")
    if not key_file.strip():
        return Invalid(secret_line.number, "AUTHENTICATE PUBKEY: no key file name before '|'")
    return Authenticate(number, PublicKeyCredentials(handle, index, key_file.strip(),
                                                     passphrase.strip().encode("utf-8") if pipe else None))


# --- CREATE / ADD / MODIFY / REMOVE / DELETE ---------------------------------------------------------


def _handle_operation(number: int, action: Action, rest: str, lines: _Lines, read_file: ReadFile) -> BatchItem:
    label = action.name
    if action is Action.REMOVE:
        return _remove(number, rest)
    if not rest:
        if action is not Action.DELETE:
            lines.skip_block()
        return Invalid(number, f"{label}: no handle after {label}", operation=True)
    if action is Action.DELETE:
        return HandleOperation(number, action, rest)
    values: list[HandleValue] = []
    first_error: Invalid | None = None
    for line in lines.block():
        if first_error is not None:
            continue  # the rest of a bad block is skipped with it
        try:
            if line.text is None:
                raise LineError(line.error)
            values.append(parse_value_line(line.text, read_file))
        except LineError as exc:
            first_error = Invalid(line.number, f"{label} {rest} (line {number}): {exc}", operation=True)
    if first_error is not None:
        return first_error
    if not values:
        return Invalid(number, f"{label} {rest}: no handle values follow", operation=True)
    return HandleOperation(number, action, rest, tuple(values))


def _remove(number: int, rest: str) -> BatchItem:
    indexes_text, colon, handle = rest.partition(":")
    handle = handle.strip()
    if not colon or not indexes_text.strip() or not handle:
        return Invalid(number, f"REMOVE needs <index>[,<index>...]:<handle>, got {rest!r}", operation=True)
    try:
        indexes = tuple(_parse_int4(part, "value index") for part in indexes_text.split(",") if part.strip())
    except LineError as exc:
        return Invalid(number, f"REMOVE {handle}: {exc}", operation=True)
    return HandleOperation(number, Action.REMOVE, handle, indexes=indexes)


def parse_permissions(text: str) -> int:
    if len(text) != 4 or any(c not in "01" for c in text):
        raise LineError(f"permissions {text!r} must be 4 characters 0/1 "
                        "(admin read, admin write, public read, public write)")
    return sum(bit for bit, c in zip(_PERMISSION_BITS, text, strict=True) if c == "1")


def parse_value_line(text: str, read_file: ReadFile = read_file_bytes) -> HandleValue:
    """``<index> <type> <ttl> <perm4> <kind> <data>`` (values.md 11) -> a HandleValue."""
    match = _VALUE_LINE.fullmatch(text.rstrip())
    if match is None:
        raise LineError("a value line needs <index> <type> <ttl> <permissions> <UTF8|ADMIN|LIST|FILE> <data>, "
                        f"got {text.strip()!r}")
    index_text, type_text, ttl_text, perm_text, kind, data_text = match.groups()
    index = _parse_int4(index_text, "value index")
    ttl = _parse_int4(ttl_text, "ttl")
    permissions = parse_permissions(perm_text)
    value_type = type_text.encode("utf-8")
    data = _value_data(kind.upper(), value_type, (data_text or "").strip(), read_file)
    return HandleValue(index, value_type, data, permissions=permissions, ttl=ttl)


def _value_data(kind: str, value_type: bytes, text: str, read_file: ReadFile) -> bytes:
    if kind == "UTF8":
        return text.encode("utf-8")
    if kind == "ADMIN":
        return _admin_data(text)
    if kind == "LIST":
        return encode_vlist(_reference_list(text))
    if kind == "FILE":
        return _file_data(value_type, text, read_file)
    raise LineError(f"unknown data kind {kind!r} (expected UTF8, ADMIN, LIST or FILE)")


def _admin_data(text: str) -> bytes:
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[2].strip():
        raise LineError(f"ADMIN data must be <admin index>:<12 permission flags>:<admin handle>, got {text!r}")
    index = _parse_int4(parts[0], "admin index")
    try:
        permissions = admin_perms_from_batch(parts[1].strip())
    except ValueError as exc:
        raise LineError(str(exc)) from None
    return encode_admin(AdminRecord(permissions, parts[2].strip().encode("utf-8"), index))


def _reference_list(text: str) -> tuple[ValueReference, ...]:
    refs = []
    for item in (part.strip() for part in text.split(";")):
        if not item:
            continue
        index_text, colon, handle = item.partition(":")
        if not colon or not handle.strip():
            raise LineError(f"LIST entry {item!r} must be <index>:<handle>")
        refs.append(ValueReference(handle.strip().encode("utf-8"), _parse_int4(index_text, "LIST index")))
    if not refs:
        raise LineError("LIST data names no <index>:<handle> reference")
    return tuple(refs)


def _file_data(value_type: bytes, path: str, read_file: ReadFile) -> bytes:
    if not path:
        raise LineError("FILE data names no file")
    try:
        data = read_file(path)
    except OSError as exc:
        raise LineError(f"cannot read file {path}: {exc.strerror or exc}") from None
    # As Java: an HS_SITE value may be given as a siteinfo.json file; it is stored in binary form.
    if has_type(value_type, HS_SITE) and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        try:
            return encode_site(site_info_from_json_text(data, Path(path)))
        except ConfigError as exc:
            raise LineError(str(exc)) from None
    return data


# --- HOME / UNHOME -----------------------------------------------------------------------------------


def _home_prefixes(number: int, home: bool, rest: str, lines: _Lines) -> Iterator[BatchItem]:
    label = HOME if home else UNHOME
    match = _HOME_IPV6.fullmatch(rest) or _HOME_IPV4.fullmatch(rest)
    if match is None or match.group(3).lower() not in _HOME_PROTOCOLS:
        lines.skip_block()
        yield Invalid(number, f"{label} needs <address>:<port>:<tcp|udp|http>, got {rest!r}")
        return
    host, port_text, protocol = match.groups()
    prefixes = []
    for line in lines.block():
        if line.text is None:
            yield Invalid(line.number, f"{label}: {line.error}")
            continue
        handle = line.text.strip()
        if handle[:5].upper() != "0.NA/" or len(handle) <= 5:
            yield Invalid(line.number, f"{label}: {handle!r} is not a prefix handle (0.NA/<prefix>)")
            continue
        prefixes.append(PrefixLine(line.number, handle))
    yield HomePrefixes(number, home, host, int(port_text), protocol.lower(), tuple(prefixes))


# --- SESSIONSETUP ------------------------------------------------------------------------------------


def _session_setup(number: int, lines: _Lines) -> Iterator[BatchItem]:
    """Java's option lines (GenericBatch ``getSessionSetupInfo``); unknown lines are reported and skipped."""
    use_session = encrypted = authenticated = False
    timeout: int | None = None
    exchange_key = False
    for line in lines.block():
        match = _SESSION_OPTION.fullmatch(line.text.strip()) if line.text is not None else None
        name, value = (match.group(1).upper(), match.group(2).strip()) if match else ("", "")
        try:
            if name == "USESESSION":
                use_session = _parse_int4(value, "USESESSION flag") > 0
            elif name == "OPTIONS":
                if len(value) < 2 or any(c not in "01" for c in value):
                    raise LineError(f"OPTIONS {value!r} must be at least 2 characters 0/1 (encrypted, authenticated)")
                encrypted, authenticated = value[0] == "1", value[1] == "1"
            elif name == "TIMEOUT":
                hours = _parse_int4(value, "TIMEOUT (hours)")
                timeout = hours * 3600 if hours > 0 else None
            elif name in _EXCHANGE_KEY_OPTIONS:
                exchange_key = True
            else:
                raise LineError(line.error or f"unknown session setup line {line.text.strip()!r}")
        except LineError as exc:
            yield Invalid(line.number, f"SESSIONSETUP: {exc}")
    yield SessionSetup(number, use_session, encrypted, authenticated, timeout, exchange_key)

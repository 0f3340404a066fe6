"""The Handle.Net ``.dct`` format (config.dct, txnstat.dct, contactdata.dct): parser, writer, scalar readers.

The grammar is the one of Java's ``net.cnri.util.StreamTable`` (server.md section 2), checked against the
Handle.Net 9.2.0 jar:

* separators are space, TAB, CR, LF, ``,`` and ``;``; there is no comment syntax;
* a document is a table ``{ key = value ... }``; anything after its closing ``}`` is ignored;
* keys and scalar values are quoted strings or bare words; values may also be tables or lists
  ``( value ... )``;
* in a quoted string ``\\n`` is a newline and a backslash before any other character yields that character;
* a bare word starts with any character that is not a separator (and not ``"``, ``{``, ``(`` where a value is
  expected, nor the closing bracket of the enclosing table/list), and runs up to the next separator or ``=``.
  That terminating character is **consumed** with the word, and ``}``/``)`` never end a word. So ``{ a = b }``
  is a table, ``{ a = b}`` lacks its ``}`` (the value is ``b}``) and ``{a=b}`` is an error: the ``=`` ending
  the bare key ``a`` is swallowed, so the parser finds ``b`` where it expects ``=``.

The parser never raises anything but ConfigError, whatever the text.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from hdlserver.errors import ConfigError

DctValue: TypeAlias = "str | list[DctValue] | dict[str, DctValue]"
DctTable: TypeAlias = "dict[str, DctValue]"
# Where a value sits in a document: table keys and list indexes from the top-level table down.
DctPath: TypeAlias = tuple[str | int, ...]

# Java has no explicit limit (it overflows its stack somewhere in the thousands); a bound keeps our
# recursive parser and writer away from RecursionError. Real files nest three or four levels.
MAX_NESTING = 64

JAVA_INT_MIN = -(2**31)
JAVA_INT_MAX = 2**31 - 1
JAVA_LONG_MAX = 2**63 - 1

_SEPARATORS = re.compile(r"[ \t\r\n,;]*")
_WORD_TAIL = re.compile(r"[^ \t\r\n,;=]*")
_STRING_RUN = re.compile(r'[^"\\]*')
_NEWLINE = re.compile(r"\n")
# Java's parseInt takes any Unicode decimal digit, as \d and int() do.
_JAVA_INTEGER = re.compile(r"[+-]?\d+")
# Java's String.trim() removes every character up to and including U+0020.
_JAVA_TRIMMED = "".join(chr(c) for c in range(0x21))


@dataclass(frozen=True, slots=True)
class DctDocument:
    """A parsed ``.dct`` file with the line on which each value starts (for error messages)."""

    table: DctTable
    path: str
    lines: Mapping[DctPath, int] = field(default_factory=dict, compare=False, hash=False)

    def line_of(self, *keys: str | int) -> int | None:
        """The 1-based line where the value at ``keys`` starts (``()`` is the top-level table), if known."""
        return self.lines.get(tuple(keys))


def parse_dct_document(text: str, path: str = "<string>") -> DctDocument:
    """Parse ``.dct`` text, keeping the line of every value; ConfigError(reason, path, line) on bad text."""
    parser = _Parser(text, path)
    table = parser.document()
    return DctDocument(table=table, path=path, lines=parser.lines)


def parse_dct(text: str, path: str = "<string>") -> DctTable:
    """Parse ``.dct`` text into nested dicts, lists and strings."""
    return parse_dct_document(text, path).table


def load_dct_document(path: Path) -> DctDocument:
    """Read and parse a ``.dct`` file (UTF-8); ConfigError naming the file when it cannot be read or decoded.

    A leading UTF-8 byte order mark is skipped (Java would reject it; editors add it silently).
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the file: {e.strerror or e}", name) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"not valid UTF-8 (byte offset {e.start})", name, line) from None
    return parse_dct_document(text.removeprefix("\ufeff"), name)


def load_dct(path: Path) -> DctTable:
    """Read and parse a ``.dct`` file (UTF-8)."""
    return load_dct_document(path).table


def format_dct(table: Mapping[str, DctValue]) -> str:
    """Write a table exactly as Java's StreamTable.writeTo does, entries in insertion order.

    Every key and scalar is quoted with only ``"`` and ``\\`` escaped (newlines are written raw). Java's
    layout quirks are kept so our files diff cleanly against Java-written ones: a nested table or list is
    followed by an empty line, and a table or list inside a list starts at column 0.
    """
    out: list[str] = []
    _write_table(out, table, 0, 0)
    return "".join(out)


def dct_bool(value: DctValue | None, default: bool) -> bool:
    """Java's StreamTable.getBoolean: a value starting with y/t (any case) is true, n/f false, else default.

    Lists and tables are never booleans (Java sees their text form, which starts with a bracket).
    """
    choice = dct_optional_bool(value)
    return default if choice is None else choice


def dct_optional_bool(value: DctValue | None) -> bool | None:
    """Like dct_bool, but None when the value is absent or not a yes/no word (for defaults set by context)."""
    if not isinstance(value, str):
        return None
    first = value[:1].lower()
    if first in ("y", "t"):
        return True
    if first in ("n", "f"):
        return False
    return None


def dct_int(
    value: DctValue | None,
    default: int,
    *,
    key: str = "value",
    path: str | None = None,
    line: int | None = None,
    trim: bool = False,
    minimum: int = JAVA_INT_MIN,
    maximum: int = JAVA_INT_MAX,
) -> int:
    """A decimal integer the way Java's Integer.parseInt reads it; ``default`` when absent.

    ``trim`` strips what Java's String.trim() strips (only some keys are trimmed by Java). Anything that is
    not ``[+-]digits`` within ``minimum..maximum`` raises ConfigError naming ``key``, ``path`` and ``line``.
    """
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be an integer, got a {_kind_of(value)}", path, line)
    text = java_trim(value) if trim else value
    if not _JAVA_INTEGER.fullmatch(text):
        raise ConfigError(f"{key} must be an integer, got {value!r}", path, line)
    number = int(text)
    if not minimum <= number <= maximum:
        raise ConfigError(f"{key} must be between {minimum} and {maximum}, got {number}", path, line)
    return number


def java_trim(text: str) -> str:
    """Java's String.trim(): strip every character up to and including U+0020 from both ends."""
    return text.strip(_JAVA_TRIMMED)


def _kind_of(value: object) -> str:
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


class _Parser:
    """Recursive descent over the whole text; records the start line of every value it reads."""

    def __init__(self, text: str, path: str) -> None:
        self._text = text
        self._path = path
        self._pos = 0
        self._newlines = [m.start() for m in _NEWLINE.finditer(text)]
        self.lines: dict[DctPath, int] = {}

    def document(self) -> DctTable:
        char, at = self._next_char()
        if char == "{":
            self.lines[()] = self._line(at)
            return self._table(at, (), 1)
        if char == "":
            raise self._error("expected '{' to start the document, got end of input", at)
        raise self._error(f"expected '{{' to start the document, got {char!r}", at)

    def _table(self, opened_at: int, where: DctPath, depth: int) -> DctTable:
        table: DctTable = {}
        while True:
            char, at = self._next_char()
            if char == "}":
                return table
            if char == "":
                raise self._error("missing '}' for the table that starts here (end of input)", opened_at)
            key_at = at
            key = self._quoted(at) if char == '"' else self._bare_word(at)
            char, at = self._next_char()
            if char != "=":
                # At end of input the key's line says more than the (often empty) last line.
                reason = f"expected '=' after key {key!r}, got {_describe(char)}"
                raise self._error(reason, at if char else key_at)
            if key in table:
                # A repeated key overwrites: forget the old value (and its line records) entirely.
                del table[key]
                self._forget((*where, key))
            table[key] = self._value((*where, key), depth, key, key_at)

    def _list(self, opened_at: int, where: DctPath, depth: int) -> list[DctValue]:
        items: list[DctValue] = []
        while True:
            char, at = self._next_char()
            if char == ")":
                return items
            if char == "":
                raise self._error("missing ')' for the list that starts here (end of input)", opened_at)
            items.append(self._value_from(char, at, (*where, len(items)), depth))

    def _value(self, where: DctPath, depth: int, key: str, key_at: int) -> DctValue:
        char, at = self._next_char()
        if char == "":
            raise self._error(f"expected a value for key {key!r}, got end of input", key_at)
        return self._value_from(char, at, where, depth)

    def _value_from(self, char: str, at: int, where: DctPath, depth: int) -> DctValue:
        self.lines[where] = self._line(at)
        if char == '"':
            return self._quoted(at)
        if char in "{(":
            if depth >= MAX_NESTING:
                raise self._error(f"tables and lists nested deeper than {MAX_NESTING} levels", at)
            if char == "{":
                return self._table(at, where, depth + 1)
            return self._list(at, where, depth + 1)
        return self._bare_word(at)

    def _next_char(self) -> tuple[str, int]:
        """Skip separators, consume the next character and return it with its offset (``""`` at the end)."""
        at = _SEPARATORS.match(self._text, self._pos).end()
        if at >= len(self._text):
            self._pos = at
            return "", at
        self._pos = at + 1
        return self._text[at], at

    def _bare_word(self, at: int) -> str:
        # The first character belongs to the word whatever it is; the terminator is swallowed (as in Java).
        end = _WORD_TAIL.match(self._text, at + 1).end()
        self._pos = min(end + 1, len(self._text))
        return self._text[at:end]

    def _quoted(self, opened_at: int) -> str:
        text = self._text
        pos = opened_at + 1
        parts: list[str] = []
        while True:
            run = _STRING_RUN.match(text, pos)
            parts.append(run.group())
            pos = run.end()
            if pos >= len(text) or (text[pos] == "\\" and pos + 1 >= len(text)):
                raise self._error("unterminated quoted string that starts here (end of input)", opened_at)
            if text[pos] == '"':
                self._pos = pos + 1
                return "".join(parts)
            escaped = text[pos + 1]
            parts.append("\n" if escaped == "n" else escaped)
            pos += 2

    def _forget(self, where: DctPath) -> None:
        depth = len(where)
        for recorded in [p for p in self.lines if p[:depth] == where]:
            del self.lines[recorded]

    def _line(self, offset: int) -> int:
        return bisect_left(self._newlines, offset) + 1

    def _error(self, reason: str, offset: int) -> ConfigError:
        return ConfigError(reason, self._path, self._line(offset))


def _describe(char: str) -> str:
    return "end of input" if char == "" else repr(char)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_table(out: list[str], table: Mapping[str, DctValue], level: int, depth: int) -> None:
    indent = "  " * level
    out.append("{\n")
    for key, value in table.items():
        if not isinstance(key, str):
            raise TypeError(f".dct keys must be str, got {type(key).__name__}")
        out.append(f"{indent}  {_quote(key)} = ")
        if isinstance(value, str):
            out.append(_quote(value))
        else:
            _write_container(out, value, level + 1, depth + 1)
        out.append("\n")
    out.append(f"{indent}}}\n")


def _write_list(out: list[str], items: list[DctValue], level: int, depth: int) -> None:
    indent = "  " * level
    out.append("(\n")
    for item in items:
        if isinstance(item, str):
            out.append(f"{indent}  {_quote(item)}\n")
        else:
            # Java starts a nested table or list right after the previous newline, without indentation.
            _write_container(out, item, level + 1, depth + 1)
    out.append(f"{indent})\n")


def _write_container(out: list[str], value: DctValue, level: int, depth: int) -> None:
    if depth >= MAX_NESTING:
        raise ValueError(f"tables and lists nested deeper than {MAX_NESTING} levels")
    if isinstance(value, dict):
        _write_table(out, value, level, depth)
    elif isinstance(value, list):
        _write_list(out, value, level, depth)
    else:
        raise TypeError(f".dct values must be str, list or dict, got {type(value).__name__}")

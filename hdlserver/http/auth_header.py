"""The ``Authorization`` header forms of the REST API (auth.md 10.1-10.2), parsed but not verified.

* ``Basic base64(user ":" password)``: user = %-encoded ``index:handle``, password = the HS_SECKEY bytes.
* ``Handle name=value, ...``: token or quoted-string values, names case-insensitive, ``id`` %-encoded.

Verification belongs to the authentication layer; this module only turns header text into data.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from hdlserver.http.messages import decode_path

_TOKEN = r"[-A-Za-z0-9!#$%&'*+.`^_|~]++"
_QUOTED = r'"[^\\"]*+(?:\\.[^\\"]*+)*+"'
_HANDLE_SCHEME = re.compile(r"\s*+Handle\s++(.*+)", re.IGNORECASE | re.DOTALL)
_PARAMETER = re.compile(rf"\s*+({_TOKEN})\s*+=\s*+({_TOKEN}|{_QUOTED})\s*+((?:,\s*+)*+)", re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_BASE64_JUNK = re.compile(r"[^A-Za-z0-9+/\-_]")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """``Authorization: Basic``: the identity and the secret key it claims to hold."""

    handle: bytes
    index: int
    password: bytes


@dataclass(frozen=True, slots=True)
class HandleAuthorization:
    """``Authorization: Handle`` parameters (auth.md 10.2); absent parameters are None."""

    version: str | None = None
    session_id: str | None = None
    id: str | None = None  # "index:handle", already %-decoded
    cnonce: str | None = None  # base64
    type: str | None = None  # HS_PUBKEY or HS_SECKEY
    alg: str | None = None
    signature: str | None = None  # base64
    salt: str | None = None  # PBKDF2 parameters
    iterations: str | None = None
    length: str | None = None
    client_cert: str | None = None
    renegotiate: str | None = None

    @property
    def is_authenticating(self) -> bool:
        return any(v is not None for v in (self.id, self.type, self.alg, self.signature))

    @property
    def is_requesting_server_signature(self) -> bool:
        """A cnonce without an id asks the server to sign ``nonce || cnonce`` (auth.md 10.2 step 5)."""
        return self.cnonce is not None and self.id is None

    @property
    def requires_session(self) -> bool:
        return self.session_id is not None or self.is_authenticating or self.is_requesting_server_signature

    @property
    def is_incomplete(self) -> bool:
        """Some parameter an authentication attempt needs is missing."""
        return any(v is None for v in (self.id, self.cnonce, self.type, self.alg, self.signature))

    def identity(self) -> tuple[bytes, int] | None:
        """(handle, index) named by ``id``, or None without one."""
        return None if self.id is None else split_index_colon_handle(self.id)

    def with_parameters(self, params: Iterable[tuple[str, str]]) -> HandleAuthorization:
        """Fill parameters the header did not give from request parameters (the sessions API, auth.md 10.2
        step 3); an empty parameter value counts as ``true``."""
        updates: dict[str, str] = {}
        for name, value in params:
            attr = _ATTRIBUTES.get(name.lower())
            if attr is not None and attr not in updates and getattr(self, attr) is None:
                updates[attr] = value if value != "" else "true"
        return replace(self, **updates)


# Parameter names (lower-cased) to attribute names.
_ATTRIBUTES = {f.name.replace("_", ""): f.name for f in fields(HandleAuthorization)}


def split_index_colon_handle(text: str) -> tuple[bytes, int]:
    """``300:0.NA/TEST`` -> (b"0.NA/TEST", 300); text without a numeric ``index:`` part is a handle with
    index 0 (Java's ValueReference parsing of user names and ids)."""
    colon = text.find(":")
    if colon > 0 and _DIGITS.fullmatch(text[:colon]) and len(text[:colon]) <= 10:
        index = int(text[:colon])
        if index <= 2**31 - 1:
            return text[colon + 1 :].encode("utf-8"), index
    return text.encode("utf-8"), 0


def parse_basic(value: str) -> BasicCredentials | None:
    parts = value.split()
    if len(parts) != 2 or parts[0].lower() != "basic":
        return None
    # commons-codec decoding: characters outside the base64 alphabets are skipped, padding is optional.
    text = _BASE64_JUNK.sub("", parts[1]).replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    colon = raw.find(b":")
    if colon < 0:
        return None
    user = decode_path(raw[:colon].decode("utf-8", "replace"))
    handle, index = split_index_colon_handle(user)
    return BasicCredentials(handle, index, raw[colon + 1 :])


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return value


def parse_handle(value: str) -> HandleAuthorization | None:
    """``Handle k=v, k="v"``; None when the header is not of that form or does not parse completely."""
    scheme = _HANDLE_SCHEME.fullmatch(value)
    if scheme is None or not scheme.group(1):
        return None
    text = scheme.group(1)
    found: dict[str, str] = {}
    pos = 0
    separated = True  # a comma must separate one parameter from the next
    while pos < len(text):
        m = _PARAMETER.match(text, pos)
        if m is None or not separated:
            return None
        name, raw = m.group(1), _unquote(m.group(2))
        attr = _ATTRIBUTES.get(name.lower())
        if attr is not None:
            found[attr] = decode_path(raw) if attr == "id" else raw
        separated = bool(m.group(3))
        pos = m.end()
    return HandleAuthorization(**found)


def parse_authorization(value: str | None) -> BasicCredentials | HandleAuthorization | None:
    """The credentials of an ``Authorization`` header value, or None for an absent or unknown form."""
    if value is None:
        return None
    return parse_basic(value) or parse_handle(value)

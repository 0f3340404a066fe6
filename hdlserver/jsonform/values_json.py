"""The JSON form of handle values used by the REST API and the JSON tools (values.md section 10).

Output is what Java's ``GsonUtility`` writes, key order included. Input accepts every form Java
reads; the one deliberate difference is the value ``permissions`` string, whose four characters are
all applied (Java ignores the first one).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from hdlserver.errors import DecodeError
from hdlserver.wire.pubkey import (
    DSAPublicKeyData,
    PublicKeyData,
    RSAPublicKeyData,
    decode_public_key,
    encode_public_key,
)
from hdlserver.wire.valuedata import (
    HS_ADMIN,
    HS_NA_DELEGATE,
    HS_PUBKEY,
    HS_SITE,
    HS_SITE_PREFIX,
    HS_VLIST,
    AdminRecord,
    admin_perms_from_json,
    admin_perms_to_json,
    decode_admin,
    decode_vlist,
    encode_admin,
    encode_vlist,
    looks_like_text,
)
from hdlserver.wire.values import (
    DEFAULT_PERMISSIONS,
    DEFAULT_TTL,
    PERM_ADMIN_READ,
    PERM_ADMIN_WRITE,
    PERM_PUBLIC_READ,
    PERM_PUBLIC_WRITE,
    TTL_ABSOLUTE,
    TTL_RELATIVE,
    HandleValue,
    ValueReference,
    has_type,
)

INT4_MIN = -(2**31)
INT4_MAX = 2**31 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PERMISSION_CHARS = (PERM_ADMIN_READ, PERM_ADMIN_WRITE, PERM_PUBLIC_READ, PERM_PUBLIC_WRITE)
_USUAL_PERMISSIONS = DEFAULT_PERMISSIONS | PERM_PUBLIC_WRITE  # the bits Java compares


class JsonFormError(ValueError):
    """JSON that is not a valid handle value / record / site; the message names the offending field."""


# --- small typed accessors -------------------------------------------------------------------------


def kind_of(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def expect_object(v: object, where: str) -> dict:
    if not isinstance(v, dict):
        raise JsonFormError(f"{where}: expected an object, got {kind_of(v)}")
    return v


def expect_array(v: object, where: str) -> list:
    if not isinstance(v, list):
        raise JsonFormError(f"{where}: expected an array, got {kind_of(v)}")
    return v


def require(obj: dict, key: str, where: str) -> object:
    if key not in obj or obj[key] is None:
        raise JsonFormError(f"{where}.{key}: missing")
    return obj[key]


def expect_str(v: object, where: str) -> str:
    if not isinstance(v, str):
        raise JsonFormError(f"{where}: expected a string, got {kind_of(v)}")
    return v


def expect_int(v: object, where: str, lo: int = INT4_MIN, hi: int = INT4_MAX) -> int:
    """An integer, as Gson's getAsInt reads it: a JSON number or a string holding one."""
    n: int | None = None
    if isinstance(v, int) and not isinstance(v, bool):
        n = v
    elif (isinstance(v, float) and v.is_integer()) or (
            isinstance(v, str) and re.fullmatch(r"[+-]?[0-9]{1,20}", v.strip())):
        n = int(v)
    if n is None:
        raise JsonFormError(f"{where}: expected an integer, got {kind_of(v)} {v!r}")
    if not lo <= n <= hi:
        raise JsonFormError(f"{where}: {n} is out of range {lo}..{hi}")
    return n


def expect_bool(v: object, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise JsonFormError(f"{where}: expected true or false, got {kind_of(v)} {v!r}")


def utf8(s: str, where: str) -> bytes:
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonFormError(f"{where}: text contains a lone surrogate, which is not valid Unicode") from None


def text_of(b: bytes) -> str:
    """Java ``Util.decodeString``: UTF-8 with replacement characters for invalid bytes."""
    return b.decode("utf-8", "replace")


# --- base64, hex, timestamps ----------------------------------------------------------------------

_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/\-_]*")
_HEX_CHARS = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def b64_decode_lenient(s: str, where: str) -> bytes:
    """Base64 as commons-codec reads it: standard or URL-safe alphabet, padding and line breaks optional."""
    t = "".join(s.split()).rstrip("=")
    if not _BASE64_CHARS.fullmatch(t) or len(t) % 4 == 1:
        raise JsonFormError(f"{where}: not valid base64")
    t = t.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(t + "=" * (-len(t) % 4), validate=True)
    except binascii.Error:
        raise JsonFormError(f"{where}: not valid base64") from None


def hex_decode(s: str, where: str) -> bytes:
    if not _HEX_CHARS.fullmatch(s):
        raise JsonFormError(f"{where}: not valid hex (an even number of hex digits)")
    return bytes.fromhex(s)


def iso_timestamp(seconds: int) -> str:
    """Java FastDateFormat ISO8601_NO_MS in UTC, e.g. ``2023-11-14T22:13:20Z``."""
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_timestamp(v: object, where: str) -> int:
    """Seconds since 1970 of an ISO-8601 date/time; no zone means UTC. Fractions are cut off like Java."""
    s = expect_str(v, where)
    try:
        dt = datetime.fromisoformat(s.strip())
    except ValueError:
        raise JsonFormError(f"{where}: not an ISO-8601 date/time: {s!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    millis = (dt - _EPOCH) // timedelta(milliseconds=1)
    seconds = millis // 1000 if millis >= 0 else -(-millis // 1000)
    if not INT4_MIN <= seconds <= INT4_MAX:
        raise JsonFormError(f"{where}: {s!r} is outside the int4 seconds range (1901..2038)")
    return seconds


# --- public keys ("key" format) --------------------------------------------------------------------


def _unsigned(n: int) -> bytes:
    """Big-endian magnitude without a sign byte (Java's ``unsigned(BigInteger.toByteArray())``)."""
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def _java_accepts_rsa(key: RSAPublicKeyData) -> bool:
    """Whether Java's RSA KeyFactory builds this key (else GsonUtility falls back to base64).

    Measured with the 9.2 tools: the modulus length rounded up to whole bytes must be 512..16384 bits,
    3 <= e < n, and e at most 64 bits long when the modulus is longer than 3072 bits.
    """
    modulus_bits = (key.n.bit_length() + 7) & ~7
    if not 512 <= modulus_bits <= 16384 or not 3 <= key.e < key.n:
        return False
    return modulus_bits <= 3072 or key.e.bit_length() <= 64


def public_key_to_json(key: PublicKeyData) -> dict | None:
    """The JWK-like ``key`` value, or None when Java could not write this key in that form."""
    if isinstance(key, RSAPublicKeyData):
        if not _java_accepts_rsa(key):
            return None
        return {"kty": "RSA", "n": b64url(_unsigned(key.n)), "e": b64url(_unsigned(key.e))}
    if isinstance(key, DSAPublicKeyData):
        return {"kty": "DSA", "y": b64url(_unsigned(key.y)), "p": b64url(_unsigned(key.p)),
                "q": b64url(_unsigned(key.q)), "g": b64url(_unsigned(key.g))}
    return None  # DH keys have no JSON form


def public_key_data_to_json(data: bytes) -> dict | None:
    """``key`` form of HS_PUBKEY bytes, or None when they are not an RSA/DSA key Java accepts."""
    try:
        key = decode_public_key(data)
    except DecodeError:
        return None
    return public_key_to_json(key)


def public_key_from_json(obj: object, where: str) -> bytes:
    obj = expect_object(obj, where)
    kty = expect_str(require(obj, "kty", where), f"{where}.kty").upper()

    def number(name: str) -> int:
        raw = b64_decode_lenient(expect_str(require(obj, name, where), f"{where}.{name}"), f"{where}.{name}")
        return int.from_bytes(raw, "big")

    key: PublicKeyData
    if kty == "RSA":
        key = RSAPublicKeyData(e=number("e"), n=number("n"))
    elif kty == "DSA":
        key = DSAPublicKeyData(q=number("q"), p=number("p"), g=number("g"), y=number("y"))
    else:
        raise JsonFormError(f"{where}.kty: unsupported key type {kty!r} (RSA or DSA)")
    return encode_public_key(key)


# --- data ------------------------------------------------------------------------------------------


def typed(fmt: str, value: object) -> dict:
    return {"format": fmt, "value": value}


def binary_to_json(data: bytes) -> dict:
    return typed("base64", base64.b64encode(data).decode("ascii"))


def opaque_data_to_json(data: bytes) -> dict:
    """``string`` when the data looks like text, else ``base64``.

    Java writes ``string`` whenever its permissive UTF-8 check passes and then decodes with replacement
    characters, losing bytes of encoded surrogates or 5/6-byte sequences; such data is written as base64
    here so that the JSON always gives back the stored bytes.
    """
    if looks_like_text(data):
        try:
            return typed("string", data.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    return binary_to_json(data)


def admin_to_json(rec: AdminRecord) -> dict:
    out: dict = {"handle": text_of(rec.handle), "index": rec.index,
                 "permissions": admin_perms_to_json(rec.permissions)}
    if rec.legacy_trailer:
        out["legacyByteLength"] = True
    return out


def admin_from_json(obj: object, where: str) -> AdminRecord:
    obj = expect_object(obj, where)
    handle = utf8(expect_str(require(obj, "handle", where), f"{where}.handle"), f"{where}.handle")
    index = expect_int(require(obj, "index", where), f"{where}.index")
    try:
        perms = admin_perms_from_json(obj.get("permissions"))
    except ValueError as e:
        raise JsonFormError(f"{where}.permissions: {e}") from None
    legacy = obj.get("legacyByteLength")
    legacy_trailer = legacy is not None and expect_bool(legacy, f"{where}.legacyByteLength")
    return AdminRecord(perms, handle, index, legacy_trailer)


def reference_to_json(ref: ValueReference) -> dict:
    return {"handle": text_of(ref.handle), "index": ref.index}


def reference_from_json(obj: object, where: str) -> ValueReference:
    obj = expect_object(obj, where)
    handle = utf8(expect_str(require(obj, "handle", where), f"{where}.handle"), f"{where}.handle")
    return ValueReference(handle, expect_int(require(obj, "index", where), f"{where}.index"))


def references_from_json(obj: object, where: str) -> tuple[ValueReference, ...]:
    return tuple(reference_from_json(r, f"{where}[{i}]") for i, r in enumerate(expect_array(obj, where)))


def data_to_json(value_type: bytes, data: bytes) -> dict:
    """The ``data`` object of a value, format chosen in Java's order (values.md 10)."""
    try:
        if has_type(value_type, HS_ADMIN):
            return typed("admin", admin_to_json(decode_admin(data)))
        if has_type(value_type, HS_VLIST):
            return typed("vlist", [reference_to_json(r) for r in decode_vlist(data)])
        if any(has_type(value_type, t) for t in (HS_SITE, HS_SITE_PREFIX, HS_NA_DELEGATE)):
            # site_json builds on this module's helpers, so it is imported where it is needed.
            from hdlserver.jsonform.site_json import site_to_json
            from hdlserver.wire.site import decode_site

            return typed("site", site_to_json(decode_site(data)))
        if has_type(value_type, HS_PUBKEY):
            key = public_key_data_to_json(data)
            if key is not None:
                return typed("key", key)
    except DecodeError:
        pass  # well-known type with undecodable data: shown like any other data, as Java does
    return opaque_data_to_json(data)


def data_from_json(obj: object, where: str = "data", *, resolve_host_names: bool = True) -> bytes:
    """Value bytes of a ``data`` element: a bare string (UTF-8 text) or ``{"format": .., "value": ..}``.

    Server addresses of ``site`` data may be host names; ``resolve_host_names=False`` refuses them instead of
    making a (blocking) DNS lookup.
    """
    if isinstance(obj, str):
        return utf8(obj, where)
    obj = expect_object(obj, where)
    fmt = expect_str(require(obj, "format", where), f"{where}.format").lower()
    vwhere = f"{where}.value"
    value = obj.get("value")
    if value is None:
        raise JsonFormError(f"{vwhere}: missing")
    if fmt == "string":
        return utf8(expect_str(value, vwhere), vwhere)
    if fmt == "base64":
        return b64_decode_lenient(expect_str(value, vwhere), vwhere)
    if fmt == "hex":
        return hex_decode(expect_str(value, vwhere), vwhere)
    if fmt == "admin":
        return encode_admin(admin_from_json(value, vwhere))
    if fmt == "vlist":
        return encode_vlist(references_from_json(value, vwhere))
    if fmt == "site":
        from hdlserver.jsonform.site_json import site_from_json
        from hdlserver.wire.site import encode_site

        return encode_site(site_from_json(value, vwhere, resolve_host_names=resolve_host_names))
    if fmt == "key":
        return public_key_from_json(value, vwhere)
    raise JsonFormError(f"{where}.format: unknown data format {fmt!r} "
                        "(string, base64, hex, admin, vlist, site or key)")


# --- values ----------------------------------------------------------------------------------------


def permissions_to_json(permissions: int) -> str:
    return "".join("1" if permissions & bit else "0" for bit in _PERMISSION_CHARS)


def permissions_from_json(obj: object, where: str) -> int:
    """``"*"`` or four characters ``adminRead adminWrite publicRead publicWrite``, all four applied."""
    s = expect_str(obj, where)
    if s == "*":
        return PERM_ADMIN_READ | PERM_ADMIN_WRITE | PERM_PUBLIC_READ | PERM_PUBLIC_WRITE
    if len(s) != len(_PERMISSION_CHARS) or any(c not in "01" for c in s):
        raise JsonFormError(f"{where}: expected '*' or 4 characters 0/1 "
                            f"(adminRead adminWrite publicRead publicWrite), got {s!r}")
    return sum(bit for c, bit in zip(s, _PERMISSION_CHARS, strict=True) if c == "1")


def value_to_json(v: HandleValue) -> dict:
    out: dict = {"index": v.index, "type": text_of(v.type), "data": data_to_json(v.type, v.data)}
    if v.permissions & _USUAL_PERMISSIONS != DEFAULT_PERMISSIONS:
        out["permissions"] = permissions_to_json(v.permissions)
    out["ttl"] = v.ttl if v.ttl_type == TTL_RELATIVE else iso_timestamp(v.ttl)
    if v.timestamp != 0:
        out["timestamp"] = iso_timestamp(v.timestamp)
    if v.references:
        out["references"] = [reference_to_json(r) for r in v.references]
    return out


def value_from_json(obj: object, where: str = "value", *, resolve_host_names: bool = True) -> HandleValue:
    obj = expect_object(obj, where)
    index = expect_int(require(obj, "index", where), f"{where}.index")
    vtype = utf8(expect_str(require(obj, "type", where), f"{where}.type"), f"{where}.type")
    data = data_from_json(require(obj, "data", where), f"{where}.data", resolve_host_names=resolve_host_names)
    permissions = DEFAULT_PERMISSIONS
    if obj.get("permissions") is not None:
        permissions = permissions_from_json(obj["permissions"], f"{where}.permissions")
    ttl_type, ttl = TTL_RELATIVE, DEFAULT_TTL
    raw_ttl = obj.get("ttl")
    if isinstance(raw_ttl, str):
        ttl_type, ttl = TTL_ABSOLUTE, parse_iso_timestamp(raw_ttl, f"{where}.ttl")
    elif raw_ttl is not None:
        ttl = expect_int(raw_ttl, f"{where}.ttl")
    timestamp = 0
    if obj.get("timestamp") is not None:
        timestamp = parse_iso_timestamp(obj["timestamp"], f"{where}.timestamp")
    references: tuple[ValueReference, ...] = ()
    if obj.get("references") is not None:
        references = references_from_json(obj["references"], f"{where}.references")
    return HandleValue(index, vtype, data, permissions, ttl_type, ttl, timestamp, references)


def values_to_json(values: Iterable[HandleValue]) -> list[dict]:
    return [value_to_json(v) for v in values]


def values_from_json(obj: object, where: str = "values", *, resolve_host_names: bool = True
                     ) -> tuple[HandleValue, ...]:
    return tuple(value_from_json(v, f"{where}[{i}]", resolve_host_names=resolve_host_names)
                 for i, v in enumerate(expect_array(obj, where)))


def record_to_json(handle: bytes, values: Sequence[HandleValue]) -> dict:
    return {"handle": text_of(handle), "values": values_to_json(values)}


def record_from_json(obj: object, *, resolve_host_names: bool = True
                     ) -> tuple[bytes | None, tuple[HandleValue, ...]]:
    """A list of values, or ``{"handle": .., "values": [..]}`` (handle optional)."""
    if isinstance(obj, list):
        return None, values_from_json(obj, resolve_host_names=resolve_host_names)
    obj = expect_object(obj, "record")
    handle = None
    if obj.get("handle") is not None:
        handle = utf8(expect_str(obj["handle"], "record.handle"), "record.handle")
    return handle, values_from_json(require(obj, "values", "record"), "record.values",
                                    resolve_host_names=resolve_host_names)


def gson_dumps(obj: object, pretty: bool = False) -> str:
    """JSON text as Gson writes it with HTML escaping disabled (pretty: 2-space indent, no final newline).

    Gson also escapes U+2028/U+2029, which Python leaves alone.
    """
    if pretty:
        text = json.dumps(obj, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")

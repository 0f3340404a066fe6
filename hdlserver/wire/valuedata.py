"""Data codecs of the well-known value types (values.md sections 2, 4 and 10).

``decode_value_data``/``encode_value_data`` pick a codec by the value's type with the hasType rule
(values.md 1.4); types without a codec keep their data as opaque bytes, so they round-trip unchanged.
Decoders raise only ``DecodeError``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn
from xml.parsers import expat

from hdlserver.errors import DecodeError
from hdlserver.wire.buffer import Reader, Writer
from hdlserver.wire.pubkey import decode_public_key, encode_public_key
from hdlserver.wire.site import decode_site, encode_site
from hdlserver.wire.values import ValueReference, has_type

# Well-known type names.
HS_ADMIN = b"HS_ADMIN"
HS_VLIST = b"HS_VLIST"
HS_SITE = b"HS_SITE"
HS_SITE_PREFIX = b"HS_SITE.PREFIX"
HS_NA_DELEGATE = b"HS_NA_DELEGATE"
HS_PUBKEY = b"HS_PUBKEY"
HS_SECKEY = b"HS_SECKEY"
HS_SERV = b"HS_SERV"
HS_SERV_PREFIX = b"HS_SERV.PREFIX"
HS_ALIAS = b"HS_ALIAS"
HS_NAMESPACE = b"HS_NAMESPACE"

# HS_ADMIN permission bits (values.md 2.2); bit i is Java's AdminRecord.perms[i].
PERM_ADD_HANDLE = 0x0001
PERM_DELETE_HANDLE = 0x0002
PERM_ADD_DERIVED_PREFIX = 0x0004
PERM_DELETE_DERIVED_PREFIX = 0x0008
PERM_MODIFY_VALUE = 0x0010
PERM_REMOVE_VALUE = 0x0020
PERM_ADD_VALUE = 0x0040
PERM_MODIFY_ADMIN = 0x0080
PERM_REMOVE_ADMIN = 0x0100
PERM_ADD_ADMIN = 0x0200
PERM_READ_VALUE = 0x0400
PERM_LIST_HANDLES = 0x0800
PERM_ADD_NA = PERM_ADD_DERIVED_PREFIX
PERM_DELETE_NA = PERM_DELETE_DERIVED_PREFIX
ALL_PERMISSIONS = 0x0FFF
ADMIN_PERMISSION_COUNT = 12

LEGACY_ADMIN_TRAILER = b"\x00\x00"


# --- HS_ADMIN -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminRecord:
    """An HS_ADMIN entry: ``handle``/``index`` may do what ``permissions`` allows.

    ``permissions`` keeps all 16 bits of the record so that unusual records re-encode byte-exact;
    only the low 12 bits mean anything. ``legacy_trailer`` marks records written by Handle <= 7.3,
    which carry 2 extra bytes.
    """

    permissions: int
    handle: bytes
    index: int
    legacy_trailer: bool = False

    def has(self, permission: int) -> bool:
        return self.permissions & permission == permission


def decode_admin(data: bytes) -> AdminRecord:
    r = Reader(data)
    permissions = r.get_uint2()
    handle = r.get_utf8()
    index = r.get_int4()
    # Java takes exactly 2 more bytes as the legacy trailer (whatever their value) and rejects other lengths.
    legacy = r.remaining == len(LEGACY_ADMIN_TRAILER)
    if legacy:
        r.get_raw(len(LEGACY_ADMIN_TRAILER))
    r.expect_end("HS_ADMIN record")
    return AdminRecord(permissions, handle, index, legacy)


def encode_admin(rec: AdminRecord) -> bytes:
    w = Writer().put_int2(rec.permissions).put_utf8(rec.handle).put_int4(rec.index)
    if rec.legacy_trailer:
        w.put_raw(LEGACY_ADMIN_TRAILER)
    return w.getvalue()


def admin_perms_to_batch(perms: int) -> str:
    """GenericBatch ADMIN flags: 12 characters, bit 0 (ADD_HANDLE) first (values.md 2.3)."""
    return "".join("1" if perms >> i & 1 else "0" for i in range(ADMIN_PERMISSION_COUNT))


def admin_perms_from_batch(s: str) -> int:
    if len(s) != ADMIN_PERMISSION_COUNT or any(c not in "01" for c in s):
        raise ValueError(f"admin permissions must be 12 characters 0/1 (bit 0 first), got {s!r}")
    return sum(1 << i for i, c in enumerate(s) if c == "1")


def admin_perms_to_json(perms: int) -> str:
    """REST JSON form: 12 characters, bit 11 (LIST_HANDLES) first, i.e. the binary number."""
    return format(perms & ALL_PERMISSIONS, "012b")


def _json_truthy(v: object) -> bool:
    """Java GsonUtility's truthiness of a permissions array element."""
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v != ""
    if isinstance(v, int | float):
        return not (v == 0 or (isinstance(v, float) and math.isnan(v)))
    return True  # objects and arrays


def admin_perms_from_json(obj: object) -> int:
    """Every permissions form Java's GsonUtility reads (values.md 2.3).

    A string is a binary number (the last character is bit 0; Java reads the last 12 characters),
    ``"*"``/``true`` mean all, ``false``/``null`` none, a number gives its binary digits, an array lists
    12 truthy values in bit order. Raises ValueError for anything else.
    """
    if obj is None or obj is False:
        return 0
    if obj is True or obj == "*":
        return ALL_PERMISSIONS
    if isinstance(obj, str):
        if not obj or any(c not in "01" for c in obj):
            raise ValueError(f"admin permissions string must be binary digits or '*', got {obj!r}")
        return int(obj, 2) & ALL_PERMISSIONS
    if isinstance(obj, int):
        return obj & ALL_PERMISSIONS
    if isinstance(obj, list):
        return sum(1 << i for i, v in enumerate(obj[:ADMIN_PERMISSION_COUNT]) if _json_truthy(v))
    raise ValueError("admin permissions must be a string, number, boolean, null or array, "
                     f"got {type(obj).__name__}")


# --- HS_VLIST and handle references ----------------------------------------------------------------


def read_reference(r: Reader) -> ValueReference:
    return ValueReference(r.get_utf8(), r.get_int4())


def decode_vlist(data: bytes) -> tuple[ValueReference, ...]:
    r = Reader(data)
    n = r.get_count(8, "HS_VLIST reference")
    refs = tuple(read_reference(r) for _ in range(n))
    r.expect_end("HS_VLIST")
    return refs


def encode_vlist(refs: Sequence[ValueReference]) -> bytes:
    w = Writer().put_int4(len(refs))
    for ref in refs:
        w.put_utf8(ref.handle).put_int4(ref.index)
    return w.getvalue()


def decode_handle_ref(data: bytes) -> bytes:
    """HS_SERV, HS_SERV.PREFIX and HS_ALIAS data: a handle as UTF-8 text."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"handle reference is not valid UTF-8: {e.reason} at byte {e.start}") from None
    return data


def encode_handle_ref(handle: bytes | str) -> bytes:
    return handle.encode("utf-8") if isinstance(handle, str) else handle


def parse_value_reference_text(text: str) -> ValueReference:
    """``index:handle`` (values.md 1.5); without a leading all-digit ``index:`` the index is 0."""
    head, sep, rest = text.partition(":")
    if sep and head.isascii() and head.isdigit():
        index = int(head)
        if index > 0x7FFFFFFF:
            raise ValueError(f"index {head} of {text!r} does not fit in an int4")
        handle = rest
    else:
        index, handle = 0, text
    if not handle:
        raise ValueError(f"no handle in value reference {text!r}")
    return ValueReference(handle.encode("utf-8"), index)


def format_value_reference(ref: ValueReference) -> str:
    return f"{ref.index}:{ref.handle.decode('utf-8', 'replace')}"


# --- HS_NAMESPACE ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    """The parts of an HS_NAMESPACE XML document the server uses (values.md 4.1).

    ``xml`` is the value data unchanged (Java has no encoder; the data is what gets stored).
    Element names are matched case-sensitively, as Java does.
    """

    xml: bytes
    contact: str | None = None
    status: str = "active"
    statusmsg: str | None = None
    template_delimiter: str | None = None
    template_ref: str | None = None
    templates: tuple[str, ...] = ()
    locs: tuple[str, ...] = ()
    no_nslocs: bool = False

    @property
    def inactive(self) -> bool:
        return self.status.strip().lower() == "inactive"


MAX_XML_DEPTH = 100


def _reject_dtd(*_args: object) -> NoReturn:
    # No DOCTYPE means no entity declarations, hence no entity-expansion attacks.
    raise DecodeError("HS_NAMESPACE XML must not contain a DOCTYPE")


def _parse_xml(data: bytes) -> ET.Element:
    # pyexpat feeding an ElementTree builder: ElementTree's own parser gives no hook to refuse a DOCTYPE.
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    depth = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:  # the tree is serialised recursively later (template text)
            raise DecodeError(f"HS_NAMESPACE XML nests deeper than {MAX_XML_DEPTH} elements")
        builder.start(tag, attrs)

    def end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(tag)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _reject_dtd
    parser.EntityDeclHandler = _reject_dtd
    try:
        parser.Parse(data, True)
        return builder.close()
    except expat.ExpatError as e:
        raise DecodeError(f"malformed HS_NAMESPACE XML: {e}") from None


def _leaf_text(el: ET.Element) -> str | None:
    """Java's XTag string value: the text of an element without sub-elements."""
    if len(el):
        return None
    return el.text or ""


def parse_namespace(data: bytes) -> NamespaceInfo:
    root = _parse_xml(data)
    contact = root.find("contact")
    status = root.find("status")
    statusmsg = root.find("statusmsg")
    templates = root.findall("template")
    first_template = templates[0] if templates else None
    locs = root.findall("locs")
    template_text = []
    for t in templates:
        t.tail = None  # serialise the element alone, not the text after it
        template_text.append(ET.tostring(t, encoding="unicode"))
    status_text = _leaf_text(status) if status is not None else "active"
    return NamespaceInfo(
        xml=data,
        contact=_leaf_text(contact) if contact is not None else None,
        status="active" if status_text is None else status_text,
        statusmsg=_leaf_text(statusmsg) if statusmsg is not None else None,
        template_delimiter=first_template.get("delimiter") if first_template is not None else None,
        template_ref=first_template.get("ref") if first_template is not None else None,
        templates=tuple(template_text),
        locs=tuple(text for el in locs if (text := _leaf_text(el))),
        no_nslocs=any(el.get("no_nslocs", "").strip().lower() == "true" for el in locs),
    )


def encode_namespace(info: NamespaceInfo) -> bytes:
    return info.xml


# --- "looks like text" (values.md 10) --------------------------------------------------------------

def _utf8_lead(b: int) -> tuple[int, int] | None:
    """(continuation bytes, bits the first continuation byte needs to not be overlong) of a lead byte."""
    if b & 0xE0 == 0xC0:
        return (1, 0) if b & 0x1E else None  # C0/C1 are always overlong
    if b & 0xF0 == 0xE0:
        return 2, 0 if b & 0x0F else 0x20
    if b & 0xF8 == 0xF0:
        return 3, 0 if b & 0x07 else 0x30
    if b & 0xFC == 0xF8:
        return 4, 0 if b & 0x03 else 0x38
    if b & 0xFE == 0xFC:
        return 5, 0 if b & 0x01 else 0x3C
    return None


def java_valid_utf8(data: bytes) -> bool:
    """Java Util.isValidString: UTF-8 structure without overlong forms; unlike strict UTF-8 it
    accepts encoded surrogates, code points above U+10FFFF and 5/6-byte sequences."""
    need = 0
    mask = 0
    for b in data:
        if need:
            if b & 0xC0 != 0x80:
                return False
            if mask:
                if not b & mask:
                    return False
                mask = 0
            need -= 1
        elif b >= 0x80:
            lead = _utf8_lead(b)
            if lead is None:
                return False
            need, mask = lead
    return need == 0


_BINARY_BYTES = frozenset([*range(0x00, 0x09), *range(0x14, 0x20), 0x7F])


def looks_like_text(data: bytes) -> bool:
    """Java's ``!Util.looksLikeBinary``: permissively valid UTF-8 and no control byte other than
    0x09-0x13 (Java counts 0x09-0x13 as whitespace)."""
    return java_valid_utf8(data) and _BINARY_BYTES.isdisjoint(data)


# --- the registry ----------------------------------------------------------------------------------


def _decode_seckey(data: bytes) -> bytes:
    return data


@dataclass(frozen=True, slots=True)
class ValueDataCodec:
    type: bytes
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]


# Order matters only for readability: the hasType families do not overlap (HS_SITE.PREFIX is an
# HS_SITE subtype and uses the same codec).
VALUE_DATA_CODECS: tuple[ValueDataCodec, ...] = (
    ValueDataCodec(HS_ADMIN, decode_admin, encode_admin),
    ValueDataCodec(HS_VLIST, decode_vlist, encode_vlist),
    ValueDataCodec(HS_SITE, decode_site, encode_site),
    ValueDataCodec(HS_NA_DELEGATE, decode_site, encode_site),
    ValueDataCodec(HS_PUBKEY, decode_public_key, encode_public_key),
    ValueDataCodec(HS_SECKEY, _decode_seckey, bytes),
    ValueDataCodec(HS_SERV, decode_handle_ref, encode_handle_ref),
    ValueDataCodec(HS_ALIAS, decode_handle_ref, encode_handle_ref),
    ValueDataCodec(HS_NAMESPACE, parse_namespace, encode_namespace),
)


def codec_for(value_type: bytes) -> ValueDataCodec | None:
    for codec in VALUE_DATA_CODECS:
        if has_type(value_type, codec.type):
            return codec
    return None


def decode_value_data(type: bytes, data: bytes) -> object:
    """The decoded data of a value of ``type``: AdminRecord, tuple of ValueReference, SiteInfo,
    PublicKeyData, NamespaceInfo or bytes (HS_SECKEY, handle references and unknown types).

    Raises DecodeError when data of a well-known type does not decode.
    """
    codec = codec_for(type)
    return data if codec is None else codec.decode(data)


def encode_value_data(type: bytes, obj: object) -> bytes:
    """Inverse of ``decode_value_data``; byte-exact for data that Java wrote (public keys and site
    records are re-encoded in Java's canonical form)."""
    codec = codec_for(type)
    if codec is None:
        if not isinstance(obj, bytes):
            raise TypeError(f"data of type {type!r} must be bytes, got {obj.__class__.__name__}")
        return obj
    return codec.encode(obj)

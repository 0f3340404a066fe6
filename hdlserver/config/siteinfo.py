"""siteinfo.bin / siteinfo.json in a server directory (values.md 3.4 and 9).

As in Handle.Net, ``siteinfo.bin`` wins when both exist. Every failure is a ConfigError naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from hdlserver.errors import ConfigError, DecodeError
from hdlserver.jsonform.site_json import site_from_json, site_to_json
from hdlserver.jsonform.values_json import JsonFormError, gson_dumps
from hdlserver.wire.site import SiteInfo, decode_site, encode_site

SITEINFO_BIN = "siteinfo.bin"
SITEINFO_JSON = "siteinfo.json"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror or e}", str(path)) from None


def site_info_from_bin(data: bytes, path: Path) -> SiteInfo:
    try:
        return decode_site(data)
    except DecodeError as e:
        raise ConfigError(f"not a valid binary site record: {e.message}", str(path)) from None


def site_info_from_json_text(data: bytes, path: Path) -> SiteInfo:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e.reason} at byte {e.start}", str(path)) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"invalid JSON: {e.msg} (column {e.colno})", str(path), e.lineno) from None
    try:
        return site_from_json(obj)
    except JsonFormError as e:
        raise ConfigError(f"invalid site information: {e}", str(path)) from None


def read_site_info_file(path: Path) -> SiteInfo:
    """A site record file in either form: JSON if its first non-blank character is '{', else binary
    (binary records start with the int2 format version 0x0001, never with '{')."""
    data = _read_bytes(path)
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return site_info_from_json_text(data, path)
    return site_info_from_bin(data, path)


def load_site_info(server_dir: Path, file_name: str | None = None) -> SiteInfo:
    """The site record of a server directory: ``file_name`` if given, else siteinfo.bin, else
    siteinfo.json."""
    if file_name is not None:
        return read_site_info_file(server_dir / file_name)
    bin_path = server_dir / SITEINFO_BIN
    if bin_path.exists():
        return site_info_from_bin(_read_bytes(bin_path), bin_path)
    json_path = server_dir / SITEINFO_JSON
    if json_path.exists():
        return site_info_from_json_text(_read_bytes(json_path), json_path)
    raise ConfigError(f"neither {SITEINFO_BIN} nor {SITEINFO_JSON} exists", str(server_dir))


def site_info_json_text(site: SiteInfo) -> str:
    """siteinfo.json as Java's tools write it: Gson pretty printing, 2-space indent, no final newline."""
    return gson_dumps(site_to_json(site), pretty=True)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write: {e.strerror or e}", str(path)) from None


def save_site_info_json(path: Path, site: SiteInfo) -> None:
    _write_atomically(Path(path), site_info_json_text(site).encode("utf-8"))


def save_site_info_bin(path: Path, site: SiteInfo) -> None:
    _write_atomically(Path(path), encode_site(site))

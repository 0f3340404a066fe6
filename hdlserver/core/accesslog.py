"""The Handle.Net access-log line (server.md 12.1)."""

from __future__ import annotations

import time

_ESCAPES = {ord("%"): "%25", ord(" "): "%20", ord("\n"): "%0A", ord("\r"): "%0D", ord("&"): "%26",
            ord("?"): "%3F", ord("#"): "%23", ord('"'): "%22"}


def escape_field(text: str) -> str:
    return text.translate(_ESCAPES)


def format_log_time(when: float) -> str:
    """Local time ``yyyy-MM-dd HH:mm:ss.SSS`` followed by ``+hhmm``/``-hhmm``, or ``Z`` for UTC."""
    local = time.localtime(when)
    millis = int((when % 1) * 1000)
    offset = local.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        hours, minutes = divmod(abs(offset) // 60, 60)
        zone = f"{sign}{hours:02d}{minutes:02d}"
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + f".{millis:03d}{zone}"


def format_access_line(client: str, transport: str, suggested: tuple[int, int], when: float, opcode: int,
                       response_code: int, millis: int, identity: str, handle: bytes) -> str:
    admin = f"adm={escape_field(identity)}" if identity else ""
    handle_text = escape_field(handle.decode("utf-8", "replace"))
    return (f'{client} {transport}:HDL({suggested[0]}.{suggested[1]}) "{format_log_time(when)}" '
            f"{opcode} {response_code} {millis}ms {admin} {handle_text}")

"""The Handle.Net access-log line (server.md 12.1)."""

from __future__ import annotations

import time

_ESCAPES = {ord("%"): "%25", ord(" "): "%20", ord("\n"): "%0A", ord("\r"): "%0D", ord("&"): "%26",
            ord("?"): "%3F", ord("#"): "%23", ord('"'): "%22"}


def escape_field(text: str) -> str:
    return text.translate(_ESCAPES)


_last_second: tuple[int, str, str] = (-1, "", "")  # (second, "yyyy-MM-dd HH:mm:ss", zone): lines come in bursts


def format_log_time(when: float) -> str:
    """Local time ``yyyy-MM-dd HH:mm:ss.SSS`` followed by ``+hhmm``/``-hhmm``, or ``Z`` for UTC."""
    global _last_second
    second = int(when)
    cached_second, stamp, zone = _last_second
    if second != cached_second:
        local = time.localtime(second)
        offset = local.tm_gmtoff or 0
        if offset == 0:
            zone = "Z"
        else:
            sign = "+" if offset > 0 else "-"
            hours, minutes = divmod(abs(offset) // 60, 60)
            zone = f"{sign}{hours:02d}{minutes:02d}"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", local)
        _last_second = (second, stamp, zone)
    return f"{stamp}.{int((when % 1) * 1000):03d}{zone}"


# The fields of format_access_line, in its order: what a transport hands to the log writer.
AccessEntry = tuple[str, str, tuple[int, int], float, int, int, int, str, bytes]


def format_access_line(client: str, transport: str, suggested: tuple[int, int], when: float, opcode: int,
                       response_code: int, millis: int, identity: str, handle: bytes) -> str:
    admin = f"adm={escape_field(identity)}" if identity else ""
    handle_text = escape_field(handle.decode("utf-8", "replace"))
    return (f'{client} {transport}:HDL({suggested[0]}.{suggested[1]}) "{format_log_time(when)}" '
            f"{opcode} {response_code} {millis}ms {admin} {handle_text}")

"""Whole hot-path answers kept per request, so that a repeated request is answered by writing two fields.

A hot-path answer (core/resolve.py ``fast_answer``) is a function of the request's bytes except its
request id, of the handle's record, of the homed prefixes, of this server's site record, and of the
second it is sent in (its expiration field). A template is such an answer with the request id and the
expiration cut out, kept with the LMDB snapshot ids that vouch for the rest: the id of the record's
partition when the record (or its absence) was read, and the homed-prefix version when the prefix was
found served. While both ids are unchanged nothing was committed there by any process (the reasoning of
store/record_cache.py), so the answer is byte for byte the one ``fast_answer`` would build: only the
request id and the expiration are written in. The site record does not change while the server runs.

Keys are the request bytes without the request id and the request's expiration; the table is bounded
in entries and bytes, oldest insertions going first, so a client sending endless distinct requests only
churns it.
"""

from __future__ import annotations

from typing import NamedTuple

from hdlserver.bounded_cache import BoundedCache

DEFAULT_MAX_ENTRIES = 16_384
DEFAULT_MAX_BYTES = 32 << 20
MAX_TEMPLATE_BYTES = 4096  # larger answers (many values) are built each time
_ENTRY_OVERHEAD = 200
NO_PARTITION = -1  # a template that depends on no record and no homed prefix (site info)

# Where the two per-answer fields sit in an answer: the envelope's request id, the header's expiration.
REQUEST_ID_AT = slice(8, 12)
EXPIRATION_AT = slice(36, 40)


class AnswerTemplate(NamedTuple):
    before_id: bytes  # answer[:8]
    between: bytes  # answer[12:36]
    after_expiration: bytes  # answer[40:]
    partition: int  # the record's partition, or NO_PARTITION
    snapshot: int  # that partition's LMDB snapshot id when the record was read
    homed_version: int  # the homed-prefix version when the prefix was found served
    opcode: int
    response_code: int
    handle: bytes
    suggested: tuple[int, int]

    def size(self) -> int:
        return _ENTRY_OVERHEAD + len(self.before_id) + len(self.between) + len(self.after_expiration)


def template_key(request: bytes) -> bytes:
    """The request without its request id and its expiration (Java clients send now + 12 h): the answer
    depends on neither."""
    return request[:8] + request[12:36] + request[40:]


def _entry_size(key: bytes, template: AnswerTemplate) -> int:
    return len(key) + template.size()


class AnswerTemplates(BoundedCache[bytes, AnswerTemplate]):
    """request key -> AnswerTemplate, at most ``max_entries`` entries and about ``max_bytes`` bytes; answers
    larger than ``MAX_TEMPLATE_BYTES`` are not kept."""

    __slots__ = ()

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(_entry_size, max_entries, max_bytes)

    def put(self, key: bytes, value: AnswerTemplate, max_size: int | None = None) -> None:
        limit = _ENTRY_OVERHEAD + MAX_TEMPLATE_BYTES + len(key)
        super().put(key, value, limit if max_size is None else min(max_size, limit))

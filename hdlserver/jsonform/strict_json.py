"""JSON parsing that refuses an object with the same key twice: in a handle record a second "handle" or
"values" would otherwise silently replace the first, and an import would store something else than the
file says."""

from __future__ import annotations

import json
from typing import Any


class DuplicateKeyError(ValueError):
    """A JSON object names a key twice; the message names the key."""


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"key {key!r} appears twice in one JSON object")
        out[key] = value
    return out


def loads_strict(text: str) -> Any:
    """``json.loads`` that raises DuplicateKeyError for a repeated key (and JSONDecodeError as usual)."""
    return json.loads(text, object_pairs_hook=_reject_duplicate_keys)

"""Request parameters of the REST API as the Java servlets read them (server.md 14).

Parameters come from the query string, from a form-encoded POST body, and -- where the Java servlet wraps
the request -- from a JSON object body: ``{"index": [1, 2], "type": "URL"}``. Query parameters win for a
single value; for repeated parameters the query values come first, then the JSON ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

from hdlserver.http.messages import HttpRequest

FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"
_JAVA_INT = re.compile(r"[+-]?[0-9]{1,10}")
INT4_MIN, INT4_MAX = -(2**31), 2**31 - 1


class ParameterError(ValueError):
    """A parameter or parameter body the API cannot use; answered with RC 4 and this message."""


def has_json_entity(request: HttpRequest) -> bool:
    return request.media_type == JSON_TYPE


def parse_java_int(text: str, name: str) -> int:
    """``Integer.parseInt``: optional sign and decimal digits, within int4."""
    if _JAVA_INT.fullmatch(text):
        value = int(text)
        if INT4_MIN <= value <= INT4_MAX:
            return value
    raise ParameterError(f"Invalid integer for parameter {name}: {text!r}")


def _json_text(value: object, name: str) -> str:
    """A JSON parameter value as Gson's ``getAsString`` gives it (numbers keep their literal text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    raise ParameterError(f"Parameter {name} in the JSON body must be a string, number or boolean")


def parse_json_parameters(body: bytes) -> dict[str, object] | None:
    """The JSON object of a parameter body; None for an empty body."""
    if not body:
        return None
    try:
        # numbers and NaN/Infinity keep their literal text, as Gson's getAsString gives them
        value = json.loads(body.decode("utf-8"), parse_int=str, parse_float=str, parse_constant=str)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParameterError(f"Invalid JSON in request body: {exc}") from None
    if not isinstance(value, dict):
        raise ParameterError("Expected JSON object")
    return value


class Params:
    def __init__(self, pairs: Sequence[tuple[str, str]], json_object: dict[str, object] | None = None) -> None:
        self.pairs = list(pairs)
        self.json_object = json_object

    @classmethod
    def from_request(cls, request: HttpRequest, *, json_body: bool = False) -> Params:
        """Query (+ form body of a POST) parameters; with ``json_body``, also those of a JSON object body.

        Raises ParameterError for a JSON body that is not a JSON object.
        """
        pairs = request.query_pairs()
        if request.method == "POST" and request.media_type == FORM_TYPE:
            pairs += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        json_object = parse_json_parameters(request.body) if json_body and has_json_entity(request) else None
        return cls(pairs, json_object)

    def get(self, name: str) -> str | None:
        for key, value in self.pairs:
            if key == name:
                return value
        if self.json_object is None or self.json_object.get(name) is None:
            return None
        value = self.json_object[name]
        if isinstance(value, list):
            return _json_text(value[0], name) if value else None
        return _json_text(value, name)

    def values(self, name: str) -> list[str] | None:
        """Every value of a repeatable parameter; None when there is none."""
        found = [value for key, value in self.pairs if key == name]
        if self.json_object is not None and self.json_object.get(name) is not None:
            value = self.json_object[name]
            found += [_json_text(v, name) for v in value] if isinstance(value, list) else [_json_text(value, name)]
        return found or None

    def flag(self, name: str) -> bool:
        """True when present and empty, ``yes`` or ``true`` (any case)."""
        value = self.get(name)
        return value is not None and value.lower() in ("", "yes", "true")

    def java_boolean(self, name: str) -> bool | None:
        """``Boolean.parseBoolean`` of the parameter (only ``true`` in any case is true); None if absent."""
        value = self.get(name)
        return None if value is None else value.lower() == "true"

    def integer(self, name: str, default: int) -> int:
        value = self.get(name)
        return default if value is None else parse_java_int(value, name)

    def indexes(self) -> tuple[int, ...] | None:
        values = self.values("index")
        return None if values is None else tuple(parse_java_int(v, "index") for v in values)

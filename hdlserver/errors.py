"""The project's exception hierarchy: every error that reaches the wire knows its response code."""

from __future__ import annotations

from hdlserver.wire.codes import ResponseCode


class HandleError(Exception):
    """Base class of all hdlserver errors."""


class ProtocolError(HandleError):
    """A request that must be answered with a Handle error response.

    ``response_code`` is what the server puts in the header; ``message`` becomes the error body text.
    """

    def __init__(self, response_code: int, message: str = "") -> None:
        super().__init__(message or ResponseCode.name_of(response_code))
        self.response_code = int(response_code)
        self.message = message


class DecodeError(ProtocolError):
    """Bytes that are not a valid encoding of what the decoder was asked to read.

    The only exception the decoders raise for bad input (the decoder invariant).
    """

    def __init__(self, message: str, response_code: int = ResponseCode.PROTOCOL_ERROR) -> None:
        super().__init__(response_code, message)


class ConfigError(HandleError):
    """A configuration file or server directory that cannot be used; names the file, line and reason."""

    def __init__(self, reason: str, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + reason)
        self.path = path
        self.line = line
        self.reason = reason


class StorageError(HandleError):
    """The handle store failed; the server answers RC 2 (or RC 7 when read-only)."""


class KeyFileError(HandleError):
    """A key file that cannot be read: bad format, wrong passphrase or unsupported algorithm."""

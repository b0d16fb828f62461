"""Domain errors. They say what went wrong, never how a transport reports it:
``web.errors.STATUS`` maps each class to an HTTP status, the CLI prints the message."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


class InvalidInput(DomainError):
    """The request itself is wrong: a field, a parameter, a body."""


class Unauthenticated(DomainError):
    """No credentials, or credentials that identify no active key."""


class Forbidden(DomainError):
    """A valid key that may not do this (scope, or a customer it is not bound to)."""


class NotFound(DomainError):
    """The named thing does not exist."""


class StateConflict(DomainError):
    """Valid, but not now or not any more (open period, later invoice exists)."""


class TooLarge(DomainError):
    """Over a configured size limit; nothing was stored."""


class UnsupportedMedia(DomainError):
    """A body in a media type the operation does not take."""

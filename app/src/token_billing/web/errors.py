"""The one table from domain errors to HTTP statuses, and the handlers that use it."""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from .. import metrics
from ..db import is_db_error, is_unavailable_error
from ..errors import (
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    StateConflict,
    TooLarge,
    Unauthenticated,
    UnsupportedMedia,
)
from .context import json_response, services

log = logging.getLogger("token_billing.http")

STATUS: dict[type[DomainError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    StateConflict: 409,
    TooLarge: 413,
    UnsupportedMedia: 415,
}
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: object
) -> Response:
    return json_response({"error": {"code": code, "message": message, **extra}}, status, headers)


def status_of(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        status = status_of(exc)
        headers = {"WWW-Authenticate": 'Bearer realm="token-billing"'} if status == 401 else None
        return error_response(status, exc.code, exc.message, headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"request body larger than {services().settings.max_body_bytes} bytes"
        return error_response(status, _HTTP_CODES.get(status, "http_error"), message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if is_unavailable_error(exc):
            metrics.DB_ERRORS.labels("unavailable").inc()
            log.warning("database unavailable", extra={"error": type(exc).__name__})
            return error_response(
                503,
                "database_unavailable",
                "database unavailable, nothing was stored; retry later",
                {"Retry-After": str(services().settings.retry_after_seconds)},
            )
        if is_db_error(exc):
            metrics.DB_ERRORS.labels("other").inc()
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")

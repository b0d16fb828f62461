"""Health, readiness, metrics and the API description: no key needed."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import text

from .. import __version__, metrics
from ..db import is_db_error, is_unavailable_error
from ..migrate import schema_status
from ..openapi import openapi_document
from .context import json_response, services

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok", "version": __version__})


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            st = schema_status(conn)
    except Exception as exc:
        if not is_unavailable_error(exc) and not is_db_error(exc):
            raise
        metrics.DB_ERRORS.labels("unavailable").inc()
        return json_response(
            {"status": "unavailable", "version": __version__, "reason": "database unreachable"},
            503,
            {"Retry-After": str(svc.settings.retry_after_seconds)},
        )
    body = {
        "status": "ready" if st.ok else "not_ready",
        "version": __version__,
        "schema": {"current": st.current, "expected": st.expected, "message": st.message},
    }
    return json_response(body, 200 if st.ok else 503)


@bp.get("/metrics")
def metrics_endpoint() -> Response:
    data, content_type = metrics.render()
    return Response(data, mimetype=None, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document())

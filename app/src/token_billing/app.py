"""Flask application factory and HTTP routes."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from flask import Flask, Response, g, request
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from . import __version__
from .config import Settings, load_settings
from .db import is_unavailable_error, make_engine

log = logging.getLogger("token_billing.http")
F = TypeVar("F", bound=Callable[..., Any])


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str)
    return Response(body, status=status, mimetype="application/json", headers=headers)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return json_response({"error": {"code": code, "message": message, **extra}}, status, headers)


def _prepare_multiprocess_env(settings: Settings) -> None:
    # prometheus_client decides between in-process and mmap-file values at import time
    if settings.prometheus_multiproc_dir and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(settings.prometheus_multiproc_dir, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = settings.prometheus_multiproc_dir


def _parse_time_param(name: str, required: bool = True) -> datetime | None:
    from .validation import parse_timestamp

    raw = request.args.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, "missing_parameter", f"query parameter {name} is required")
        return None
    value = parse_timestamp(raw)
    if value is None:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be an RFC 3339 timestamp, e.g. 2025-01-01T00:00:00Z",
        )
    return value


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Flask:
    settings = settings or load_settings()
    _prepare_multiprocess_env(settings)
    from . import auth, invoices, metrics, pricing, queries
    from .ingest import Ingestor
    from .logutil import setup_logging
    from .migrate import schema_status
    from .openapi import openapi_document
    from .schema import customers

    setup_logging(settings.log_level, settings.log_format)
    engine = engine or make_engine(settings)
    ingestor = Ingestor(engine, settings)
    currency = settings.currency
    retry_after = str(settings.retry_after_seconds)
    auth_cache = auth.AuthCache(settings.auth_cache_seconds)

    app = Flask("token_billing")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["token_billing"] = {"engine": engine, "settings": settings, "ingestor": ingestor}

    # -- auth ----------------------------------------------------------------------------
    def requires(scope: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                header = request.headers.get("Authorization")
                key = auth_cache.get(header)
                if key is None:
                    with engine.connect() as conn:
                        key = auth.authenticate(conn, header)
                    auth_cache.put(header, key)  # type: ignore[arg-type]
                if not key.allows(scope):
                    raise auth.AuthError(
                        403,
                        "insufficient_scope",
                        f"API key lacks the '{scope}' scope required for "
                        f"{request.method} {request.path} (key scopes: "
                        f"{','.join(sorted(key.scopes))})",
                    )
                g.api_key_id = key.key_id
                return fn(*args, **kwargs)

            wrapper.required_scope = scope  # type: ignore[attr-defined]
            return wrapper  # type: ignore[return-value]

        return deco

    # -- request bookkeeping -------------------------------------------------------------
    @app.before_request
    def _start_timer() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    def _finish(resp: Response) -> Response:
        elapsed = time.perf_counter() - g.get("t0", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.REQUEST_LATENCY.labels(request.method, route, str(resp.status_code)).observe(
            elapsed
        )
        resp.headers["X-Token-Billing-Version"] = __version__
        if route not in ("/metrics", "/healthz", "/readyz") or resp.status_code >= 400:
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "path": request.path,
                    "status": resp.status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "api_key_id": g.get("api_key_id"),
                    "remote": request.remote_addr,
                },
            )
        return resp

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.errorhandler(auth.AuthError)
    def _auth_error(exc: auth.AuthError) -> Response:
        headers = (
            {"WWW-Authenticate": 'Bearer realm="token-billing"'} if exc.status == 401 else None
        )
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.errorhandler(invoices.InvoiceError)
    def _invoice_error(exc: invoices.InvoiceError) -> Response:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
            415: "unsupported_media_type",
        }.get(exc.code or 500, "http_error")
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body larger than {settings.max_body_bytes} bytes"
        return error_response(exc.code or 500, code, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if is_unavailable_error(exc):
            metrics.DB_ERRORS.labels("unavailable").inc()
            log.warning("database unavailable", extra={"error": type(exc).__name__})
            return error_response(
                503,
                "database_unavailable",
                "database unavailable, nothing was stored; retry later",
                {"Retry-After": retry_after},
            )
        if _is_db_error(exc):
            metrics.DB_ERRORS.labels("other").inc()
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")

    # -- ops endpoints -------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok", "version": __version__})

    @app.get("/readyz")
    def readyz() -> Response:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                st = schema_status(conn)
        except Exception as exc:
            if not is_unavailable_error(exc) and not _is_db_error(exc):
                raise
            metrics.DB_ERRORS.labels("unavailable").inc()
            return json_response(
                {"status": "unavailable", "version": __version__, "reason": "database unreachable"},
                503,
                {"Retry-After": retry_after},
            )
        body = {
            "status": "ready" if st.ok else "not_ready",
            "version": __version__,
            "schema": {"current": st.current, "expected": st.expected, "message": st.message},
        }
        return json_response(body, 200 if st.ok else 503)

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        data, content_type = metrics.render()
        return Response(data, mimetype=None, content_type=content_type)

    @app.get("/openapi.json")
    def openapi() -> Response:
        return json_response(openapi_document())

    # -- ingest --------------------------------------------------------------------------
    @app.post("/v1/usage/events")
    @requires("ingest")
    def ingest_events() -> Response:
        if request.mimetype != "application/json":
            raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
        body = request.get_data(cache=False)
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ApiError(
                400, "malformed_json", f"request body is not valid JSON: {exc}"
            ) from None
        if isinstance(payload, list):
            items = payload
        elif isinstance(payload, dict):
            if "events" in payload:
                items = payload["events"]
                if not isinstance(items, list):
                    raise ApiError(400, "invalid_body", "'events' must be an array of events")
            else:
                items = [payload]
        else:
            raise ApiError(
                400,
                "invalid_body",
                'body must be an event object, an array of events or {"events": [...]}',
            )
        if not items:
            raise ApiError(400, "empty_batch", "batch contains no events")
        if len(items) > settings.max_batch_size:
            raise ApiError(
                413,
                "batch_too_large",
                f"batch has {len(items)} events, the maximum is {settings.max_batch_size}; "
                "nothing was stored",
            )
        out = ingestor.ingest(items)
        if out.rejected == 0:
            status = 200
        elif out.accepted + out.duplicates == 0:
            status = 422
        else:
            status = 207
        return json_response(
            {
                "accepted": out.accepted,
                "duplicates": out.duplicates,
                "rejected": out.rejected,
                "results": out.results,
            },
            status,
        )

    # -- usage queries -------------------------------------------------------------------
    def _usage_args() -> dict[str, Any]:
        start = _parse_time_param("start")
        end = _parse_time_param("end")
        assert start is not None and end is not None
        for name, value in (("start", start), ("end", end)):
            if value.minute or value.second or value.microsecond:
                raise ApiError(
                    400,
                    "invalid_parameter",
                    f"{name} must be on a whole hour (usage is rolled up hourly)",
                )
        if end <= start:
            raise ApiError(400, "invalid_parameter", "end must be after start")
        if end - start > timedelta(days=3700):
            raise ApiError(400, "invalid_parameter", "time range too large (max ~10 years)")
        granularity = request.args.get("granularity", "day")
        if granularity not in queries.GRANULARITIES:
            raise ApiError(
                400,
                "invalid_parameter",
                f"granularity must be one of {', '.join(queries.GRANULARITIES)}",
            )
        return {
            "start": start,
            "end": end,
            "granularity": granularity,
            "customer_id": request.args.get("customer_id") or None,
            "model": request.args.get("model") or None,
        }

    @app.get("/v1/usage")
    @requires("read")
    def usage() -> Response:
        args = _usage_args()
        with engine.connect() as conn:
            rows = queries.usage_report(
                conn,
                args.pop("start"),
                args.pop("end"),
                **args,
            )
        return json_response(
            {
                "currency": currency,
                "granularity": args["granularity"],
                "rows": [r.to_json(currency) for r in rows],
            }
        )

    @app.get("/v1/usage/export")
    @requires("read")
    def usage_export() -> Response:
        args = _usage_args()
        with engine.connect() as conn:
            rows = queries.usage_report(conn, args.pop("start"), args.pop("end"), **args)
        return Response(
            queries.usage_csv(rows, currency),
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
        )

    @app.get("/v1/customers/<customer_id>/spend")
    @requires("read")
    def spend(customer_id: str) -> Response:
        with engine.connect() as conn:
            exists_row = conn.execute(
                select(customers.c.customer_id).where(customers.c.customer_id == customer_id)
            ).first()
            if exists_row is None:
                raise ApiError(404, "unknown_customer", f"unknown customer_id {customer_id!r}")
            body = queries.customer_spend(conn, customer_id, datetime.now(UTC), currency)
        return json_response(body)

    @app.get("/v1/unpriced")
    @requires("read")
    def unpriced() -> Response:
        with engine.connect() as conn:
            rows = queries.unpriced_report(conn)
        return json_response({"rows": rows})

    # -- customers -----------------------------------------------------------------------
    @app.get("/v1/customers")
    @requires("read")
    def list_customers() -> Response:
        with engine.connect() as conn:
            rows = (
                conn.execute(select(customers).order_by(customers.c.customer_id)).mappings().all()
            )
        return json_response(
            {
                "customers": [
                    {
                        "customer_id": r["customer_id"],
                        "name": r["name"],
                        "created_at": queries.iso(r["created_at"]),
                    }
                    for r in rows
                ]
            }
        )

    @app.post("/v1/customers")
    @requires("admin")
    def create_customer() -> Response:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            raise ApiError(400, "invalid_body", "body must be a JSON object")
        cid = payload.get("customer_id")
        name = payload.get("name", "")
        if not isinstance(cid, str) or not cid or len(cid) > 128 or not cid.isprintable():
            raise ApiError(400, "invalid_value", "customer_id must be 1-128 printable characters")
        if not isinstance(name, str) or len(name) > 256:
            raise ApiError(400, "invalid_value", "name must be a string of at most 256 characters")
        created = upsert_customer(engine, cid, name)
        return json_response(
            {"customer_id": cid, "name": name, "created": created}, 201 if created else 200
        )

    # -- prices --------------------------------------------------------------------------
    @app.get("/v1/prices")
    @requires("read")
    def get_prices() -> Response:
        with engine.connect() as conn:
            rows = pricing.list_prices(conn, request.args.get("model") or None)
        return json_response({"prices": [pricing.price_to_json(p) for p in rows]})

    @app.post("/v1/prices")
    @requires("admin")
    def post_prices() -> Response:
        try:
            payload = json.loads(request.get_data(cache=False), parse_float=_reject_float)
        except _FloatError:
            raise ApiError(
                400, "invalid_value", "prices must be decimal strings or integers, not JSON floats"
            ) from None
        except ValueError as exc:
            raise ApiError(
                400, "malformed_json", f"request body is not valid JSON: {exc}"
            ) from None
        records = payload.get("prices") if isinstance(payload, dict) else payload
        if not isinstance(records, list):
            raise ApiError(400, "invalid_body", 'body must be {"prices": [...]} or an array')
        try:
            items = pricing.parse_price_records(records, currency)
            with engine.execution_options(tb_write=True).begin() as conn:
                res = pricing.store_prices(conn, items, currency)
        except pricing.PriceError as exc:
            raise ApiError(400, "invalid_price", str(exc)) from None
        return json_response({"inserted": res.inserted, "unchanged": res.unchanged})

    # -- invoices ------------------------------------------------------------------------
    @app.get("/v1/invoices")
    @requires("read")
    def get_invoices() -> Response:
        month = request.args.get("month") or None
        with engine.connect() as conn:
            rows = invoices.list_invoices(conn, request.args.get("customer_id") or None, month)
        return json_response({"invoices": rows})

    @app.get("/v1/invoices/<int:invoice_id>")
    @requires("read")
    def get_invoice(invoice_id: int) -> Response:
        with engine.connect() as conn:
            inv = invoices.get_invoice(conn, invoice_id)
        if inv is None:
            raise ApiError(404, "not_found", f"invoice {invoice_id} not found")
        return json_response(inv)

    @app.post("/v1/invoices")
    @requires("admin")
    def post_invoice() -> Response:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            raise ApiError(
                400, "invalid_body", 'body must be {"customer_id": ..., "month": "YYYY-MM"}'
            )
        cid = payload.get("customer_id")
        month = payload.get("month")
        if not isinstance(cid, str) or not cid:
            raise ApiError(400, "missing_parameter", "customer_id is required")
        if not isinstance(month, str):
            raise ApiError(400, "missing_parameter", "month (YYYY-MM) is required")
        inv, created = invoices.generate_invoice(engine, cid, month, datetime.now(UTC), currency)
        return json_response(inv, 201 if created else 200)

    return app


class _FloatError(ValueError):
    pass


def _reject_float(_value: str) -> Any:
    raise _FloatError


def _is_db_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError)


def upsert_customer(engine: Engine, customer_id: str, name: str) -> bool:
    """Create a customer if missing. Returns True when created."""
    from .schema import customers

    try:
        with engine.execution_options(tb_write=True).begin() as conn:
            if conn.execute(
                select(customers.c.customer_id).where(customers.c.customer_id == customer_id)
            ).first():
                return False
            conn.execute(customers.insert().values(customer_id=customer_id, name=name))
            return True
    except IntegrityError:
        return False

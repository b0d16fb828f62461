"""OpenAPI 3.1 document of the HTTP API (served at /openapi.json).

``tests/test_openapi.py`` checks that every Flask route is documented here, and nothing
else, with the same methods and security scopes. Over 300 lines because it is one
declarative document; splitting it would only scatter it.
"""

from __future__ import annotations

from typing import Any

from . import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = _json(_ref("Error"), "error")
_COMMON_ERRORS = {
    "401": _json(_ref("Error"), "missing, invalid or revoked API key"),
    "403": _json(
        _ref("Error"),
        "API key lacks the required scope, or is bound to another customer "
        "(customer_forbidden) or to one the request does not name (customer_required)",
    ),
    "503": {
        "description": "database unavailable; nothing stored; retry after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": _ref("Error")}},
    },
}


def _op(
    summary: str,
    scope: str | None,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if scope is not None:
        op["security"] = [{"apiKey": []}]
        op["x-required-scope"] = scope
        op["responses"].update(_COMMON_ERRORS)
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _q(name: str, description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _p(name: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


_USAGE_PARAMS = [
    _q("start", "inclusive, RFC 3339, whole hour", True, type="string", format="date-time"),
    _q("end", "exclusive, RFC 3339, whole hour", True, type="string", format="date-time"),
    _q(
        "granularity",
        "bucket size",
        False,
        type="string",
        enum=["hour", "day", "month"],
        default="day",
    ),
    _q("customer_id", "only this customer"),
    _q("model", "only this model"),
]

_DEC = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "description": "exact decimal"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                },
            }
        },
    },
    "UsageEvent": {
        "type": "object",
        "required": [
            "event_id",
            "customer_id",
            "model",
            "input_tokens",
            "output_tokens",
            "occurred_at",
        ],
        "properties": {
            "event_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "idempotency key",
            },
            "customer_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "api_key_id": {"type": ["string", "null"], "maxLength": 128},
            "project": {"type": ["string", "null"], "maxLength": 128},
            "model": {"type": "string", "minLength": 1, "maxLength": 128},
            "input_tokens": {"type": "integer", "minimum": 0},
            "output_tokens": {"type": "integer", "minimum": 0},
            "cached_input_tokens": {
                "type": "integer",
                "minimum": 0,
                "description": "part of input_tokens served from the prompt cache",
            },
            "occurred_at": {"type": "string", "format": "date-time"},
            "metadata": {"type": ["object", "null"]},
        },
    },
    "IngestRequest": {
        "oneOf": [
            {"$ref": "#/components/schemas/UsageEvent"},
            {"type": "array", "items": _ref("UsageEvent"), "maxItems": 1000},
            {
                "type": "object",
                "required": ["events"],
                "properties": {
                    "events": {"type": "array", "items": _ref("UsageEvent"), "maxItems": 1000}
                },
            },
        ]
    },
    "IngestResponse": {
        "type": "object",
        "required": ["accepted", "duplicates", "conflicts", "rejected", "results"],
        "properties": {
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "conflicts": {"type": "integer"},
            "rejected": {"type": "integer"},
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "event_id", "status"],
                    "properties": {
                        "index": {"type": "integer"},
                        "event_id": {"type": ["string", "null"]},
                        "status": {
                            "type": "string",
                            "enum": ["accepted", "duplicate", "conflict", "rejected"],
                        },
                    },
                },
            },
        },
    },
    "UsageRow": {
        "type": "object",
        "properties": {
            "period_start": {"type": "string", "format": "date-time"},
            "customer_id": {"type": "string"},
            "model": {"type": "string"},
            "events": {"type": "integer"},
            "input_tokens": {"type": "integer"},
            "cached_input_tokens": {"type": "integer"},
            "output_tokens": {"type": "integer"},
            "cost": _DEC,
            "currency": {"type": "string"},
        },
    },
    "Price": {
        "type": "object",
        "required": ["model", "effective_from", "input_per_mtok", "output_per_mtok"],
        "properties": {
            "price_id": {"type": "integer", "readOnly": True},
            "model": {"type": "string"},
            "effective_from": {"type": "string", "format": "date-time"},
            "input_per_mtok": _DEC,
            "output_per_mtok": _DEC,
            "cached_input_per_mtok": _DEC,
            "currency": {"type": "string"},
        },
    },
    "Invoice": {
        "type": "object",
        "properties": {
            "invoice_id": {"type": "integer"},
            "invoice_number": {"type": "string"},
            "customer_id": {"type": "string"},
            "period": {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
            "period_start": {"type": "string", "format": "date-time"},
            "period_end": {"type": "string", "format": "date-time"},
            "currency": {"type": "string"},
            "status": {"type": "string", "enum": ["issued"]},
            "issued_at": {"type": "string", "format": "date-time"},
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "line_no": {"type": "integer"},
                        "kind": {"type": "string", "enum": ["usage", "adjustment"]},
                        "usage_period": {"type": "string"},
                        "model": {"type": "string"},
                        "token_kind": {
                            "type": "string",
                            "enum": ["input", "cached_input", "output"],
                        },
                        "tokens": {"type": "integer"},
                        "unit_price_per_mtok": _DEC,
                        "amount": _DEC,
                    },
                },
            },
            "usage_total": _DEC,
            "adjustments_total": _DEC,
            "total": _DEC,
        },
    },
    "Customer": {
        "type": "object",
        "required": ["customer_id"],
        "properties": {"customer_id": {"type": "string"}, "name": {"type": "string"}},
    },
}
# JSON pointer into Error for the per-event error object
SCHEMAS["IngestResponse"]["properties"]["results"]["items"]["properties"]["error"] = SCHEMAS[
    "Error"
]["properties"]["error"]


def paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": _op(
                "Liveness: the process answers", None, {"200": _json({"type": "object"}, "alive")}
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness: database reachable and schema at (or compatible with) "
                "this release's revision",
                None,
                {
                    "200": _json({"type": "object"}, "ready"),
                    "503": _json({"type": "object"}, "not ready"),
                },
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (aggregated over all gunicorn workers)",
                None,
                {"200": {"description": "text exposition format", "content": {"text/plain": {}}}},
            )
        },
        "/openapi.json": {
            "get": _op("This document", None, {"200": _json({"type": "object"}, "OpenAPI")})
        },
        "/v1/usage/events": {
            "post": _op(
                "Ingest one event or a batch (up to 1000). Valid events are committed, bad ones "
                "rejected individually. A resent event_id is a duplicate when its billable "
                "content is the same, a conflict (not stored, listed by /v1/usage/conflicts) "
                "when it differs. 200: none rejected or conflicting; 207: some; 409: all "
                "conflicting; 422: all rejected.",
                "ingest",
                {
                    "200": _json(_ref("IngestResponse"), "all accepted or duplicate (committed)"),
                    "207": _json(_ref("IngestResponse"), "some rejected; the others committed"),
                    "409": _json(_ref("IngestResponse"), "all conflicting resends; nothing stored"),
                    "422": _json(_ref("IngestResponse"), "all rejected; nothing stored"),
                    "400": _ERR | {"description": "malformed JSON / invalid body; nothing stored"},
                    "413": _ERR | {"description": "batch or body too large; nothing stored"},
                    "415": _ERR | {"description": "Content-Type is not application/json"},
                },
                body=_ref("IngestRequest"),
            )
        },
        "/v1/usage": {
            "get": _op(
                "Usage and cost by period, customer and model",
                "read",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "currency": {"type": "string"},
                                "granularity": {"type": "string"},
                                "rows": {"type": "array", "items": _ref("UsageRow")},
                            },
                        },
                        "report",
                    ),
                    "400": _ERR,
                },
                parameters=_USAGE_PARAMS,
            )
        },
        "/v1/usage/export": {
            "get": _op(
                "Same report as CSV",
                "read",
                {"200": {"description": "CSV", "content": {"text/csv": {}}}, "400": _ERR},
                parameters=_USAGE_PARAMS,
            )
        },
        "/v1/usage/conflicts": {
            "get": _op(
                "Conflicting resends (same event_id, different billable content) whose stored "
                "event occurred in [start, end): the stored and the resent content",
                "read",
                {"200": _json({"type": "object"}, "conflicts"), "400": _ERR},
                parameters=[
                    _q("start", "inclusive, RFC 3339", True, type="string", format="date-time"),
                    _q("end", "exclusive, RFC 3339", True, type="string", format="date-time"),
                    _q("customer_id", "only this customer"),
                ],
            )
        },
        "/v1/api-keys": {
            "get": _op(
                "List API keys (never their secrets)",
                "admin",
                {"200": _json({"type": "object"}, "keys")},
            ),
            "post": _op(
                "Create an API key, optionally bound to one customer; the key is shown once",
                "admin",
                {"201": _json({"type": "object"}, "created"), "400": _ERR, "404": _ERR},
                body={
                    "type": "object",
                    "required": ["scopes"],
                    "properties": {
                        "name": {"type": "string"},
                        "scopes": {
                            "type": "array",
                            "items": {"type": "string", "enum": ["ingest", "read", "admin"]},
                        },
                        "customer_id": {
                            "type": "string",
                            "description": "bind the key to this customer (no admin scope)",
                        },
                    },
                },
            ),
        },
        "/v1/api-keys/{key_id}": {
            "delete": _op(
                "Revoke an API key",
                "admin",
                {"200": _json({"type": "object"}, "revoked"), "404": _ERR},
                parameters=[_p("key_id")],
            )
        },
        "/v1/customers": {
            "get": _op(
                "List customers",
                "read",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "customers": {"type": "array", "items": _ref("Customer")}
                            },
                        },
                        "customers",
                    )
                },
                parameters=[_q("customer_id", "only this customer (required for a bound key)")],
            ),
            "post": _op(
                "Create a customer (idempotent)",
                "admin",
                {
                    "201": _json(_ref("Customer"), "created"),
                    "200": _json(_ref("Customer"), "existed"),
                    "400": _ERR,
                },
                body=_ref("Customer"),
            ),
        },
        "/v1/customers/{customer_id}/spend": {
            "get": _op(
                "A customer's spend in the current calendar month (UTC)",
                "read",
                {"200": _json({"type": "object"}, "spend"), "404": _ERR},
                parameters=[_p("customer_id")],
            )
        },
        "/v1/unpriced": {
            "get": _op(
                "Events rejected because their model had no price, by model and day",
                "read",
                {"200": _json({"type": "object"}, "counts")},
            )
        },
        "/v1/prices": {
            "get": _op(
                "Price book",
                "read",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"prices": {"type": "array", "items": _ref("Price")}},
                        },
                        "prices",
                    )
                },
                parameters=[_q("model", "only this model")],
            ),
            "post": _op(
                "Load prices (append-only, idempotent, all or nothing)",
                "admin",
                {"200": _json({"type": "object"}, "loaded"), "400": _ERR},
                body={
                    "type": "object",
                    "properties": {"prices": {"type": "array", "items": _ref("Price")}},
                },
            ),
        },
        "/v1/invoices": {
            "get": _op(
                "List issued invoices",
                "read",
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"invoices": {"type": "array", "items": _ref("Invoice")}},
                        },
                        "invoices",
                    )
                },
                parameters=[_q("customer_id", "only this customer"), _q("month", "YYYY-MM")],
            ),
            "post": _op(
                "Issue the invoice of a customer for a closed month (idempotent)",
                "admin",
                {
                    "201": _json(_ref("Invoice"), "issued now"),
                    "200": _json(_ref("Invoice"), "already issued (unchanged)"),
                    "400": _ERR,
                    "404": _ERR,
                    "409": _ERR,
                },
                body={
                    "type": "object",
                    "required": ["customer_id", "month"],
                    "properties": {"customer_id": {"type": "string"}, "month": {"type": "string"}},
                },
            ),
        },
        "/v1/invoices/{invoice_id}": {
            "get": _op(
                "One issued invoice",
                "read",
                {"200": _json(_ref("Invoice"), "invoice"), "404": _ERR},
                parameters=[_p("invoice_id", type="integer")],
            )
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Token billing", "version": __version__},
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "Authorization: Bearer tbk_<id>_<secret> (scopes: ingest, read, admin)"
                    ),
                }
            },
            "schemas": SCHEMAS,
        },
        "paths": paths(),
    }

"""Monthly invoices: list, read, issue."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request

from .. import invoices
from ..errors import InvalidInput, NotFound
from .context import current_key, json_object, json_response, requires, services

bp = Blueprint("invoices", __name__)


@bp.get("/v1/invoices")
@requires("read")
def get_invoices() -> Response:
    month = request.args.get("month") or None
    with services().engine.connect() as conn:
        rows = invoices.list_invoices(conn, request.args.get("customer_id") or None, month)
    return json_response({"invoices": rows})


@bp.get("/v1/invoices/<int:invoice_id>")
@requires("read", tenancy="body")
def get_invoice(invoice_id: int) -> Response:
    with services().engine.connect() as conn:
        inv = invoices.get_invoice(conn, invoice_id)
    if inv is None:
        raise NotFound("not_found", f"invoice {invoice_id} not found")
    current_key().check_customers([inv["customer_id"]])
    return json_response(inv)


@bp.post("/v1/invoices")
@requires("admin", tenancy="platform")
def post_invoice() -> Response:
    svc = services()
    payload = json_object('body must be {"customer_id": ..., "month": "YYYY-MM"}')
    cid = payload.get("customer_id")
    month = payload.get("month")
    if not isinstance(cid, str) or not cid:
        raise InvalidInput("missing_parameter", "customer_id is required")
    if not isinstance(month, str):
        raise InvalidInput("missing_parameter", "month (YYYY-MM) is required")
    inv, created = invoices.generate_invoice(
        svc.engine, cid, month, datetime.now(UTC), svc.settings.currency
    )
    return json_response(inv, 201 if created else 200)

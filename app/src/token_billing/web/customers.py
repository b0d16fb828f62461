"""Customers and their current-period spend."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request

from .. import customers, queries
from .context import json_object, json_response, requires, services

bp = Blueprint("customers", __name__)


@bp.get("/v1/customers")
@requires("read")
def list_customers() -> Response:
    with services().engine.connect() as conn:
        rows = customers.list_customers(conn, request.args.get("customer_id") or None)
    return json_response({"customers": rows})


@bp.post("/v1/customers")
@requires("admin", tenancy="platform")
def create_customer() -> Response:
    payload = json_object("body must be a JSON object")
    cid, name = customers.validate(payload.get("customer_id"), payload.get("name", ""))
    created = customers.upsert_customer(services().engine, cid, name)
    return json_response(
        {"customer_id": cid, "name": name, "created": created}, 201 if created else 200
    )


@bp.get("/v1/customers/<customer_id>/spend")
@requires("read")
def spend(customer_id: str) -> Response:
    svc = services()
    with svc.engine.connect() as conn:
        customers.require(conn, customer_id)
        body = queries.customer_spend(conn, customer_id, datetime.now(UTC), svc.settings.currency)
    return json_response(body)

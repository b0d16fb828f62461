"""API keys: create (optionally bound to one customer), list, revoke. Admin only."""

from __future__ import annotations

from flask import Blueprint, Response

from .. import auth
from ..errors import InvalidInput, NotFound
from ..timeutil import iso
from .context import json_object, json_response, requires, services

bp = Blueprint("keys", __name__)


@bp.get("/v1/api-keys")
@requires("admin", tenancy="platform")
def list_keys() -> Response:
    with services().engine.connect() as conn:
        rows = auth.list_keys(conn)
    return json_response(
        {
            "api_keys": [
                {
                    **r,
                    "created_at": iso(r["created_at"]),  # type: ignore[arg-type]
                    "revoked_at": iso(r["revoked_at"]) if r["revoked_at"] else None,  # type: ignore[arg-type]
                }
                for r in rows
            ]
        }
    )


@bp.post("/v1/api-keys")
@requires("admin", tenancy="platform")
def create_key() -> Response:
    payload = json_object('body must be {"name": ..., "scopes": [...], "customer_id": ...}')
    name = payload.get("name", "")
    scopes = payload.get("scopes")
    customer_id = payload.get("customer_id")
    if not isinstance(name, str) or len(name) > 256:
        raise InvalidInput("invalid_value", "name must be a string of at most 256 characters")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidInput("invalid_value", 'scopes must be an array, e.g. ["read"]')
    if customer_id is not None and not isinstance(customer_id, str):
        raise InvalidInput("invalid_value", "customer_id must be a string")
    parsed = auth.parse_scopes(",".join(scopes))
    with services().engine.execution_options(tb_write=True).begin() as conn:
        key_id, key = auth.create_key(conn, name, parsed, customer_id=customer_id)
    return json_response(
        {
            "key_id": key_id,
            "key": key,  # shown once, never stored
            "name": name,
            "scopes": sorted(parsed),
            "customer_id": customer_id,
        },
        201,
    )


@bp.delete("/v1/api-keys/<key_id>")
@requires("admin", tenancy="platform")
def revoke_key(key_id: str) -> Response:
    with services().engine.execution_options(tb_write=True).begin() as conn:
        if not auth.revoke_key(conn, key_id):
            raise NotFound("not_found", f"no active API key {key_id}")
    return json_response({"key_id": key_id, "revoked": True})

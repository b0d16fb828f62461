"""The price book: effective-dated prices per model (append-only)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from .. import pricing
from ..errors import InvalidInput
from .context import json_response, requires, services

bp = Blueprint("prices", __name__)


class _FloatError(ValueError):
    pass


def _reject_float(_value: str) -> Any:
    raise _FloatError


@bp.get("/v1/prices")
@requires("read", tenancy="none")
def get_prices() -> Response:
    with services().engine.connect() as conn:
        rows = pricing.list_prices(conn, request.args.get("model") or None)
    return json_response({"prices": [pricing.price_to_json(p) for p in rows]})


@bp.post("/v1/prices")
@requires("admin", tenancy="platform")
def post_prices() -> Response:
    svc = services()
    try:
        payload = json.loads(request.get_data(cache=False), parse_float=_reject_float)
    except _FloatError:
        raise InvalidInput(
            "invalid_value", "prices must be decimal strings or integers, not JSON floats"
        ) from None
    except ValueError as exc:
        raise InvalidInput("malformed_json", f"request body is not valid JSON: {exc}") from None
    records = payload.get("prices") if isinstance(payload, dict) else payload
    if not isinstance(records, list):
        raise InvalidInput("invalid_body", 'body must be {"prices": [...]} or an array')
    items = pricing.parse_price_records(records, svc.settings.currency)
    with svc.engine.execution_options(tb_write=True).begin() as conn:
        res = pricing.store_prices(conn, items, svc.settings.currency)
    return json_response({"inserted": res.inserted, "unchanged": res.unchanged})

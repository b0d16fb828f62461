"""Usage: ingest, reports, CSV export, conflicting resends, unpriced rejections."""

from __future__ import annotations

import json
from datetime import timedelta
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from flask import Blueprint, Response, request

from .. import conflicts, queries
from ..errors import InvalidInput, TooLarge, UnsupportedMedia
from ..ingest import IngestOutcome
from .context import current_key, json_response, requires, services, time_param

bp = Blueprint("usage", __name__)


def _events(body: bytes) -> list[Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("malformed_json", f"request body is not valid JSON: {exc}") from None
    if isinstance(payload, list):
        items = payload
    elif isinstance(payload, dict):
        if "events" not in payload:
            return [payload]
        items = payload["events"]
        if not isinstance(items, list):
            raise InvalidInput("invalid_body", "'events' must be an array of events")
    else:
        raise InvalidInput(
            "invalid_body", 'body must be an event object, an array of events or {"events": [...]}'
        )
    return items


@bp.post("/v1/usage/events")
@requires("ingest", tenancy="body")
def ingest_events() -> Response:
    svc = services()
    if request.mimetype != "application/json":
        raise UnsupportedMedia("unsupported_media_type", "Content-Type must be application/json")
    items = _events(request.get_data(cache=False))
    if not items:
        raise InvalidInput("empty_batch", "batch contains no events")
    if len(items) > svc.settings.max_batch_size:
        raise TooLarge(
            "batch_too_large",
            f"batch has {len(items)} events, the maximum is {svc.settings.max_batch_size}; "
            "nothing was stored",
        )
    current_key().check_customers(
        cid for item in items if type(item) is dict and type(cid := item.get("customer_id")) is str
    )
    out = svc.ingestor.ingest(items)
    failed = out.rejected + out.conflicts
    if failed == 0:
        status = 200
    elif out.accepted + out.duplicates > 0:
        status = 207
    else:
        status = 409 if out.rejected == 0 else 422
    return Response(_outcome_json(out), status=status, mimetype="application/json")


def _outcome_json(out: IngestOutcome) -> str:
    """The batch response: the counts, then one result per event. Written out directly
    rather than built as 1,000 dicts for json.dumps (same JSON, a third of the time)."""
    errors = out.errors
    results = [
        f'{{"index":{i},"event_id":{"null" if eid is None else encode_basestring(eid)},'
        f'"status":"{st}"'
        + (f',"error":{json.dumps(errors[i], ensure_ascii=False)}}}' if i in errors else "}")
        for i, (eid, st) in enumerate(zip(out.event_ids, out.statuses, strict=True))
    ]
    return (
        f'{{"accepted":{out.accepted},"duplicates":{out.duplicates},'
        f'"conflicts":{out.conflicts},"rejected":{out.rejected},"results":[{",".join(results)}]}}'
    )


def _usage_args() -> dict[str, Any]:
    start = time_param("start")
    end = time_param("end")
    assert start is not None and end is not None
    for name, value in (("start", start), ("end", end)):
        if value.minute or value.second or value.microsecond:
            raise InvalidInput(
                "invalid_parameter", f"{name} must be on a whole hour (usage is rolled up hourly)"
            )
    if end <= start:
        raise InvalidInput("invalid_parameter", "end must be after start")
    if end - start > timedelta(days=3700):
        raise InvalidInput("invalid_parameter", "time range too large (max ~10 years)")
    granularity = request.args.get("granularity", "day")
    if granularity not in queries.GRANULARITIES:
        raise InvalidInput(
            "invalid_parameter", f"granularity must be one of {', '.join(queries.GRANULARITIES)}"
        )
    return {
        "start": start,
        "end": end,
        "granularity": granularity,
        "customer_id": request.args.get("customer_id") or None,
        "model": request.args.get("model") or None,
    }


def _usage_rows() -> tuple[list[queries.UsageRow], str]:
    """The report the query parameters ask for, and its granularity."""
    args = _usage_args()
    with services().engine.connect() as conn:
        rows = queries.usage_report(conn, args.pop("start"), args.pop("end"), **args)
    return rows, args["granularity"]


@bp.get("/v1/usage")
@requires("read")
def usage() -> Response:
    rows, granularity = _usage_rows()
    currency = services().settings.currency
    return json_response(
        {
            "currency": currency,
            "granularity": granularity,
            "rows": [r.to_json(currency) for r in rows],
        }
    )


@bp.get("/v1/usage/export")
@requires("read")
def usage_export() -> Response:
    rows, _ = _usage_rows()
    return Response(
        queries.usage_csv(rows, services().settings.currency),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
    )


@bp.get("/v1/usage/conflicts")
@requires("read")
def usage_conflicts() -> Response:
    start = time_param("start")
    end = time_param("end")
    assert start is not None and end is not None
    if end <= start:
        raise InvalidInput("invalid_parameter", "end must be after start")
    with services().engine.connect() as conn:
        rows = conflicts.list_conflicts(conn, start, end, request.args.get("customer_id") or None)
    return json_response({"conflicts": rows})


@bp.get("/v1/unpriced")
@requires("read", tenancy="platform")
def unpriced() -> Response:
    with services().engine.connect() as conn:
        rows = queries.unpriced_report(conn)
    return json_response({"rows": rows})

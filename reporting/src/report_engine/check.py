"""The report's totals must equal what the billing API reports for the same month."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from decimal import Decimal

import pandas as pd

from .source import Month

FIELDS = ("events", "input_tokens", "cached_input_tokens", "output_tokens", "cost")


class TotalsMismatch(RuntimeError):
    pass


def api_totals(
    api_url: str, api_key: str, month: Month
) -> dict[tuple[str, str], dict[str, object]]:
    """GET /v1/usage for the month (granularity month): per customer and model."""
    query = urllib.parse.urlencode(
        {
            "start": month.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": month.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "granularity": "month",
        }
    )
    if not api_url.startswith(("http://", "https://")):
        raise ValueError(f"REPORT_ENGINE_API_URL must be http(s)://..., got {api_url!r}")
    req = urllib.request.Request(  # noqa: S310 (scheme checked above)
        f"{api_url.rstrip('/')}/v1/usage?{query}",
        headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 (scheme checked)
        body = json.load(resp)
    out: dict[tuple[str, str], dict[str, object]] = {}
    for row in body["rows"]:
        out[(row["customer_id"], row["model"])] = {
            "events": int(row["events"]),
            "input_tokens": int(row["input_tokens"]),
            "cached_input_tokens": int(row["cached_input_tokens"]),
            "output_tokens": int(row["output_tokens"]),
            "cost": Decimal(row["cost"]),
        }
    return out


def report_totals(frame: pd.DataFrame) -> dict[tuple[str, str], dict[str, object]]:
    out: dict[tuple[str, str], dict[str, object]] = {}
    for (customer, model), g in frame.groupby(["customer_id", "model"]):
        out[(str(customer), str(model))] = {
            "events": int(g["events"].sum()),
            "input_tokens": int(g["input_tokens"].sum()),
            "cached_input_tokens": int(g["cached_input_tokens"].sum()),
            "output_tokens": int(g["output_tokens"].sum()),
            "cost": sum(g["cost"], Decimal(0)),
        }
    return out


def verify(frame: pd.DataFrame, api: dict[tuple[str, str], dict[str, object]]) -> int:
    """Raises TotalsMismatch naming every difference; returns the rows compared."""
    mine = report_totals(frame)
    problems = []
    for key in sorted(set(mine) | set(api)):
        a, b = mine.get(key), api.get(key)
        if a is None or b is None:
            problems.append(f"{key[0]}/{key[1]}: only in the {'API' if a is None else 'report'}")
            continue
        for f in FIELDS:
            if a[f] != b[f]:
                problems.append(f"{key[0]}/{key[1]} {f}: report {a[f]} != API {b[f]}")
    if problems:
        raise TotalsMismatch(
            f"report totals differ from the billing API in {len(problems)} place(s): "
            + "; ".join(problems[:5])
        )
    return len(mine)

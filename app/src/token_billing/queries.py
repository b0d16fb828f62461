"""Usage and cost reports, read from the hourly rollup (never from raw events)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from .pricing import cost, money_str, prices_by_id
from .schema import unpriced_rejections, usage_daily_all, usage_hourly_all
from .timeutil import iso, month_start, next_month

GRANULARITIES = ("hour", "day", "month")


@dataclass
class UsageRow:
    period_start: datetime
    customer_id: str
    model: str
    events: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)

    def to_json(self, currency: str) -> dict[str, Any]:
        return {
            "period_start": iso(self.period_start),
            "customer_id": self.customer_id,
            "model": self.model,
            "events": self.events,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "cost": money_str(self.cost),
            "currency": currency,
        }


def _bucket(conn: Connection, granularity: str, col: Any) -> Any:
    if granularity == "hour" or (granularity == "day" and col.name == "day"):
        return col
    if conn.dialect.name == "postgresql":
        return func.date_trunc(granularity, col)
    return func.substr(col, 1, 10 if granularity == "day" else 7)


def _to_dt(value: Any, granularity: str) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text_value = str(value)
    if granularity == "month":
        text_value += "-01"
    return datetime.fromisoformat(text_value[:10]).replace(tzinfo=UTC)


def usage_report(
    conn: Connection,
    start: datetime,
    end: datetime,
    *,
    granularity: str = "day",
    customer_id: str | None = None,
    model: str | None = None,
) -> list[UsageRow]:
    """Usage and exact cost per (period, customer, model) for ``start <= hour < end``."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    # day/month reports over whole days read the daily rollup (~31 rows per customer,
    # model and price for a month); anything else reads the hourly one
    day_aligned = all(t.hour == 0 and t.minute == 0 and t.second == 0 for t in (start, end))
    table = usage_daily_all if granularity != "hour" and day_aligned else usage_hourly_all
    u = table.c
    time_col = u.day if table is usage_daily_all else u.hour
    bucket = _bucket(conn, granularity, time_col).label("bucket")
    q = (
        select(
            bucket,
            u.customer_id,
            u.model,
            u.price_id,
            func.sum(u.event_count),
            func.sum(u.input_tokens),
            func.sum(u.cached_input_tokens),
            func.sum(u.output_tokens),
        )
        .where(time_col >= start, time_col < end)
        .group_by(bucket, u.customer_id, u.model, u.price_id)
    )
    if customer_id is not None:
        q = q.where(u.customer_id == customer_id)
    if model is not None:
        q = q.where(u.model == model)
    rows = conn.execute(q).all()
    book = prices_by_id(conn, (r[3] for r in rows))
    out: dict[tuple[datetime, str, str], UsageRow] = {}
    for b, cust, mdl, price_id, n_raw, in_raw, cached_raw, out_raw in rows:
        period = _to_dt(b, granularity)
        key = (period, cust, mdl)
        row = out.get(key)
        if row is None:
            row = out[key] = UsageRow(period, cust, mdl)
        inp, cached, outp, n = int(in_raw), int(cached_raw), int(out_raw), int(n_raw)
        row.events += n
        row.input_tokens += inp
        row.cached_input_tokens += cached
        row.output_tokens += outp
        row.cost += cost(inp - cached, cached, outp, book[price_id])
    return [out[k] for k in sorted(out)]


def usage_csv(rows: list[UsageRow], currency: str) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "period_start",
            "customer_id",
            "model",
            "events",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "cost",
            "currency",
        ]
    )
    yield buf.getvalue()
    for r in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow(
            [
                iso(r.period_start),
                r.customer_id,
                r.model,
                r.events,
                r.input_tokens,
                r.cached_input_tokens,
                r.output_tokens,
                money_str(r.cost),
                currency,
            ]
        )
        yield buf.getvalue()


def customer_spend(
    conn: Connection, customer_id: str, now: datetime, currency: str
) -> dict[str, Any]:
    """Spend in the current calendar month (UTC) up to now."""
    start = month_start(now)
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    rows = usage_report(conn, start, end, granularity="month", customer_id=customer_id)
    total = sum((r.cost for r in rows), Decimal(0))
    return {
        "customer_id": customer_id,
        "period_start": iso(start),
        "period_end": iso(next_month(start)),
        "as_of": iso(now),
        "currency": currency,
        "cost": money_str(total),
        "events": sum(r.events for r in rows),
        "input_tokens": sum(r.input_tokens for r in rows),
        "cached_input_tokens": sum(r.cached_input_tokens for r in rows),
        "output_tokens": sum(r.output_tokens for r in rows),
        "by_model": [
            {k: v for k, v in r.to_json(currency).items() if k not in ("customer_id",)}
            for r in rows
        ],
    }


def unpriced_report(conn: Connection) -> list[dict[str, Any]]:
    t = unpriced_rejections.c
    rows = conn.execute(
        select(t.model, t.day, t.rejected_count, t.last_seen_at).order_by(t.day.desc(), t.model)
    ).all()
    return [
        {"model": m, "day": d, "rejected_events": int(c), "last_seen_at": iso(ls)}
        for m, d, c, ls in rows
    ]

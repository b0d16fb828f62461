"""One month of usage from the billing database (read-only), priced exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext

import pandas as pd
from sqlalchemy import Engine, text

MILLION = Decimal(1_000_000)
COLUMNS = [
    "day",
    "customer_id",
    "model",
    "events",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost",
]

# The daily rollup is summed over shards and prices; every price row costs its own tokens.
_USAGE = text(
    """
    SELECT d.day, d.customer_id, d.model, d.price_id, sum(d.event_count) AS events,
           sum(d.input_tokens) AS input_tokens,
           sum(d.cached_input_tokens) AS cached_input_tokens,
           sum(d.output_tokens) AS output_tokens
    FROM usage_daily_all d
    WHERE d.day >= :start AND d.day < :end
    GROUP BY d.day, d.customer_id, d.model, d.price_id
    ORDER BY d.day, d.customer_id, d.model, d.price_id
    """
)
_PRICES = text(
    "SELECT price_id, input_per_mtok, cached_input_per_mtok, output_per_mtok, currency FROM prices"
)


@dataclass(frozen=True)
class Month:
    start: datetime

    @classmethod
    def parse(cls, value: str) -> Month:
        try:
            year, month = (int(x) for x in value.split("-"))
            return cls(datetime(year, month, 1, tzinfo=UTC))
        except ValueError:
            raise ValueError(f"month must be YYYY-MM, got {value!r}") from None

    @property
    def end(self) -> datetime:
        y, m = divmod(self.start.month, 12)
        return self.start.replace(year=self.start.year + y, month=m + 1)

    @property
    def previous(self) -> Month:
        if self.start.month == 1:
            return Month(self.start.replace(year=self.start.year - 1, month=12))
        return Month(self.start.replace(month=self.start.month - 1))

    def __str__(self) -> str:
        return self.start.strftime("%Y-%m")


def cost(
    input_tokens: int, cached_input_tokens: int, output_tokens: int, price: tuple[Decimal, ...]
) -> Decimal:
    """The billing service's formula: cached input at the cached price, the rest of the
    input at the input price; prices per million tokens; exact, never rounded here."""
    p_in, p_cached, p_out = price
    with localcontext() as ctx:
        ctx.prec = 60
        uncached = input_tokens - cached_input_tokens
        return (uncached * p_in + cached_input_tokens * p_cached + output_tokens * p_out) / MILLION


def read_month(engine: Engine, month: Month) -> tuple[pd.DataFrame, str]:
    """Daily usage per customer and model with its exact cost (Decimal), and the currency."""
    with engine.connect() as conn:
        price_rows = conn.execute(_PRICES).all()
        prices = {
            r.price_id: (
                Decimal(str(r.input_per_mtok)),
                Decimal(str(r.cached_input_per_mtok)),
                Decimal(str(r.output_per_mtok)),
            )
            for r in price_rows
        }
        currencies = {r.currency for r in price_rows}
        rows = conn.execute(_USAGE, {"start": month.start, "end": month.end}).all()
    records = []
    for r in rows:
        day = r.day if isinstance(r.day, datetime) else datetime.fromisoformat(str(r.day))
        records.append(
            {
                "day": day.astimezone(UTC).date() if day.tzinfo else day.date(),
                "customer_id": r.customer_id,
                "model": r.model,
                "events": int(r.events),
                "input_tokens": int(r.input_tokens),
                "cached_input_tokens": int(r.cached_input_tokens),
                "output_tokens": int(r.output_tokens),
                "cost": cost(
                    int(r.input_tokens),
                    int(r.cached_input_tokens),
                    int(r.output_tokens),
                    prices[r.price_id],
                ),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    if not frame.empty:
        # several prices in one day become one row per day, customer and model
        frame = frame.groupby(["day", "customer_id", "model"], as_index=False).agg(
            {
                "events": "sum",
                "input_tokens": "sum",
                "cached_input_tokens": "sum",
                "output_tokens": "sum",
                "cost": lambda s: sum(s, Decimal(0)),
            }
        )
    return frame, (currencies.pop() if len(currencies) == 1 else "USD")

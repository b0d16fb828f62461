"""The usage rollups, defined once: table, time bucket, key and sums. ``upsert`` renders
one INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE per rollup over a relation of
newly inserted events, for PostgreSQL (inside the one-statement ingest) and SQLite.

Hourly rows carry ``invoice_id`` (0 = open; invoicing re-labels them) and both carry a
``shard`` (PostgreSQL: backend pid % 8) so concurrent writers of a hot key do not queue
on one row lock; readers sum over both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["postgresql", "sqlite"]
SUMS = ("input_tokens", "cached_input_tokens", "output_tokens")


@dataclass(frozen=True)
class Rollup:
    table: str
    unit: Literal["hour", "day"]  # also the bucket column's name
    constants: tuple[tuple[str, str], ...] = ()  # key columns set to a fixed value


ROLLUPS = (
    Rollup("usage_daily", "day"),
    Rollup("usage_hourly", "hour", (("invoice_id", "0"),)),
)

# SQLite keeps UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text: truncating is a prefix
_SQLITE_BUCKET = {
    "hour": "substr(occurred_at, 1, 13) || ':00:00.000000'",
    "day": "substr(occurred_at, 1, 10) || ' 00:00:00.000000'",
}


def upsert(rollup: Rollup, source: str, dialect: Dialect, shard: str) -> str:
    """``source``: a relation with customer_id, model, price_id, occurred_at and SUMS.
    ``shard``: the SQL expression of the shard (mind %-escaping for a driver)."""
    if dialect == "postgresql":
        bucket = f"date_trunc('{rollup.unit}', occurred_at)"
    else:
        bucket = _SQLITE_BUCKET[rollup.unit]
    const_cols = [c for c, _ in rollup.constants]
    const_vals = [v for _, v in rollup.constants]
    key = ["customer_id", rollup.unit, "model", "price_id", *const_cols, "shard"]
    group = f"customer_id, {bucket}, model, price_id"
    return f"""INSERT INTO {rollup.table} AS r ({", ".join(key)}, event_count, {", ".join(SUMS)})
    SELECT customer_id, {bucket}, model, price_id, {", ".join([*const_vals, shard])},
        count(*), {", ".join(f"sum({s})" for s in SUMS)}
    FROM {source} WHERE true
    GROUP BY {group}
    ORDER BY {group}
    ON CONFLICT ({", ".join(key)}) DO UPDATE SET
        event_count = r.event_count + excluded.event_count,
        {", ".join(f"{s} = r.{s} + excluded.{s}" for s in SUMS)}"""

"""The usage rollups, defined once: table, time bucket, key and sums.

``aggregate`` renders one INSERT ... SELECT ... GROUP BY per rollup over a relation of
events (or of pending hourly rows), and ``upsert`` the same with ON CONFLICT DO UPDATE;
both for PostgreSQL and SQLite.

PostgreSQL keeps the rollup upserts out of the ingest request: each batch appends its
hourly sums to ``usage_pending`` (no key, no index: an append), and ``FLUSH`` moves
pending rows into both rollups in one statement (DELETE ... RETURNING feeding the
upserts, so a row is rolled up exactly once, or not at all if the flush fails). Readers
read the views ``usage_hourly_all`` / ``usage_daily_all`` = rollup UNION ALL pending,
which in one statement's snapshot count every committed event exactly once. SQLite
upserts the rollups in the ingest transaction and leaves ``usage_pending`` empty.

Hourly rows carry ``invoice_id`` (0 = open; invoicing re-labels them) and both carry a
``shard`` (1.1.0 writers spread a hot key over backend pid % 8; the flusher, the only
PostgreSQL writer now, uses 0); readers sum over shards.
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
PENDING = Rollup("usage_pending", "hour")

# SQLite keeps UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text: truncating is a prefix
_SQLITE_BUCKET = {
    "hour": "substr({t}, 1, 13) || ':00:00.000000'",
    "day": "substr({t}, 1, 10) || ' 00:00:00.000000'",
}


@dataclass(frozen=True)
class Source:
    """A relation with customer_id, model, price_id, SUMS and a time column."""

    relation: str
    time: str = "occurred_at"
    count: str = "count(*)"  # pending rows carry their event_count


def aggregate(rollup: Rollup, source: Source, dialect: Dialect, shard: str | None) -> str:
    """``shard``: the SQL expression of the shard (mind %-escaping for a driver); None
    for a relation without one (usage_pending)."""
    if dialect == "postgresql":
        bucket = f"date_trunc('{rollup.unit}', {source.time})"
    else:
        bucket = _SQLITE_BUCKET[rollup.unit].format(t=source.time)
    const_cols = [c for c, _ in rollup.constants]
    const_vals = [v for _, v in rollup.constants]
    shard_col, shard_val = (["shard"], [shard]) if shard is not None else ([], [])
    key = ["customer_id", rollup.unit, "model", "price_id", *const_cols, *shard_col]
    group = f"customer_id, {bucket}, model, price_id"
    values = ["customer_id", bucket, "model", "price_id", *const_vals, *shard_val, source.count]
    return f"""INSERT INTO {rollup.table} AS r ({", ".join(key)}, event_count, {", ".join(SUMS)})
    SELECT {", ".join(values)}, {", ".join(f"sum({s})" for s in SUMS)}
    FROM {source.relation} WHERE true
    GROUP BY {group}
    ORDER BY {group}"""


def upsert(rollup: Rollup, source: Source, dialect: Dialect, shard: str) -> str:
    key = ["customer_id", rollup.unit, "model", "price_id", *(c for c, _ in rollup.constants)]
    return f"""{aggregate(rollup, source, dialect, shard)}
    ON CONFLICT ({", ".join([*key, "shard"])}) DO UPDATE SET
        event_count = r.event_count + excluded.event_count,
        {", ".join(f"{s} = r.{s} + excluded.{s}" for s in SUMS)}"""


# One flusher at a time (per database), and invoicing waits for it: key of the
# transaction-level advisory lock both take.
FLUSH_LOCK = 0x746F6B656E  # "token"
FLUSH_BATCH = 50_000

# PostgreSQL: move pending rows into both rollups, returning the number moved: FLUSH
# every row its snapshot sees (one statement), FLUSH_SOME at most FLUSH_BATCH (the
# background flusher commits batch by batch, so a backlog never becomes one long
# transaction). Ordered by key (in ``upsert``): no deadlock with invoicing's UPDATE.
_MOVED = Source("moved", "hour", "sum(event_count)")
# the flush's first step, {where} to bound it; the rows it returns are the relation _MOVED
TAKE_PENDING = f"""DELETE FROM usage_pending {{where}}
    RETURNING customer_id, hour, model, price_id, event_count, {", ".join(SUMS)}"""
_FLUSH = """
WITH moved AS (
    {take}
), {upserts}
SELECT count(*) FROM moved
"""
_UPSERTS = ", ".join(f"up_{r.unit} AS ({upsert(r, _MOVED, 'postgresql', '0')})" for r in ROLLUPS)
FLUSH = _FLUSH.format(take=TAKE_PENDING.format(where=""), upserts=_UPSERTS)
FLUSH_SOME = _FLUSH.format(
    take=TAKE_PENDING.format(
        where=f"WHERE ctid = ANY(ARRAY(SELECT ctid FROM usage_pending LIMIT {FLUSH_BATCH}))"
    ),
    upserts=_UPSERTS,
)

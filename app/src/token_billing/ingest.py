"""Usage event ingest: validate, price, store exactly once, roll up — in one transaction.

Exactly-once: ``usage_events.event_id`` is the primary key and rows are written with
``INSERT ... ON CONFLICT (event_id) DO NOTHING``; only rows the database reports as newly
inserted (RETURNING on PostgreSQL, the row count on SQLite) are added to the hourly
rollup, in the same transaction. Copies of one event racing on different workers or
hosts are therefore counted once: the database's unique index decides the winner.

Lock ordering (PostgreSQL): events are inserted sorted by event_id and rollup rows are
upserted sorted by key, so concurrent batches never deadlock on each other; a deadlock
or serialization failure would be retried anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from . import metrics
from .config import Settings
from .db import is_retryable_conflict, is_sqlite
from .pricing import load_price_book
from .schema import customers
from .validation import Event, Limits, error, validate_event

log = logging.getLogger(__name__)

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"

_PG_INSERT_EVENTS = """
INSERT INTO usage_events (event_id, customer_id, api_key_id, project, model, input_tokens,
    cached_input_tokens, output_tokens, occurred_at, price_id, metadata)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::int8[],
    %s::int8[], %s::int8[], %s::timestamptz[], %s::int4[], %s::text[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

_PG_UPSERT_ROLLUP = """
INSERT INTO usage_hourly AS u (customer_id, hour, model, price_id, invoice_id, event_count,
    input_tokens, cached_input_tokens, output_tokens)
SELECT c, h, m, p, 0, n, i, ci, o
FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::int4[], %s::int8[], %s::int8[],
    %s::int8[], %s::int8[]) AS t(c, h, m, p, n, i, ci, o)
ORDER BY c, h, m, p
ON CONFLICT (customer_id, hour, model, price_id, invoice_id) DO UPDATE SET
    event_count = u.event_count + EXCLUDED.event_count,
    input_tokens = u.input_tokens + EXCLUDED.input_tokens,
    cached_input_tokens = u.cached_input_tokens + EXCLUDED.cached_input_tokens,
    output_tokens = u.output_tokens + EXCLUDED.output_tokens
"""

_SQLITE_INSERT_EVENT = """
INSERT INTO usage_events (event_id, customer_id, api_key_id, project, model, input_tokens,
    cached_input_tokens, output_tokens, occurred_at, received_at, price_id, metadata)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING
"""

_SQLITE_UPSERT_ROLLUP = """
INSERT INTO usage_hourly (customer_id, hour, model, price_id, invoice_id, event_count,
    input_tokens, cached_input_tokens, output_tokens)
VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)
ON CONFLICT (customer_id, hour, model, price_id, invoice_id) DO UPDATE SET
    event_count = event_count + excluded.event_count,
    input_tokens = input_tokens + excluded.input_tokens,
    cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
    output_tokens = output_tokens + excluded.output_tokens
"""

_UNPRICED_UPSERT = """
INSERT INTO unpriced_rejections (model, day, rejected_count, last_seen_at)
VALUES ({p}, {p}, {p}, {p})
ON CONFLICT (model, day) DO UPDATE SET
    rejected_count = unpriced_rejections.rejected_count + excluded.rejected_count,
    last_seen_at = excluded.last_seen_at
"""

_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"


@dataclass
class IngestOutcome:
    results: list[dict[str, Any]]
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)


class Ingestor:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.write_engine = engine.execution_options(tb_write=True)
        self.sqlite = is_sqlite(engine)
        self.limits = Limits(
            max_tokens=settings.max_tokens_per_event,
            max_metadata_bytes=settings.max_metadata_bytes,
            max_age=timedelta(days=settings.max_event_age_days),
            max_skew=timedelta(seconds=settings.max_clock_skew_seconds),
        )
        # Customers are never deleted, so a positive cache is safe.
        self._known_customers: set[str] = set()
        self._lock = threading.Lock()

    # -- public ----------------------------------------------------------------------------
    def ingest(self, items: Sequence[Any], now: datetime | None = None) -> IngestOutcome:
        now = now or datetime.now(UTC)
        n = len(items)
        status: list[str] = [ACCEPTED] * n
        errors: dict[int, dict[str, Any]] = {}
        ids: list[str | None] = [None] * n
        limits = self.limits
        first_index: dict[str, int] = {}
        valid: list[tuple[int, Event]] = []
        for i, obj in enumerate(items):
            ev, err = validate_event(obj, limits, now)
            if ev is None:
                status[i] = REJECTED
                errors[i] = err  # type: ignore[assignment]
                if type(obj) is dict:
                    eid = obj.get("event_id")
                    ids[i] = eid if type(eid) is str else None
                continue
            ids[i] = ev.event_id
            if ev.event_id in first_index:
                status[i] = DUPLICATE  # repeated inside the batch: counted once
                continue
            first_index[ev.event_id] = i
            valid.append((i, ev))

        inserted_models: dict[str, list[int]] = {}
        if valid:
            attempt = 0
            while True:
                attempt += 1
                try:
                    inserted_models = self._store(valid, status, errors, now)
                    break
                except Exception as exc:
                    if attempt < 3 and is_retryable_conflict(exc):
                        metrics.DB_ERRORS.labels("retry").inc()
                        log.warning(
                            "ingest transaction conflict, retrying", extra={"attempt": attempt}
                        )
                        for i, _ev in valid:
                            status[i] = ACCEPTED
                            errors.pop(i, None)
                        continue
                    raise

        out = IngestOutcome(results=[])
        reasons: dict[str, int] = {}
        results = out.results
        for i in range(n):
            st = status[i]
            res: dict[str, Any] = {"index": i, "event_id": ids[i], "status": st}
            if st == REJECTED:
                err = errors[i]
                res["error"] = err
                out.rejected += 1
                reasons[err["code"]] = reasons.get(err["code"], 0) + 1
            elif st == DUPLICATE:
                out.duplicates += 1
            else:
                out.accepted += 1
            results.append(res)
        out.reject_reasons = reasons
        self._record_metrics(out, inserted_models)
        return out

    # -- internals ---------------------------------------------------------------------------
    def _check_customers(self, conn: Connection, wanted: set[str]) -> set[str]:
        unknown = wanted - self._known_customers
        if unknown:
            found = {
                r[0]
                for r in conn.execute(
                    select(customers.c.customer_id).where(
                        customers.c.customer_id.in_(sorted(unknown))
                    )
                )
            }
            with self._lock:
                self._known_customers |= found
            unknown -= found
        return unknown

    def _store(
        self,
        valid: list[tuple[int, Event]],
        status: list[str],
        errors: dict[int, dict[str, Any]],
        now: datetime,
    ) -> dict[str, list[int]]:
        with self.write_engine.begin() as conn:
            unknown = self._check_customers(conn, {ev.customer_id for _, ev in valid})
            if not self.sqlite:
                # pricing reads vs. price loads: see pricing.store_prices
                conn.execute(text("LOCK TABLE prices IN SHARE MODE"))
            book = load_price_book(conn, sorted({ev.model for _, ev in valid}))
            lookup = book.lookup
            rows: list[tuple[Event, int]] = []
            index_of: dict[str, int] = {}
            unpriced: dict[tuple[str, str], int] = {}
            for i, ev in valid:
                if ev.customer_id in unknown:
                    status[i] = REJECTED
                    errors[i] = error(
                        "unknown_customer", "customer_id", f"unknown customer_id {ev.customer_id!r}"
                    )
                    continue
                price_id = lookup(ev.model, ev.occurred_at)
                if price_id is None:
                    status[i] = REJECTED
                    errors[i] = error(
                        "no_price",
                        "model",
                        f"no price for model {ev.model!r} at {ev.occurred_at.isoformat()}; "
                        "event not stored, retry after the price is loaded",
                    )
                    day_key = (ev.model, ev.occurred_at.strftime("%Y-%m-%d"))
                    unpriced[day_key] = unpriced.get(day_key, 0) + 1
                    continue
                rows.append((ev, price_id))
                index_of[ev.event_id] = i
            rows.sort(key=lambda r: r[0].event_id)

            if self.sqlite:
                inserted = self._insert_sqlite(conn, rows, now)
            else:
                inserted = self._insert_pg(conn, rows)

            rollup: dict[tuple[str, datetime, str, int], list[int]] = {}
            inserted_models: dict[str, list[int]] = {}
            for ev, price_id in rows:
                if ev.event_id not in inserted:
                    status[index_of[ev.event_id]] = DUPLICATE
                    continue
                hour = ev.occurred_at.replace(minute=0, second=0, microsecond=0)
                key = (ev.customer_id, hour, ev.model, price_id)
                agg = rollup.get(key)
                if agg is None:
                    rollup[key] = [1, ev.input_tokens, ev.cached_input_tokens, ev.output_tokens]
                else:
                    agg[0] += 1
                    agg[1] += ev.input_tokens
                    agg[2] += ev.cached_input_tokens
                    agg[3] += ev.output_tokens
                m = inserted_models.get(ev.model)
                if m is None:
                    inserted_models[ev.model] = [
                        ev.input_tokens - ev.cached_input_tokens,
                        ev.cached_input_tokens,
                        ev.output_tokens,
                    ]
                else:
                    m[0] += ev.input_tokens - ev.cached_input_tokens
                    m[1] += ev.cached_input_tokens
                    m[2] += ev.output_tokens
            if rollup:
                self._upsert_rollup(conn, rollup)
            if unpriced:
                self._record_unpriced(conn, unpriced, now)
        return inserted_models

    def _insert_pg(self, conn: Connection, rows: list[tuple[Event, int]]) -> set[str]:
        if not rows:
            return set()
        cols: list[list[Any]] = [[] for _ in range(11)]
        (c_id, c_cust, c_key, c_proj, c_model, c_in, c_cached, c_out, c_ts, c_price, c_meta) = cols
        for ev, price_id in rows:
            c_id.append(ev.event_id)
            c_cust.append(ev.customer_id)
            c_key.append(ev.api_key_id)
            c_proj.append(ev.project)
            c_model.append(ev.model)
            c_in.append(ev.input_tokens)
            c_cached.append(ev.cached_input_tokens)
            c_out.append(ev.output_tokens)
            c_ts.append(ev.occurred_at)
            c_price.append(price_id)
            c_meta.append(ev.metadata)
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            cur.execute(_PG_INSERT_EVENTS, cols)
            return {r[0] for r in cur.fetchall()}

    def _insert_sqlite(
        self, conn: Connection, rows: list[tuple[Event, int]], now: datetime
    ) -> set[str]:
        raw = conn.connection.driver_connection
        assert raw is not None
        received = now.astimezone(UTC).strftime(_SQLITE_TS)
        inserted: set[str] = set()
        cur = raw.cursor()
        try:
            for ev, price_id in rows:
                cur.execute(
                    _SQLITE_INSERT_EVENT,
                    (
                        ev.event_id,
                        ev.customer_id,
                        ev.api_key_id,
                        ev.project,
                        ev.model,
                        ev.input_tokens,
                        ev.cached_input_tokens,
                        ev.output_tokens,
                        ev.occurred_at.strftime(_SQLITE_TS),
                        received,
                        price_id,
                        ev.metadata,
                    ),
                )
                if cur.rowcount == 1:
                    inserted.add(ev.event_id)
        finally:
            cur.close()
        return inserted

    def _upsert_rollup(
        self, conn: Connection, rollup: dict[tuple[str, datetime, str, int], list[int]]
    ) -> None:
        keys = sorted(rollup)
        raw = conn.connection.driver_connection
        assert raw is not None
        if self.sqlite:
            cur = raw.cursor()
            try:
                cur.executemany(
                    _SQLITE_UPSERT_ROLLUP,
                    [
                        (c, h.strftime(_SQLITE_TS), m, p, *rollup[(c, h, m, p)])
                        for (c, h, m, p) in keys
                    ],
                )
            finally:
                cur.close()
            return
        cols: list[list[Any]] = [[] for _ in range(8)]
        for key in keys:
            agg = rollup[key]
            for j in range(4):
                cols[j].append(key[j])
                cols[4 + j].append(agg[j])
        with raw.cursor() as cur:
            cur.execute(_PG_UPSERT_ROLLUP, cols)

    def _record_unpriced(
        self, conn: Connection, unpriced: dict[tuple[str, str], int], now: datetime
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        if self.sqlite:
            sql = _UNPRICED_UPSERT.format(p="?")
            ts: Any = now.astimezone(UTC).strftime(_SQLITE_TS)
        else:
            sql = _UNPRICED_UPSERT.format(p="%s")
            ts = now
        cur = raw.cursor()
        try:
            for (model, day), count in sorted(unpriced.items()):
                cur.execute(sql, (model, day, count, ts))
        finally:
            cur.close()

    @staticmethod
    def _record_metrics(out: IngestOutcome, inserted_models: dict[str, list[int]]) -> None:
        if out.accepted:
            metrics.EVENTS.labels(ACCEPTED).inc(out.accepted)
        if out.duplicates:
            metrics.EVENTS.labels(DUPLICATE).inc(out.duplicates)
        if out.rejected:
            metrics.EVENTS.labels(REJECTED).inc(out.rejected)
            for reason, count in out.reject_reasons.items():
                metrics.REJECTED.labels(reason).inc(count)
        for model, (uncached, cached, output) in inserted_models.items():
            if uncached:
                metrics.TOKENS.labels(model, "input").inc(uncached)
            if cached:
                metrics.TOKENS.labels(model, "cached_input").inc(cached)
            if output:
                metrics.TOKENS.labels(model, "output").inc(output)

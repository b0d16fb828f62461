"""Usage event ingest: validate, price, store exactly once, roll up — in one transaction.

Exactly-once: ``usage_events.event_id`` is the primary key and rows are written with
``INSERT ... ON CONFLICT (event_id) DO NOTHING``; only rows the database reports as newly
inserted (RETURNING on PostgreSQL, the row count on SQLite) are added to the hourly
rollup, in the same transaction. Copies of one event racing on different workers or
hosts are therefore counted once: the database's unique index decides the winner.

Lock ordering: events are inserted sorted by event_id and rollup rows are
upserted sorted by key, so concurrent batches never deadlock on each other; a deadlock
or serialization failure would be retried anyway.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select

from . import conflicts, metrics
from .config import Settings
from .db import is_retryable_conflict, is_sqlite, make_engine
from .pricing import PriceBook, load_price_book
from .schema import customers
from .validation import Event, Limits, error, validate_event

log = logging.getLogger(__name__)

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
REJECTED = "rejected"

_PG_COLUMNS = (
    ("event_id", "text"),
    ("customer_id", "text"),
    ("api_key_id", "text"),
    ("project", "text"),
    ("model", "text"),
    ("input_tokens", "int8"),
    ("cached_input_tokens", "int8"),
    ("output_tokens", "int8"),
    ("occurred_at", "timestamptz"),
    ("price_id", "int4"),
    ("metadata", "text"),
    ("content_digest", "text"),
)

# One statement: insert the events (sorted by event_id), roll up ONLY the rows actually
# inserted (RETURNING of the insert) into usage_hourly and usage_daily, return their ids.
# Each column travels as one JSON array parameter (cheap to build, parsed in C). The
# price-book guard makes it write nothing (and return STALE_MARKER) when prices were
# added since the caller priced the batch; it runs after LOCK prices IN SHARE MODE, so
# its snapshot includes every committed price load.
_PG_INGEST = f"""
WITH src AS (
    SELECT {", ".join(f"c{i}::{t} AS {n}" for i, (n, t) in enumerate(_PG_COLUMNS))}
    FROM ROWS FROM ({", ".join("json_array_elements_text(%s::json)" for _ in _PG_COLUMNS)})
        AS t({", ".join(f"c{i}" for i in range(len(_PG_COLUMNS)))})
    WHERE (SELECT coalesce(max(price_id), 0) FROM prices) = %s
), ins AS (
    INSERT INTO usage_events ({", ".join(n for n, _ in _PG_COLUMNS)})
    SELECT * FROM src ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, customer_id, model, price_id, occurred_at, input_tokens,
        cached_input_tokens, output_tokens
), agg AS (
    SELECT customer_id, date_trunc('hour', occurred_at) AS hour, model, price_id,
        count(*) AS n, sum(input_tokens) AS i, sum(cached_input_tokens) AS ci,
        sum(output_tokens) AS o
    FROM ins GROUP BY 1, 2, 3, 4
), agg_day AS (
    SELECT customer_id, date_trunc('day', hour) AS day, model, price_id, sum(n) AS n,
        sum(i) AS i, sum(ci) AS ci, sum(o) AS o
    FROM agg GROUP BY 1, 2, 3, 4
), up_day AS (
    INSERT INTO usage_daily AS d (customer_id, day, model, price_id, shard, event_count,
        input_tokens, cached_input_tokens, output_tokens)
    SELECT customer_id, day, model, price_id, pg_backend_pid() %% 8, n, i, ci, o FROM agg_day
    ORDER BY customer_id, day, model, price_id
    ON CONFLICT (customer_id, day, model, price_id, shard) DO UPDATE SET
        event_count = d.event_count + EXCLUDED.event_count,
        input_tokens = d.input_tokens + EXCLUDED.input_tokens,
        cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens,
        output_tokens = d.output_tokens + EXCLUDED.output_tokens
), up AS (
    INSERT INTO usage_hourly AS u (customer_id, hour, model, price_id, invoice_id, shard,
        event_count, input_tokens, cached_input_tokens, output_tokens)
    SELECT customer_id, hour, model, price_id, 0, pg_backend_pid() %% 8, n, i, ci, o FROM agg
    ORDER BY customer_id, hour, model, price_id
    ON CONFLICT (customer_id, hour, model, price_id, invoice_id, shard) DO UPDATE SET
        event_count = u.event_count + EXCLUDED.event_count,
        input_tokens = u.input_tokens + EXCLUDED.input_tokens,
        cached_input_tokens = u.cached_input_tokens + EXCLUDED.cached_input_tokens,
        output_tokens = u.output_tokens + EXCLUDED.output_tokens
)
SELECT event_id FROM ins
UNION ALL
SELECT E'\\n' WHERE (SELECT coalesce(max(price_id), 0) FROM prices) <> %s
"""
# never a valid event_id (not printable): "the price book changed, nothing was written"
STALE_MARKER = "\n"
BOOK_TTL = 5.0

_PG_GUARD = "SELECT E'\\n' WHERE (SELECT coalesce(max(price_id), 0) FROM prices) <> %s"
_PG_UNPRICED = """
INSERT INTO unpriced_rejections AS r (model, day, rejected_count, last_seen_at)
SELECT %s, %s, %s, %s WHERE (SELECT coalesce(max(price_id), 0) FROM prices) = %s
ON CONFLICT (model, day) DO UPDATE SET
    rejected_count = r.rejected_count + EXCLUDED.rejected_count,
    last_seen_at = EXCLUDED.last_seen_at
"""
_PG_ALL_PRICES = "SELECT price_id, model, effective_from FROM prices"

_PG_CUSTOMERS = "SELECT customer_id FROM customers WHERE customer_id = ANY(%s::text[])"

_SQLITE_INSERT_EVENT = """
INSERT INTO usage_events (event_id, customer_id, api_key_id, project, model, input_tokens,
    cached_input_tokens, output_tokens, occurred_at, received_at, price_id, metadata,
    content_digest)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING
"""

_SQLITE_UPSERT_DAILY = """
INSERT INTO usage_daily (customer_id, day, model, price_id, event_count,
    input_tokens, cached_input_tokens, output_tokens)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (customer_id, day, model, price_id, shard) DO UPDATE SET
    event_count = event_count + excluded.event_count,
    input_tokens = input_tokens + excluded.input_tokens,
    cached_input_tokens = cached_input_tokens + excluded.cached_input_tokens,
    output_tokens = output_tokens + excluded.output_tokens
"""

_SQLITE_UPSERT_ROLLUP = """
INSERT INTO usage_hourly (customer_id, hour, model, price_id, invoice_id, event_count,
    input_tokens, cached_input_tokens, output_tokens)
VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)
ON CONFLICT (customer_id, hour, model, price_id, invoice_id, shard) DO UPDATE SET
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
_json_dumps = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


@dataclass
class IngestOutcome:
    results: list[dict[str, Any]]
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)


class Ingestor:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.write_engine = engine.execution_options(tb_write=True)
        self.sqlite = is_sqlite(engine)
        # PostgreSQL hot path: autocommit connections (explicit BEGIN/COMMIT inside
        # pipelines) from a pool of their own, without pre-ping round trips.
        self.hot_engine = (
            engine
            if self.sqlite
            else make_engine(settings, isolation_level="AUTOCOMMIT", pool_pre_ping=False)
        )
        self.limits = Limits(
            max_tokens=settings.max_tokens_per_event,
            max_metadata_bytes=settings.max_metadata_bytes,
            max_age=timedelta(days=settings.max_event_age_days),
            max_skew=timedelta(seconds=settings.max_clock_skew_seconds),
        )
        # Customers are never deleted, so a positive cache is safe.
        self._known_customers: set[str] = set()
        self._lock = threading.Lock()
        self._book: tuple[PriceBook, int, float] | None = None

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
        repeats: list[tuple[int, Event]] = []
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
                status[i] = DUPLICATE  # repeated inside the batch: settled below
                repeats.append((i, ev))
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
        self._settle_repeats(valid, repeats, first_index, status, errors, now)

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
            elif st == CONFLICT:
                res["error"] = errors[i]
                out.conflicts += 1
            else:
                out.accepted += 1
            results.append(res)
        out.reject_reasons = reasons
        self._record_metrics(out, inserted_models)
        return out

    # -- internals ---------------------------------------------------------------------------
    def _settle_repeats(
        self,
        valid: list[tuple[int, Event]],
        repeats: list[tuple[int, Event]],
        first_index: dict[str, int],
        status: list[str],
        errors: dict[int, dict[str, Any]],
        now: datetime,
    ) -> None:
        """Each event whose id was already taken is a duplicate or a conflict."""
        candidates = [(i, ev) for i, ev in valid if status[i] == DUPLICATE]
        for i, ev in repeats:
            first = first_index[ev.event_id]
            if status[first] == REJECTED:  # nothing was stored under this id
                status[i] = REJECTED
                errors[i] = errors[first]
            else:
                candidates.append((i, ev))
        if not candidates:
            return
        for i in conflicts.settle(self.write_engine, candidates, now):
            status[i] = CONFLICT
            errors[i] = error(
                "conflicting_resend",
                "event_id",
                "event_id already stored with different billable content; the stored "
                "event stands and is billed, this one was not stored "
                "(GET /v1/usage/conflicts lists it)",
            )

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

    @staticmethod
    def _classify(
        valid: list[tuple[int, Event]],
        unknown: set[str],
        lookup: Callable[[str, datetime], int | None],
        status: list[str],
        errors: dict[int, dict[str, Any]],
    ) -> tuple[list[tuple[Event, int]], dict[str, int], dict[tuple[str, str], int]]:
        """Reject unknown customers and unpriced events; price the rest."""
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
        return rows, index_of, unpriced

    @staticmethod
    def _finish_statuses(
        rows: list[tuple[Event, int]],
        inserted: set[str],
        index_of: dict[str, int],
        status: list[str],
    ) -> dict[str, list[int]]:
        inserted_models: dict[str, list[int]] = {}
        for ev, _price_id in rows:
            if ev.event_id not in inserted:
                status[index_of[ev.event_id]] = DUPLICATE
                continue
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
        return inserted_models

    def _store(
        self,
        valid: list[tuple[int, Event]],
        status: list[str],
        errors: dict[int, dict[str, Any]],
        now: datetime,
    ) -> dict[str, list[int]]:
        if not self.sqlite:
            return self._store_pg(valid, status, errors, now)
        with self.write_engine.begin() as conn:
            unknown = self._check_customers(conn, {ev.customer_id for _, ev in valid})
            book = load_price_book(conn, sorted({ev.model for _, ev in valid}))
            rows, index_of, unpriced = self._classify(valid, unknown, book.lookup, status, errors)
            inserted = self._insert_sqlite(conn, rows, now)
            rollup: dict[tuple[str, datetime, str, int], list[int]] = {}
            for ev, price_id in rows:
                if ev.event_id not in inserted:
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
            if rollup:
                self._upsert_rollup(conn, rollup)
            if unpriced:
                self._record_unpriced(conn, unpriced, now)
        return self._finish_statuses(rows, inserted, index_of, status)

    def _price_book(self, force: bool = False) -> tuple[PriceBook, int]:
        """The whole price book, cached per process; ``version`` = max(price_id).

        Prices are append-only, so max(price_id) identifies the book. Every ingest
        statement re-checks it under the prices lock (see _PG_INGEST): a stale cache can
        never price or reject an event.
        """
        cached = self._book
        if not force and cached is not None and time.monotonic() - cached[2] < BOOK_TTL:
            return cached[0], cached[1]
        with self.hot_engine.connect() as sa_conn:
            raw = sa_conn.connection.driver_connection
            assert raw is not None
            try:
                rows = raw.execute(_PG_ALL_PRICES).fetchall()
            except BaseException:
                sa_conn.invalidate()
                raise
        version = max((r[0] for r in rows), default=0)
        book = PriceBook((r[0], r[1], r[2]) for r in rows)
        self._book = (book, version, time.monotonic())
        return book, version

    def _pg_known_customers(self, wanted: set[str]) -> set[str]:
        """Returns the unknown ones (positive results are cached: customers are never deleted)."""
        unknown = wanted - self._known_customers
        if not unknown:
            return unknown
        with self.hot_engine.connect() as sa_conn:
            raw = sa_conn.connection.driver_connection
            assert raw is not None
            try:
                found = {r[0] for r in raw.execute(_PG_CUSTOMERS, (sorted(unknown),)).fetchall()}
            except BaseException:
                sa_conn.invalidate()
                raise
        with self._lock:
            self._known_customers |= found
        return unknown - found

    def _store_pg(
        self,
        valid: list[tuple[int, Event]],
        status: list[str],
        errors: dict[int, dict[str, Any]],
        now: datetime,
    ) -> dict[str, list[int]]:
        """Usually ONE round trip on an autocommit connection, as one pipeline:
        ``BEGIN; LOCK prices IN SHARE MODE; <insert + rollups, guarded by the price book
        version>; <unpriced counters, same guard>; COMMIT``.

        Prices and known customers come from per-process caches; if the price book changed
        meanwhile the guarded statements write nothing, and the batch is re-priced with a
        fresh book and sent again. No pre-ping: a dead pooled connection fails the
        round trip, is discarded and the request is tried once more (idempotent).
        """
        import psycopg

        for attempt in (1, 2, 3):
            try:
                unknown = self._pg_known_customers({ev.customer_id for _, ev in valid})
                book, version = self._price_book(force=attempt > 1)
                rows, index_of, unpriced = self._classify(
                    valid, unknown, book.lookup, status, errors
                )
                if unpriced and attempt == 1:
                    # never reject on a possibly stale cache: re-check with a fresh book
                    for i, _ev in valid:
                        status[i] = ACCEPTED
                        errors.pop(i, None)
                    book, version = self._price_book(force=True)
                    rows, index_of, unpriced = self._classify(
                        valid, unknown, book.lookup, status, errors
                    )
                inserted, stale = self._pg_write(rows, unpriced, version, now)
            except psycopg.OperationalError:
                if attempt == 3:
                    raise
                metrics.DB_ERRORS.labels("retry").inc()
                for i, _ev in valid:
                    status[i] = ACCEPTED
                    errors.pop(i, None)
                continue
            if stale:  # a price was loaded meanwhile: nothing was written, re-price
                for i, _ev in valid:
                    status[i] = ACCEPTED
                    errors.pop(i, None)
                continue
            return self._finish_statuses(rows, inserted, index_of, status)
        raise psycopg.OperationalError("price book kept changing; retry")

    def _pg_write(
        self,
        rows: list[tuple[Event, int]],
        unpriced: dict[tuple[str, str], int],
        version: int,
        now: datetime,
    ) -> tuple[set[str], bool]:
        with self.hot_engine.connect() as sa_conn:
            raw = sa_conn.connection.driver_connection
            assert raw is not None
            try:
                with raw.pipeline():
                    cur = raw.cursor()
                    cur.execute("BEGIN")
                    cur.execute("LOCK TABLE prices IN SHARE MODE")
                    c_ins = raw.cursor()
                    c_guard = raw.cursor()
                    if rows:
                        c_ins.execute(_PG_INGEST, [*self._pg_columns(rows), version, version])
                    else:
                        c_guard.execute(_PG_GUARD, (version,))
                    if unpriced:
                        cur.executemany(
                            _PG_UNPRICED,
                            [(m, d, n, now, version) for (m, d), n in sorted(unpriced.items())],
                        )
                    cur.execute("COMMIT")
                result = c_ins.fetchall() if rows else c_guard.fetchall()
            except BaseException:
                if raw.closed or raw.broken:
                    sa_conn.invalidate()
                else:
                    raw.rollback()
                raise
        ids = {r[0] for r in result}
        stale = STALE_MARKER in ids
        ids.discard(STALE_MARKER)
        return ids, stale

    @staticmethod
    def _pg_columns(rows: list[tuple[Event, int]]) -> list[str]:
        dumps = _json_dumps
        return [
            dumps([ev.event_id for ev, _ in rows]),
            dumps([ev.customer_id for ev, _ in rows]),
            dumps([ev.api_key_id for ev, _ in rows]),
            dumps([ev.project for ev, _ in rows]),
            dumps([ev.model for ev, _ in rows]),
            dumps([ev.input_tokens for ev, _ in rows]),
            dumps([ev.cached_input_tokens for ev, _ in rows]),
            dumps([ev.output_tokens for ev, _ in rows]),
            dumps([ev.occurred_at_text for ev, _ in rows]),
            dumps([p for _, p in rows]),
            dumps([ev.metadata for ev, _ in rows]),
            dumps([ev.digest for ev, _ in rows]),
        ]

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
                        ev.digest,
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
        raw = conn.connection.driver_connection
        assert raw is not None
        daily: dict[tuple[str, datetime, str, int], list[int]] = {}
        for (c, h, m, p), agg in rollup.items():
            key = (c, h.replace(hour=0), m, p)
            d = daily.get(key)
            if d is None:
                daily[key] = list(agg)
            else:
                for j in range(4):
                    d[j] += agg[j]
        cur = raw.cursor()
        try:
            cur.executemany(
                _SQLITE_UPSERT_DAILY,
                [
                    (c, d.strftime(_SQLITE_TS), m, p, *daily[(c, d, m, p)])
                    for (c, d, m, p) in sorted(daily)
                ],
            )
            cur.executemany(
                _SQLITE_UPSERT_ROLLUP,
                [
                    (c, h.strftime(_SQLITE_TS), m, p, *rollup[(c, h, m, p)])
                    for (c, h, m, p) in sorted(rollup)
                ],
            )
        finally:
            cur.close()

    def _record_unpriced(
        self, conn: Connection, unpriced: dict[tuple[str, str], int], now: datetime
    ) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        ts = now.astimezone(UTC).strftime(_SQLITE_TS)
        cur = raw.cursor()
        try:
            for (model, day), count in sorted(unpriced.items()):
                cur.execute(_UNPRICED_UPSERT.format(p="?"), (model, day, count, ts))
        finally:
            cur.close()

    @staticmethod
    def _record_metrics(out: IngestOutcome, inserted_models: dict[str, list[int]]) -> None:
        if out.accepted:
            metrics.EVENTS.labels(ACCEPTED).inc(out.accepted)
        if out.duplicates:
            metrics.EVENTS.labels(DUPLICATE).inc(out.duplicates)
        if out.conflicts:
            metrics.EVENTS.labels(CONFLICT).inc(out.conflicts)
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

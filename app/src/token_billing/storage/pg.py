"""PostgreSQL event store: usually ONE pipelined round trip per batch.

``BEGIN; LOCK prices IN SHARE MODE; <insert + pending sums, guarded by the price book
version>; <unpriced counters, same guard>; COMMIT`` on an autocommit connection of a
pool of its own, without pre-ping. Prices and known customers come from per-process
caches; if the price book changed meanwhile the guarded statements write nothing and
``StaleBook`` is raised (the ingest retry policy re-prices with a fresh book). A dead
pooled connection fails the round trip, is discarded, and the policy retries
(idempotent: ON CONFLICT).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from datetime import datetime

from ..config import Settings
from ..db import is_read_only_error, make_engine
from ..pricing import PriceBook
from ..validation import Event
from .common import (
    ACCEPTED,
    Errors,
    InsertedTokens,
    StaleBook,
    Statuses,
    classify,
    finish_statuses,
)
from .rollup import PENDING, Source, aggregate

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
)

# One statement: insert the events (sorted by event_id), append the hourly sums of ONLY
# the rows actually inserted (RETURNING of the insert) to usage_pending (rollup.py: a
# flush moves them into the rollups), and say which rows were inserted: ALL_MARKER when
# all were (the usual case: one row travels back), else their ids. Each column travels
# as one JSON array parameter (cheap to build, parsed in C). The price-book guard makes
# it write nothing (and return STALE_MARKER) when prices were added since the caller
# priced the batch; it runs after LOCK prices IN SHARE MODE, so its snapshot includes
# every committed price load.
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
), pending AS (
    {aggregate(PENDING, Source("ins"), "postgresql", None)}
)
SELECT event_id FROM ins WHERE (SELECT count(*) FROM ins) < %s
UNION ALL
SELECT E'\\r' WHERE (SELECT count(*) FROM ins) = %s
UNION ALL
SELECT E'\\n' WHERE (SELECT coalesce(max(price_id), 0) FROM prices) <> %s
"""
# never valid event_ids (not printable): "the price book changed, nothing was written",
# "every row was inserted"
STALE_MARKER = "\n"
ALL_MARKER = "\r"
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

_json_dumps = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


class PgStore:
    def __init__(self, settings: Settings) -> None:
        self.hot_engine = make_engine(settings, isolation_level="AUTOCOMMIT", pool_pre_ping=False)
        # Customers are never deleted, so a positive cache is safe.
        self._known_customers: set[str] = set()
        self._lock = threading.Lock()
        self._book: tuple[PriceBook, int, float] | None = None

    def store(
        self,
        valid: list[tuple[int, Event]],
        status: Statuses,
        errors: Errors,
        now: datetime,
        fresh: bool,
    ) -> InsertedTokens:
        unknown = self._known({ev.customer_id for _, ev in valid})
        book, version = self._price_book(force=fresh)
        rows, index_of, unpriced = classify(valid, unknown, book.lookup, status, errors)
        if unpriced and not fresh:
            # never reject on a possibly stale cache: re-check with a fresh book
            for i, _ev in valid:
                status[i] = ACCEPTED
                errors.pop(i, None)
            book, version = self._price_book(force=True)
            rows, index_of, unpriced = classify(valid, unknown, book.lookup, status, errors)
        taken = self._write(rows, unpriced, version, now)
        return finish_statuses(rows, taken, index_of, status)

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

    def _known(self, wanted: set[str]) -> set[str]:
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

    def _write(
        self,
        rows: list[tuple[Event, int]],
        unpriced: dict[tuple[str, str], int],
        version: int,
        now: datetime,
    ) -> set[str]:
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
                        n = len(rows)
                        c_ins.execute(_PG_INGEST, [*self._columns(rows), version, n, n, version])
                    else:
                        c_guard.execute(_PG_GUARD, (version,))
                    if unpriced:
                        cur.executemany(
                            _PG_UNPRICED,
                            [(m, d, n, now, version) for (m, d), n in sorted(unpriced.items())],
                        )
                    cur.execute("COMMIT")
                result = c_ins.fetchall() if rows else c_guard.fetchall()
            except BaseException as exc:
                if raw.closed or raw.broken:
                    sa_conn.invalidate()
                elif is_read_only_error(exc):
                    # a demoted leader: every pooled connection reaches it
                    sa_conn.invalidate()
                    self.hot_engine.dispose()
                else:
                    raw.rollback()
                raise
        marks = {r[0] for r in result}
        if STALE_MARKER in marks:
            raise StaleBook("the price book changed while the batch was priced")
        if ALL_MARKER in marks or not rows:
            return set()
        return {ev.event_id for ev, _ in rows} - marks

    @staticmethod
    def _columns(rows: list[tuple[Event, int]]) -> list[str]:
        """One JSON array per column of _PG_COLUMNS (the events transposed in C)."""
        dumps = _json_dumps
        ev_cols = list(zip(*(ev for ev, _ in rows), strict=True))
        by_name = dict(zip(Event._fields, ev_cols, strict=True))
        by_name["occurred_at"] = by_name["occurred_at_text"]
        by_name["price_id"] = tuple(p for _, p in rows)
        return [dumps(by_name[name]) for name, _ in _PG_COLUMNS]

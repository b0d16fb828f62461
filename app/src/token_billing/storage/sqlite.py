"""SQLite event store (the embedded quick start): one ``BEGIN IMMEDIATE`` transaction per
batch; the events' row counts say which were inserted, and only those are rolled up."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select

from ..pricing import load_price_book
from ..schema import customers
from ..validation import Event
from .common import Errors, InsertedTokens, Statuses, classify, finish_statuses
from .rollup import ROLLUPS, Source, upsert

_SQLITE_INSERT_EVENT = """
INSERT INTO usage_events (event_id, customer_id, api_key_id, project, model, input_tokens,
    cached_input_tokens, output_tokens, occurred_at, received_at, price_id, metadata)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING
"""

_UNPRICED_UPSERT = """
INSERT INTO unpriced_rejections (model, day, rejected_count, last_seen_at)
VALUES ({p}, {p}, {p}, {p})
ON CONFLICT (model, day) DO UPDATE SET
    rejected_count = unpriced_rejections.rejected_count + excluded.rejected_count,
    last_seen_at = excluded.last_seen_at
"""

_SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"


class SqliteStore:
    def __init__(self, engine: Engine) -> None:
        self.write_engine = engine.execution_options(tb_write=True)
        self._known_customers: set[str] = set()

    def store(
        self,
        valid: list[tuple[int, Event]],
        status: Statuses,
        errors: Errors,
        now: datetime,
        fresh: bool,
    ) -> InsertedTokens:
        with self.write_engine.begin() as conn:
            unknown = self._check_customers(conn, {ev.customer_id for _, ev in valid})
            book = load_price_book(conn, sorted({ev.model for _, ev in valid}))
            rows, index_of, unpriced = classify(valid, unknown, book.lookup, status, errors)
            inserted = self._insert(conn, rows, now)
            if inserted:
                self._upsert_rollups(conn, sorted(inserted))
            if unpriced:
                self._record_unpriced(conn, unpriced, now)
        taken = {ev.event_id for ev, _ in rows} - inserted
        return finish_statuses(rows, taken, index_of, status)

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
            self._known_customers |= found
            unknown -= found
        return unknown

    def _insert(self, conn: Connection, rows: list[tuple[Event, int]], now: datetime) -> set[str]:
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

    @staticmethod
    def _upsert_rollups(conn: Connection, event_ids: list[str]) -> None:
        raw = conn.connection.driver_connection
        assert raw is not None
        source = (
            f"(SELECT * FROM usage_events WHERE event_id IN ({', '.join('?' * len(event_ids))}))"
        )
        cur = raw.cursor()
        try:
            for rollup in ROLLUPS:
                cur.execute(upsert(rollup, Source(source), "sqlite", "0"), event_ids)
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

"""Usage event ingest: validate, price, store exactly once with its rollup share.

Exactly-once: ``usage_events.event_id`` is the primary key and rows are written with
``INSERT ... ON CONFLICT (event_id) DO NOTHING``; only rows the database reports as newly
inserted (RETURNING on PostgreSQL, the row count on SQLite) are summed into the rollups
(SQLite) or into ``usage_pending`` (PostgreSQL, flushed later: ``storage.rollup``), in
the same transaction (``storage``). Copies of one event racing on different workers or
hosts are therefore counted once: the database's unique index decides the winner. An
event whose id was taken is then settled as a duplicate or a conflict (``conflicts``).

Lock ordering: events are inserted sorted by event_id and rollup rows are upserted
sorted by key, so concurrent batches and flushes never deadlock on each other; a deadlock or
serialization failure is retried anyway (``retry``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from . import conflicts, metrics
from .config import Settings
from .retry import with_retries
from .storage import event_store
from .storage.common import ACCEPTED, CONFLICT, DUPLICATE, REJECTED, InsertedTokens
from .validation import Event, Limits, error, validate_event

log = logging.getLogger(__name__)

__all__ = ["ACCEPTED", "CONFLICT", "DUPLICATE", "REJECTED", "IngestOutcome", "Ingestor"]


@dataclass
class IngestOutcome:
    """Per event (by index in the batch): its id if it had a string one, its status, and
    the error of a rejected or conflicting one."""

    event_ids: list[str | None]
    statuses: list[str]
    errors: dict[int, dict[str, Any]]
    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def results(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"index": i, "event_id": eid, "status": st}
            for i, (eid, st) in enumerate(zip(self.event_ids, self.statuses, strict=True))
        ]
        for i, err in self.errors.items():
            out[i]["error"] = err
        return out


class Ingestor:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.write_engine = engine.execution_options(tb_write=True)
        self.store = event_store(engine, settings)
        self.limits = Limits(
            max_tokens=settings.max_tokens_per_event,
            max_metadata_bytes=settings.max_metadata_bytes,
            max_age=timedelta(days=settings.max_event_age_days),
            max_skew=timedelta(seconds=settings.max_clock_skew_seconds),
        )

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

        inserted_models: InsertedTokens = {}
        if valid:

            def reset() -> None:
                for i, _ev in valid:
                    status[i] = ACCEPTED
                    errors.pop(i, None)

            inserted_models = with_retries(
                lambda n: self.store.store(valid, status, errors, now, fresh=n > 1), reset
            )
        self._settle_repeats(valid, repeats, first_index, status, errors, now)

        # only rejected and conflicting events keep their error
        errors = {i: err for i, err in errors.items() if status[i] in (REJECTED, CONFLICT)}
        out = IngestOutcome(ids, status, errors)
        reasons: dict[str, int] = {}
        for i, err in errors.items():
            if status[i] == REJECTED:
                reasons[err["code"]] = reasons.get(err["code"], 0) + 1
        out.rejected = status.count(REJECTED)
        out.conflicts = status.count(CONFLICT)
        out.duplicates = status.count(DUPLICATE)
        out.accepted = n - out.rejected - out.conflicts - out.duplicates
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

    @staticmethod
    def _record_metrics(out: IngestOutcome, inserted_models: InsertedTokens) -> None:
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

"""What both event stores share: statuses, pricing a batch, reading back the outcome."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from ..validation import Event, error

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
REJECTED = "rejected"

Statuses = list[str]
Errors = dict[int, dict[str, Any]]
# tokens stored per model: [uncached input, cached input, output]
InsertedTokens = dict[str, list[int]]


class StaleBook(ConnectionError):
    """Prices were added while the batch was priced; nothing was written. Retried; when
    it keeps happening the client gets 503 and retries (a ConnectionError is
    'unavailable')."""


class EventStore(Protocol):
    def store(
        self,
        valid: list[tuple[int, Event]],
        status: Statuses,
        errors: Errors,
        now: datetime,
        fresh: bool,
    ) -> InsertedTokens:
        """Write the valid events exactly once in one transaction, with their rollup sums.

        Sets ``status``/``errors`` of events it rejects (unknown customer, no price) and
        marks those whose id was taken DUPLICATE. ``fresh``: do not trust caches.
        Raises StaleBook or a database error; nothing is written then.
        """
        ...


def classify(
    valid: list[tuple[int, Event]],
    unknown: set[str],
    lookup: Callable[[str, datetime], int | None],
    status: Statuses,
    errors: Errors,
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


def finish_statuses(
    rows: list[tuple[Event, int]],
    taken: set[str],
    index_of: dict[str, int],
    status: Statuses,
) -> InsertedTokens:
    inserted_models: InsertedTokens = {}
    for ev, _price_id in rows:
        if ev.event_id in taken:  # already stored: not inserted
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

"""Conflicting resends: one ``event_id`` sent again with different billable content.

The event id is the idempotency key, so the first arrival is the one stored and billed;
a later copy is never stored. A copy with the same billable content is a ``duplicate``
(a retry, harmless). A copy with different content is a ``conflict``: the client reused
an id for another event, or changed an event after sending it. It is answered per event,
counted in ``token_billing_events_total{outcome="conflict"}`` and recorded in
``usage_conflicts`` (once per distinct content, with a resend count) until someone
settles it: the stored event stays billed as it is; a missing event must be sent again
under a new id.

Billable content = customer, project, model, the three token counts and the occurrence
instant (to the microsecond, whatever the offset it was written with). ``api_key_id``
and ``metadata`` do not change a bill and are not compared. The stored event's digest is
computed from its columns (1.3.0 stores none: that would cost every event a digest to
help only resends) unless an earlier release stored one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from .content import FIELDS, billable_content, digest
from .schema import usage_conflicts, usage_events
from .timeutil import iso
from .validation import Event


def _fields(obj: Any) -> tuple[Any, ...]:
    """The billable fields of an Event or a stored row (same attribute names)."""
    return tuple(getattr(obj, f) for f in FIELDS)


_STORED = (
    usage_events.c.event_id,
    usage_events.c.content_digest,
    usage_events.c.customer_id,
    usage_events.c.project,
    usage_events.c.model,
    usage_events.c.input_tokens,
    usage_events.c.cached_input_tokens,
    usage_events.c.output_tokens,
    usage_events.c.occurred_at,
)


def _stored_digest(row: Row[Any]) -> str:
    if row.content_digest is not None:
        return str(row.content_digest)
    # stored without a digest (before 0002, or since 1.3.0): its columns give the same one
    return digest(*_fields(row))


def settle(engine: Engine, candidates: Sequence[tuple[int, Event]], now: datetime) -> set[int]:
    """Compare events that were not stored (their id was taken) with what is stored.

    Returns the indexes of the conflicting ones and records them, in one transaction.
    Runs after the insert committed: a copy racing on another worker is settled by
    then, because the insert waited for it.
    """
    ids = sorted({ev.event_id for _, ev in candidates})
    with engine.begin() as conn:
        stored = {
            row.event_id: row
            for row in conn.execute(select(*_STORED).where(usage_events.c.event_id.in_(ids)))
        }
        found: list[tuple[int, Event, Row[Any]]] = []
        for i, ev in candidates:
            row = stored.get(ev.event_id)
            if row is not None and _stored_digest(row) != ev.digest:
                found.append((i, ev, row))
        if found:
            _record(conn, found, now)
    return {i for i, _, _ in found}


def _record(conn: Connection, found: list[tuple[int, Event, Row[Any]]], now: datetime) -> None:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for _, ev, stored in found:
        key = (ev.event_id, ev.digest)
        if key in rows:
            rows[key]["resend_count"] += 1
            continue
        rows[key] = {
            "event_id": ev.event_id,
            "content_digest": ev.digest,
            "customer_id": ev.customer_id,
            "stored_customer_id": stored.customer_id,
            "occurred_at": stored.occurred_at,
            "content": billable_content(*_fields(ev)),
            "stored_content": billable_content(*_fields(stored)),
            "first_seen_at": now,
            "last_seen_at": now,
            "resend_count": 1,
        }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for key in sorted(rows):
        stmt = dialect.insert(usage_conflicts).values(rows[key])
        stmt = stmt.on_conflict_do_update(
            index_elements=[usage_conflicts.c.event_id, usage_conflicts.c.content_digest],
            set_={
                "resend_count": usage_conflicts.c.resend_count + stmt.excluded.resend_count,
                "last_seen_at": stmt.excluded.last_seen_at,
            },
        )
        conn.execute(stmt)


def list_conflicts(
    conn: Connection, start: datetime, end: datetime, customer_id: str | None = None
) -> list[dict[str, Any]]:
    """Conflicts whose stored event occurred in [start, end), oldest first."""
    c = usage_conflicts.c
    q = (
        select(usage_conflicts)
        .where(c.occurred_at >= start, c.occurred_at < end)
        .order_by(c.occurred_at, c.event_id, c.first_seen_at)
    )
    if customer_id is not None:
        q = q.where(or_(c.customer_id == customer_id, c.stored_customer_id == customer_id))
    return [
        {
            "event_id": r["event_id"],
            "customer_id": r["stored_customer_id"],
            "occurred_at": iso(r["occurred_at"]),
            "stored": dict(zip(FIELDS, json.loads(r["stored_content"]), strict=True)),
            "resent": dict(zip(FIELDS, json.loads(r["content"]), strict=True)),
            "resent_digest": r["content_digest"],
            "resend_count": int(r["resend_count"]),
            "first_seen_at": iso(r["first_seen_at"]),
            "last_seen_at": iso(r["last_seen_at"]),
        }
        for r in conn.execute(q).mappings()
    ]

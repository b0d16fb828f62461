"""Event storage behind one interface (``common.EventStore``): PostgreSQL's one-round-trip
pipeline (``pg``) and SQLite's (``sqlite``)."""

from __future__ import annotations

from sqlalchemy import Engine

from ..config import Settings
from ..db import is_sqlite
from .common import EventStore


def event_store(engine: Engine, settings: Settings) -> EventStore:
    if is_sqlite(engine):
        from .sqlite import SqliteStore

        return SqliteStore(engine)
    from .pg import PgStore

    return PgStore(settings)

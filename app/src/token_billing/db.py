"""Engine construction and database error classification."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from .config import Settings

log = logging.getLogger(__name__)


def make_engine(settings: Settings, **overrides: Any) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, **overrides)
    opts = [
        "-c timezone=UTC",
        f"-c statement_timeout={settings.db_statement_timeout_ms}",
    ]
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "pool_recycle": 1800,
        "connect_args": {
            "connect_timeout": settings.db_connect_timeout,
            "options": " ".join(opts),
            "application_name": "token-billing",
        },
    }
    kwargs.update(overrides)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "handle_error")
    def _read_only_is_a_disconnect(context: Any) -> None:
        # The server this pooled connection reaches is a replica now: drop the pool's
        # connections, so that the next ones go through the balancer to the new leader.
        if is_read_only_error(context.original_exception):
            context.is_disconnect = True

    return engine


def _sqlite_engine(settings: Settings, **overrides: Any) -> Engine:
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        "connect_args": {"timeout": 30, "check_same_thread": False},
    }
    kwargs.update(overrides)
    engine = create_engine(settings.database_url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module: we emit BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers start with BEGIN IMMEDIATE so that a read-then-write transaction never
        # fails to upgrade its lock; SQLite serialises writers (busy_timeout waits).
        if conn.get_execution_options().get("tb_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _psycopg_errors() -> tuple[type[BaseException], ...]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a hard dependency
        return ()
    return (psycopg.OperationalError, psycopg.InterfaceError)


_PSYCOPG_UNAVAILABLE = _psycopg_errors()


def is_read_only_error(exc: BaseException) -> bool:
    """PostgreSQL's SQLSTATE 25006: a write reached a server that is read-only, a leader
    demoted by a failover or switchover before the balancers moved (-> 503, reconnect)."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return getattr(orig, "sqlstate", None) == "25006"


def is_unavailable_error(exc: BaseException) -> bool:
    """True when the error means 'the database cannot be reached right now' (-> 503)."""
    if isinstance(exc, sa_exc.TimeoutError):  # pool exhausted
        return True
    if is_read_only_error(exc):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            msg = str(exc.orig).lower() if exc.orig is not None else ""
            # SQLite: a locked database after busy_timeout is "unavailable" too
            return "syntax error" not in msg and "no such" not in msg
        return False
    if _PSYCOPG_UNAVAILABLE and isinstance(exc, _PSYCOPG_UNAVAILABLE):
        return True
    return isinstance(exc, ConnectionError)


def is_retryable_conflict(exc: BaseException) -> bool:
    """Deadlock / serialization failure: retry the whole transaction."""
    try:
        from psycopg import errors as pg_errors
    except ImportError:  # pragma: no cover
        return False
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    return isinstance(orig, pg_errors.DeadlockDetected | pg_errors.SerializationFailure)


def is_db_error(exc: BaseException) -> bool:
    from sqlalchemy.exc import DBAPIError

    return isinstance(exc, DBAPIError)

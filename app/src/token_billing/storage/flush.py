"""Moving pending usage into the rollups (PostgreSQL; the design is in ``rollup``).

``flush`` runs in the caller's transaction (invoicing calls it first, so an invoice sees
every event committed before it); ``Flusher`` is each gunicorn worker's background
thread. Both take one advisory lock, so flushes never run concurrently and the
background one simply skips a turn while another holds it.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine

from .rollup import FLUSH, FLUSH_BATCH, FLUSH_LOCK, FLUSH_SOME

log = logging.getLogger(__name__)


def flush(conn: Connection, wait: bool = True, batch: bool = False) -> int | None:
    """Move the pending rows committed so far (``batch``: at most FLUSH_BATCH of them);
    the number moved, or None if ``wait`` is False and another flush holds the lock.
    A no-op on SQLite (nothing is ever pending there)."""
    if conn.dialect.name != "postgresql":
        return 0
    fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    if conn.exec_driver_sql(f"SELECT {fn}({FLUSH_LOCK})").scalar() is False:
        return None
    return int(conn.exec_driver_sql(FLUSH_SOME if batch else FLUSH).scalar_one())


class Flusher:
    def __init__(self, engine: Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rollup-flusher", daemon=True)

    def start(self) -> Flusher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> int | None:
        """One round: batches of FLUSH_BATCH, each its own transaction, until the backlog
        is gone or another flush holds the lock."""
        moved: int | None = 0
        while True:
            with self.engine.begin() as conn:
                n = flush(conn, wait=False, batch=True)
            if n is None:
                moved = moved or None
                break
            moved = (moved or 0) + n
            if n < FLUSH_BATCH:
                break
        if moved:
            from .. import metrics  # after the multiprocess directory is set (app.py)

            metrics.ROLLUP_FLUSHED.inc(moved)
            # Every row of usage_pending dies within a second; readers scan it, so its
            # dead rows are reclaimed now rather than at autovacuum's next round.
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (SKIP_LOCKED) usage_pending")
        return moved

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            try:
                self.run_once()
                delay = self.interval
            except Exception as exc:  # noqa: BLE001 - keep flushing once the database is back
                log.warning("rollup flush failed, retrying: %s", exc)
                delay = min(max(delay * 2, 1.0), 30.0)

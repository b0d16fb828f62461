"""The one retry policy for writes: up to ATTEMPTS tries of a whole transaction, for
errors that say "the same transaction may well succeed now" and nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from . import metrics
from .db import is_read_only_error, is_retryable_conflict

T = TypeVar("T")
ATTEMPTS = 3
log = logging.getLogger(__name__)


def is_retryable(exc: BaseException) -> bool:
    """Deadlock or serialization failure; prices changed under the batch (StaleBook);
    a dead pooled connection on the PostgreSQL hot path (it has no pre-ping), or one
    that reached a demoted leader (dropped: the retry connects anew)."""
    from .storage.common import StaleBook

    if isinstance(exc, StaleBook) or is_retryable_conflict(exc) or is_read_only_error(exc):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, psycopg.OperationalError)


def with_retries(attempt: Callable[[int], T], reset: Callable[[], None]) -> T:
    """``attempt(n)`` for n = 1.. until it returns; ``reset()`` before each retry."""
    for n in range(1, ATTEMPTS + 1):
        try:
            return attempt(n)
        except Exception as exc:
            if n == ATTEMPTS or not is_retryable(exc):
                raise
            metrics.DB_ERRORS.labels("retry").inc()
            log.warning(
                "write transaction failed, retrying",
                extra={"attempt": n, "error": type(exc).__name__},
            )
            reset()
    raise AssertionError("unreachable")  # pragma: no cover

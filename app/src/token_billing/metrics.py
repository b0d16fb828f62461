"""Prometheus metrics, correct under several gunicorn workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (the shipped gunicorn config sets it up, wipes it
at start and marks dead workers in ``child_exit``) every worker writes its samples to
mmap files there and ``/metrics`` aggregates all of them, whichever worker answers.
The variable must be set before this module is imported: see ``app.create_app``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

EVENTS = Counter(
    "token_billing_events",
    "Usage events by ingest outcome (accepted, duplicate, conflict, rejected)",
    ["outcome"],
)
REJECTED = Counter(
    "token_billing_events_rejected",
    "Rejected usage events by reason (error code, e.g. no_price, unknown_customer)",
    ["reason"],
)
TOKENS = Counter(
    "token_billing_tokens",
    "Accepted tokens by model and kind (input = uncached input, cached_input, output)",
    ["model", "kind"],
)
REQUEST_LATENCY = Histogram(
    "token_billing_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DB_ERRORS = Counter(
    "token_billing_db_errors",
    "Database errors by kind (unavailable, retry, other)",
    ["kind"],
)
INVOICES = Counter("token_billing_invoices_issued", "Invoices issued")
ROLLUP_FLUSHED = Counter(
    "token_billing_rollup_flushed_rows",
    "Pending hourly rows moved into the rollups by this worker's flusher",
)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render() -> tuple[bytes, str]:
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

#!/usr/bin/env python3
"""What the rollups cost PostgreSQL per 1,000 ingested events, phase by phase.

Prints figures (not a pass/fail test). On one connection of a throwaway durable cluster
(the same settings as bench.py), for a replay (occurred_at over 20 days) and for live
traffic (the last minute), the batches of bench.py go through the service's own
statements, and the PostgreSQL server CPU of each phase is read from /proc:

- the ingest statement without its pending append (the events alone), on batches of
  its own;
- the ingest statement as shipped (events + hourly sums appended to usage_pending);
- the flush, split into its three parts (take the pending rows, upsert the hourly
  rollup, upsert the daily rollup), once per --flush-every batches (75 = about one
  second of bench.py's ingest), and the VACUUM of usage_pending that follows it;
- for scale, the cheapest way the same rollup rows could be written: a plain INSERT of
  the final hourly and daily rows, sorted by key, into empty copies of both tables.

Run from the repository root: python app/bench/rollup_cost.py [--batches N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

import bench
from token_billing.config import load_settings
from token_billing.storage import pg as pgstore
from token_billing.storage.rollup import (
    _MOVED,
    PENDING,
    ROLLUPS,
    TAKE_PENDING,
    Rollup,
    Source,
    aggregate,
    upsert,
)
from token_billing.validation import Event, Limits, validate_event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # app/: the tests' pgcluster
from tests.pgcluster import PgCluster

_PENDING_APPEND = aggregate(PENDING, Source("ins"), "postgresql", None)
_EVENTS_ONLY = pgstore._PG_INGEST.replace(_PENDING_APPEND, "SELECT 1")
assert _EVENTS_ONLY != pgstore._PG_INGEST, "the ingest statement no longer has its pending CTE"
_TAKE_INTO_TEMP = (
    "CREATE TEMP TABLE moved ON COMMIT DROP AS "
    f"WITH m AS ({TAKE_PENDING.format(where='')}) SELECT * FROM m"
)


def _grouping_alone(r: Rollup) -> str:
    """The SELECT part of the flush's upsert, counted instead of written."""
    select = aggregate(r, _MOVED, "postgresql", "0").split("\n", 1)[1]
    return f"SELECT count(*) FROM ({select}) AS grouped"


def server_cpu(postmaster: int) -> float:
    """CPU seconds (user + system) of the postmaster and its children so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(pid) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def prepared_batches(
    store: pgstore.PgStore, prefix: str, n: int, spread: int
) -> list[list[tuple[Event, int]]]:
    book, _ = store._price_book(force=True)
    now = datetime.now(UTC)
    limits = Limits(10_000_000, 4096, timedelta(days=400), timedelta(seconds=300))
    out = []
    for body in bench.make_batch_bodies(prefix, n, 1000, now, spread=spread):
        rows = []
        for obj in json.loads(body):
            ev, _err = validate_event(obj, limits, now)
            assert ev is not None
            price = book.lookup(ev.model, ev.occurred_at)
            assert price is not None
            rows.append((ev, price))
        out.append(sorted(rows, key=lambda r: r[0].event_id))
    return out


def measure(cluster: PgCluster, shape: str, spread: int, n: int, every: int) -> dict[str, float]:
    url, _key = bench.setup_database(cluster, f"rollup_{shape}")
    store = pgstore.PgStore(load_settings({"TOKEN_BILLING_DATABASE_URL": url}))
    postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    cpu: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], object]) -> None:
        before = server_cpu(postmaster)
        fn()
        cpu[name] = cpu.get(name, 0.0) + server_cpu(postmaster) - before

    with psycopg.connect(cluster.dsn(f"rollup_{shape}"), autocommit=True) as conn:
        _, version = store._price_book(force=True)
        now = datetime.now(UTC)
        for rows in prepared_batches(store, f"{shape}-alone", n, spread):
            params = [*store._columns(rows), version, len(rows), len(rows), version]

            def alone(params: list[object] = params) -> None:
                with conn.transaction():
                    conn.execute(_EVENTS_ONLY, params).fetchall()

            timed("events alone", alone)
        conn.execute("TRUNCATE usage_events")
        batches = prepared_batches(store, shape, n, spread)
        for i, rows in enumerate(batches, start=1):
            timed("events + pending append", lambda rows=rows: store._write(rows, {}, version, now))
            if i % every and i != len(batches):
                continue
            with conn.transaction():
                timed("flush: take the pending rows", lambda: conn.execute(_TAKE_INTO_TEMP))
                for r in ROLLUPS:
                    timed(
                        f"flush: upsert {r.table}",
                        lambda r=r: conn.execute(upsert(r, _MOVED, "postgresql", "0")),
                    )
                    timed(
                        f"  of which grouping the {r.unit}s (run apart)",
                        lambda r=r: conn.execute(_grouping_alone(r)),
                    )
            timed("VACUUM usage_pending", lambda: conn.execute("VACUUM usage_pending"))
        rows_of = {
            r.table: conn.execute(f"SELECT count(*) FROM {r.table}").fetchone()[0] for r in ROLLUPS
        }
        for r in ROLLUPS:
            conn.execute(
                f"CREATE TEMP TABLE final_{r.unit} AS SELECT * FROM {r.table} "
                "ORDER BY customer_id, " + r.unit
            )
            conn.execute(f"CREATE TABLE bare_{r.unit} (LIKE {r.table} INCLUDING ALL)")
        conn.execute("CHECKPOINT")
        for r in ROLLUPS:
            timed(
                f"bound: plain INSERT into an empty {r.table}",
                lambda r=r: conn.execute(f"INSERT INTO bare_{r.unit} SELECT * FROM final_{r.unit}"),
            )
    store.hot_engine.dispose()
    events = n * 1000
    print(f"\n{shape}: {events:,} events; rollup rows per event:", end="")
    print(", ".join(f" {t} {c / events:.2f}" for t, c in rows_of.items()))
    per = {k: v * 1_000_000 / events for k, v in cpu.items()}
    for name, ms in per.items():
        print(f"  {name:48s} {ms:6.2f} ms")
    rollup = sum(v for k, v in per.items() if k.startswith(("flush", "VACUUM")))
    pending = per["events + pending append"] - per["events alone"]
    bound = sum(v for k, v in per.items() if k.startswith("bound"))
    print(
        f"  rollup work in all: {pending + rollup:.2f} ms per 1,000 events (pending append "
        f"{pending:.2f}, flush and vacuum {rollup:.2f}); the plain-INSERT bound: {bound:.2f} ms"
    )
    return per


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batches", type=int, default=300, help="1,000-event batches per shape")
    ap.add_argument("--flush-every", type=int, default=75, help="batches between flushes")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    print(
        "PostgreSQL server CPU per 1,000 events, one connection "
        f"(load average at start {os.getloadavg()[0]:.2f})"
    )
    cluster = PgCluster(
        durable=True,
        prefix="tb-rollup-",
        extra_settings={
            "shared_buffers": "1GB",
            "max_wal_size": "8GB",
            "checkpoint_timeout": "30min",
        },
    )
    figures = {}
    t0 = time.perf_counter()
    try:
        cluster.start()
        figures["replay"] = measure(
            cluster, "replay", bench.BACKFILL, args.batches, args.flush_every
        )
        figures["live"] = measure(cluster, "live", bench.LIVE, args.batches, args.flush_every)
    finally:
        cluster.destroy()
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

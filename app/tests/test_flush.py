"""PostgreSQL keeps rollup upserts off the ingest path: batches append to usage_pending,
a flush moves it into the rollups exactly once, readers and invoices see it throughout."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from token_billing.app import start_flusher
from token_billing.schema import usage_hourly, usage_pending
from token_billing.storage.flush import Flusher
from token_billing.storage.rollup import FLUSH_LOCK

from .tb_testlib import Env, bearer, make_settings, provision, ts

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _pending(env: Env) -> int:
    with env.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(usage_pending)).scalar_one())


def test_ingest_leaves_rollups_to_the_flush(env: Env) -> None:
    events = [env.event(occurred_at=ts(env.month + timedelta(hours=h))) for h in range(5)]
    assert env.post(events).status_code == 200
    assert _pending(env) == 5
    with env.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(usage_hourly)).scalar_one() == 0
    # readers already see them
    span = f"start={ts(env.month)}&end={ts(env.next_month)}"
    usage = env.client.get(f"/v1/usage?{span}&customer_id=acme", headers=env.read)
    assert sum(r["events"] for r in usage.get_json()["rows"]) == 5

    flusher = Flusher(env.engine, 0.01)
    with env.engine.begin() as holder:
        # another flush holds the lock: the background flusher skips its turn
        holder.exec_driver_sql(f"SELECT pg_advisory_xact_lock({FLUSH_LOCK})")
        assert flusher.run_once() is None
    assert flusher.run_once() == 5
    assert flusher.run_once() == 0
    assert _pending(env) == 0
    env.rollup_totals()
    again = env.client.get(f"/v1/usage?{span}&customer_id=acme", headers=env.read)
    assert again.get_json() == usage.get_json()


def test_invoice_claims_pending_usage(env: Env) -> None:
    env.post([env.event(occurred_at=ts(env.month + timedelta(days=2)))])
    assert _pending(env) == 1
    inv = env.client.post(
        "/v1/invoices",
        json={"customer_id": "acme", "month": f"{env.month:%Y-%m}"},
        headers=env.admin,
    ).get_json()
    assert _pending(env) == 0
    assert sum(int(line["tokens"]) for line in inv["lines"]) > 0


def test_concurrent_ingest_and_flushes_count_every_event_once(env: Env) -> None:
    """4 senders with overlapping resends, two background flushers every 5 ms and
    invoices in between: every total equals the raw events."""
    flushers = [Flusher(env.engine, 0.005).start() for _ in range(2)]
    rnd = random.Random(7)
    ids = [f"c-{i}" for i in range(1200)]
    errors: list[object] = []

    def sender(k: int) -> None:
        mine = ids[k * 300 : (k + 1) * 300] + rnd.sample(ids, 100)  # resends of others'
        for i in range(0, len(mine), 40):
            batch = [
                env.event(
                    event_id=e,
                    occurred_at=ts(env.month + timedelta(hours=int(e[2:]) % 300)),
                )
                for e in mine[i : i + 40]
            ]
            r = env.post(batch)
            if r.status_code not in (200, 207):
                errors.append(r.get_json())

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in flushers:
        f.stop()
    assert errors == []
    assert env.count_events() == 1200
    assert env.rollup_totals()[0] == 1200


def test_gunicorn_entry_starts_a_flusher(db_url: str) -> None:
    from token_billing.app import create_app

    settings = make_settings(db_url, rollup_flush_seconds="0.01")
    app = create_app(settings)
    flusher = start_flusher(app)
    assert flusher is not None
    try:
        ev = {
            "event_id": "g-1",
            "customer_id": "acme",
            "model": "gpt-test",
            "input_tokens": 10,
            "output_tokens": 1,
            "occurred_at": ts(datetime.now(UTC) - timedelta(minutes=1)),
        }
        keys = provision(flusher.engine, settings)
        r = app.test_client().post("/v1/usage/events", json=[ev], headers=bearer(keys["ingest"]))
        assert r.status_code == 200, r.get_json()
        deadline = time.monotonic() + 60
        while True:  # the background thread empties usage_pending by itself
            with flusher.engine.connect() as conn:
                pending = conn.execute(select(func.count()).select_from(usage_pending)).scalar()
            if not pending:
                break
            assert time.monotonic() < deadline, f"no flush in 60 s: {pending} rows pending"
            time.sleep(0.02)
    finally:
        flusher.stop()


def test_cli_flush_rollups(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from token_billing.cli import main

    env.post([env.event(occurred_at=ts(env.month + timedelta(hours=h))) for h in range(3)])
    monkeypatch.delenv("TOKEN_BILLING_CONFIG", raising=False)
    monkeypatch.setenv("TOKEN_BILLING_DATABASE_URL", env.settings.database_url)
    assert main(["flush-rollups"]) == 0
    assert "moved 3 pending hourly row(s)" in capsys.readouterr().err
    assert _pending(env) == 0
    env.rollup_totals()

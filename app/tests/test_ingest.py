"""Ingest: exactly-once, batch semantics (documented in README 'Batch semantics')."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

from token_billing.ingest import ACCEPTED, CONFLICT, DUPLICATE, REJECTED, Ingestor, IngestOutcome
from token_billing.web.usage import _outcome_json

from .tb_testlib import Env, ts


def test_single_event_accepted_then_duplicate(env: Env) -> None:
    ev = env.event("evt-1")
    r = env.post(ev)
    assert r.status_code == 200
    assert r.get_json() == {
        "accepted": 1,
        "duplicates": 0,
        "conflicts": 0,
        "rejected": 0,
        "results": [{"index": 0, "event_id": "evt-1", "status": "accepted"}],
    }
    r = env.post(ev)
    assert r.status_code == 200
    assert r.get_json()["results"][0]["status"] == "duplicate"
    assert env.count_events() == 1
    assert env.rollup_totals() == (1, 1000, 200, 500)


def test_batch_forms(env: Env) -> None:
    r = env.post([env.event("a1"), env.event("a2")])
    assert r.status_code == 200 and r.get_json()["accepted"] == 2
    r = env.post({"events": [env.event("a3"), env.event("a1")]})
    body = r.get_json()
    assert r.status_code == 200
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert env.count_events() == 3


def test_mixed_batch_commits_valid_and_reports_each(env: Env) -> None:
    batch = [
        env.event("ok-1"),
        env.event("bad-1", input_tokens=-1),
        env.event("ok-2"),
        env.event("ok-1"),  # repeated inside the batch
        env.event("bad-2", customer_id="nobody"),
        env.event("bad-3", model="unpriced-model"),
    ]
    r = env.post(batch)
    assert r.status_code == 207
    body = r.get_json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 3)
    statuses = [(x["index"], x["event_id"], x["status"]) for x in body["results"]]
    assert statuses == [
        (0, "ok-1", "accepted"),
        (1, "bad-1", "rejected"),
        (2, "ok-2", "accepted"),
        (3, "ok-1", "duplicate"),
        (4, "bad-2", "rejected"),
        (5, "bad-3", "rejected"),
    ]
    errors = {x["event_id"]: x["error"] for x in body["results"] if x["status"] == "rejected"}
    assert errors["bad-1"]["code"] == "out_of_range" and errors["bad-1"]["field"] == "input_tokens"
    assert errors["bad-2"]["code"] == "unknown_customer"
    assert errors["bad-3"]["code"] == "no_price"
    assert env.count_events() == 2
    # the rejected events can be re-sent once fixed: they were not stored
    r = env.post(env.event("bad-1"))
    assert r.get_json()["accepted"] == 1


def test_all_rejected_is_422_and_stores_nothing(env: Env) -> None:
    r = env.post([env.event("x", input_tokens="1"), env.event("y", occurred_at="yesterday")])
    assert r.status_code == 422
    assert r.get_json()["rejected"] == 2
    assert env.count_events() == 0
    assert env.rollup_totals() == (0, 0, 0, 0)


def test_cached_tokens_default_zero_and_bounded_by_input(env: Env) -> None:
    ev = env.event("c0")
    del ev["cached_input_tokens"]
    assert env.post(ev).status_code == 200
    r = env.post(env.event("c1", input_tokens=10, cached_input_tokens=11))
    err = r.get_json()["results"][0]["error"]
    assert err["field"] == "cached_input_tokens" and err["code"] == "invalid_value"
    assert env.post(env.event("c2", input_tokens=10, cached_input_tokens=10)).status_code == 200
    assert env.rollup_totals()[2] == 10


def test_rollup_matches_events_by_hour_and_model(env: Env) -> None:
    t0 = env.month + timedelta(days=1)
    batch = [
        env.event(f"h{i}", occurred_at=ts(t0 + timedelta(minutes=25 * i)), model=m)
        for i, m in enumerate(["gpt-test", "small", "gpt-test", "gpt-test", "small"])
    ]
    assert env.post(batch).status_code == 200
    r = env.client.get(
        "/v1/usage",
        query_string={
            "start": ts(t0),
            "end": ts(t0 + timedelta(hours=3)),
            "granularity": "hour",
        },
        headers=env.read,
    )
    rows = r.get_json()["rows"]
    got = sorted((row["period_start"], row["model"], row["events"]) for row in rows)
    assert got == [
        (ts(t0), "gpt-test", 2),
        (ts(t0), "small", 1),
        (ts(t0 + timedelta(hours=1)), "gpt-test", 1),
        (ts(t0 + timedelta(hours=1)), "small", 1),
    ]


def test_concurrent_duplicates_counted_once_threads(env: Env) -> None:
    """The same 50 events posted by 8 threads at once: stored and counted once."""
    events = [env.event(f"race-{i}") for i in range(50)]
    barrier = threading.Barrier(8)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        client = env.app.test_client()
        batch = events[k % 5 :] + events[: k % 5]  # different orders
        try:
            barrier.wait()
            r = client.post("/v1/usage/events", json=batch, headers=env.ingest)
            assert r.status_code == 200, r.get_json()
            results.append(r.get_json())
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r["accepted"] for r in results) == 50
    assert sum(r["duplicates"] for r in results) == 50 * 7
    assert env.count_events() == 50
    assert env.rollup_totals() == (50, 50 * 1000, 50 * 200, 50 * 500)


def test_concurrent_duplicates_separate_engines(env: Env) -> None:
    """Separate engines/pools = separate 'hosts' with their own DB connections."""
    from token_billing.db import make_engine

    engines = [make_engine(env.settings) for _ in range(4)]
    ingestors = [Ingestor(e, env.settings) for e in engines]
    events = [env.event(f"host-{i}") for i in range(200)]
    barrier = threading.Barrier(4)
    accepted: list[int] = []

    def worker(k: int) -> None:
        barrier.wait()
        out = ingestors[k].ingest(list(reversed(events)) if k % 2 else events)
        accepted.append(out.accepted)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert sum(accepted) == 200
    assert env.count_events() == 200
    assert env.rollup_totals()[0] == 200


def test_metrics_count_outcomes(env: Env) -> None:
    from prometheus_client import REGISTRY

    def val(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    def sample() -> tuple[float, ...]:
        return (
            val("token_billing_events_total", outcome="accepted"),
            val("token_billing_events_total", outcome="duplicate"),
            val("token_billing_events_total", outcome="conflict"),
            val("token_billing_events_rejected_total", reason="no_price"),
            val("token_billing_tokens_total", model="small", kind="cached_input"),
        )

    before = sample()
    env.post(
        [
            env.event("m1", model="small"),
            env.event("m1", model="small"),
            env.event("m1"),
            env.event("m2", model="nope"),
        ]
    )
    after = sample()
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1, 200]
    text = env.client.get("/metrics").data.decode()
    assert "token_billing_http_request_duration_seconds_bucket" in text


def test_daily_and_hourly_reports_agree(env: Env) -> None:
    t0 = env.month + timedelta(days=2)
    batch = [
        env.event(
            f"d{i}",
            occurred_at=ts(t0 + timedelta(minutes=97 * i)),
            model=("small", "gpt-test")[i % 2],
        )
        for i in range(40)
    ]
    assert env.post(batch).status_code == 200

    def report(start: str, end: str) -> list[tuple[str, str, int, str]]:
        r = env.client.get(
            "/v1/usage",
            query_string={"start": start, "end": end, "granularity": "day"},
            headers=env.read,
        )
        return [
            (x["period_start"], x["model"], x["events"], x["cost"]) for x in r.get_json()["rows"]
        ]

    # whole days -> daily rollup; an hour-aligned range -> hourly rollup: same answer
    daily = report(ts(t0), ts(t0 + timedelta(days=4)))
    hourly = report(ts(t0 - timedelta(hours=1)), ts(t0 + timedelta(days=4)))
    assert daily == hourly
    assert sum(x[2] for x in daily) == 40


def test_batch_response_is_the_json_of_each_result() -> None:
    ids: list[str | None] = ['q"uote', "back\\slash", "caf\u00e9 \u2028", None, "ok-1", "c-1"]
    statuses = [ACCEPTED, DUPLICATE, ACCEPTED, REJECTED, REJECTED, CONFLICT]
    errors: dict[int, dict[str, Any]] = {
        3: {"code": "invalid_type", "message": "event must be an object, got array"},
        4: {"code": "no_price", "field": "model", "message": "no price for 'm\u00fc'"},
        5: {"code": "conflicting_resend", "field": "event_id", "message": "x"},
    }
    out = IngestOutcome(ids, statuses, errors, accepted=2, duplicates=1, conflicts=1, rejected=2)
    assert json.loads(_outcome_json(out)) == {
        "accepted": 2,
        "duplicates": 1,
        "conflicts": 1,
        "rejected": 2,
        "results": out.results(),
    }
    assert out.results()[4] == {
        "index": 4,
        "event_id": "ok-1",
        "status": REJECTED,
        "error": errors[4],
    }

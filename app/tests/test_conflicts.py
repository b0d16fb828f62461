"""Conflicting resends: same event_id, different billable content (see conflicts.py)."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from token_billing.cli import main
from token_billing.content import digest
from token_billing.validation import parse_timestamp

from .tb_testlib import Env, ts


def _conflicts(env: Env, **params: str) -> list[dict[str, Any]]:
    query = {"start": ts(env.month), "end": ts(env.next_month), **params}
    r = env.client.get("/v1/usage/conflicts", query_string=query, headers=env.read)
    assert r.status_code == 200, r.get_json()
    rows: list[dict[str, Any]] = r.get_json()["conflicts"]
    return rows


def test_same_content_is_a_duplicate_whatever_the_non_billable_fields(env: Env) -> None:
    ev = env.event("d-1", metadata={"a": 1}, api_key_id="k1")
    assert env.post(ev).status_code == 200
    same_instant = (env.month + timedelta(days=3, hours=7, minutes=7)).strftime(
        "%Y-%m-%dT%H:%M:%S+02:00"
    )
    again = dict(ev, metadata={"b": 2}, api_key_id="k2", occurred_at=same_instant)
    r = env.post(again)
    assert r.status_code == 200
    assert r.get_json()["results"][0]["status"] == "duplicate"
    assert _conflicts(env) == []


def test_different_content_is_a_conflict_and_the_stored_event_stands(env: Env) -> None:
    ev = env.event("c-1")
    env.post(ev)
    totals = env.rollup_totals()
    changed = dict(ev, output_tokens=9999)
    for attempt in (1, 2):
        r = env.post(changed)
        assert r.status_code == 409, r.get_json()
        body = r.get_json()
        assert (body["accepted"], body["duplicates"], body["conflicts"]) == (0, 0, 1)
        res = body["results"][0]
        assert res["status"] == "conflict"
        assert res["error"]["code"] == "conflicting_resend"
        assert env.rollup_totals() == totals
        rows = _conflicts(env)
        assert len(rows) == 1 and rows[0]["resend_count"] == attempt
    row = rows[0]
    assert row["event_id"] == "c-1" and row["customer_id"] == "acme"
    assert row["stored"]["output_tokens"] == 500 and row["resent"]["output_tokens"] == 9999
    # another customer's resend of the id is a conflict too, listed for both customers
    env.post(dict(ev, customer_id="globex"))
    assert len(_conflicts(env, customer_id="globex")) == 1
    assert len(_conflicts(env, customer_id="acme")) == 2
    # outside the period: nothing
    r = env.client.get(
        "/v1/usage/conflicts",
        query_string={"start": ts(env.next_month), "end": ts(env.next_month + timedelta(days=1))},
        headers=env.read,
    )
    assert r.get_json()["conflicts"] == []


def test_conflict_inside_one_batch(env: Env) -> None:
    r = env.post([env.event("b-1"), env.event("b-1", input_tokens=7, cached_input_tokens=0)])
    assert r.status_code == 207
    assert [x["status"] for x in r.get_json()["results"]] == ["accepted", "conflict"]
    assert env.rollup_totals() == (1, 1000, 200, 500)
    # a repeat of an event rejected earlier in the batch is rejected the same way
    r = env.post([env.event("b-2", customer_id="nobody"), env.event("b-2")])
    assert [x["status"] for x in r.get_json()["results"]] == ["rejected", "rejected"]


def test_stored_events_are_compared_by_their_columns_or_an_earlier_release_digest(
    env: Env,
) -> None:
    ev = env.event("old-1")
    env.post(ev)
    with env.engine.begin() as conn:
        # 1.3.0 stores no digest: a resend is compared with the stored columns
        assert conn.execute(text("SELECT content_digest FROM usage_events")).scalar() is None
    assert env.post(ev).get_json()["results"][0]["status"] == "duplicate"
    assert env.post(dict(ev, model="small")).get_json()["results"][0]["status"] == "conflict"
    # 1.1.0 and 1.2.0 stored the digest of the content; it is used when present
    at = parse_timestamp(ev["occurred_at"])
    assert at is not None
    fields = (ev["customer_id"], None, ev["model"], ev["input_tokens"])
    fields += (ev["cached_input_tokens"], ev["output_tokens"])
    stored_digest = digest(*fields, at)
    with env.engine.begin() as conn:
        conn.execute(text("UPDATE usage_events SET content_digest = :d"), {"d": stored_digest})
    assert env.post(ev).get_json()["results"][0]["status"] == "duplicate"
    assert env.post(dict(ev, model="small")).get_json()["results"][0]["status"] == "conflict"


@pytest.mark.parametrize(
    ("stored", "resent"),
    [
        ("2000-01-01T10:12:13.123456789Z", "2000-01-01T12:12:13.123456+02:00"),
        ("2000-01-01T10:12:13.100000Z", "2000-01-01T10:12:13.1Z"),
        ("2000-01-01T10:12:13Z", "2000-01-01T05:12:13.000000-05:00"),
    ],
)
def test_one_instant_spelt_two_ways_is_a_duplicate(env: Env, stored: str, resent: str) -> None:
    day = env.month + timedelta(days=2)
    ev = env.event("spelt-1", occurred_at=stored.replace("2000-01-01", day.strftime("%Y-%m-%d")))
    assert env.post(ev).status_code == 200
    again = dict(ev, occurred_at=resent.replace("2000-01-01", day.strftime("%Y-%m-%d")))
    assert env.post(again).get_json()["results"][0]["status"] == "duplicate"


def test_racing_copies_with_different_content_one_wins(env: Env) -> None:
    n = 8
    barrier = threading.Barrier(n)
    statuses: list[str] = []
    lock = threading.Lock()

    def send(k: int) -> None:
        client = env.app.test_client()
        body = env.event("race-1", output_tokens=100 + k)
        barrier.wait()
        r = client.post("/v1/usage/events", json=body, headers=env.ingest)
        with lock:
            statuses.append(r.get_json()["results"][0]["status"])

    threads = [threading.Thread(target=send, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == ["accepted"] + ["conflict"] * (n - 1)
    assert env.count_events() == 1
    assert sum(r["resend_count"] for r in _conflicts(env)) == n - 1


def test_replayed_month_bills_first_arrivals_only(env: Env) -> None:
    """A month of events with retries and conflicting resends, shuffled into batches:
    every conflict is reported, and the bill equals an independent first-arrival sum."""
    rng = random.Random(20261128)
    models = {"gpt-test": ("3.00", "0.30", "15.00"), "small": ("0.15", "0.075", "0.60")}
    originals = []
    for k in range(600):
        inp = rng.randint(1, 50_000)
        originals.append(
            env.event(
                f"rp-{k}",
                model=rng.choice(sorted(models)),
                input_tokens=inp,
                cached_input_tokens=rng.randint(0, inp),
                output_tokens=rng.randint(0, 20_000),
                occurred_at=ts(env.month + timedelta(minutes=rng.randint(0, 27 * 24 * 60))),
            )
        )
    stream = list(originals)
    conflicting = 0
    for ev in rng.sample(originals, 120):
        stream.append(dict(ev))  # a retry
    for ev in rng.sample(originals, 60):
        stream.append(dict(ev, output_tokens=ev["output_tokens"] + 1))
        conflicting += 1
    rng.shuffle(stream)
    first: dict[str, dict[str, Any]] = {}
    expected_counts = {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    for ev in stream:
        seen = first.setdefault(ev["event_id"], ev)
        outcome = "accepted" if seen is ev else "duplicate" if seen == ev else "conflict"
        expected_counts[outcome] += 1
    counts = {"accepted": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
    for i in range(0, len(stream), 50):
        for res in env.post(stream[i : i + 50]).get_json()["results"]:
            counts[res["status"]] += 1
    # a conflicting copy that arrived first is billed; then its original conflicts
    assert counts == expected_counts
    assert counts["conflict"] >= conflicting
    assert sum(r["resend_count"] for r in _conflicts(env)) == counts["conflict"]

    expected = Decimal(0)
    for ev in first.values():
        p_in, p_cached, p_out = (Decimal(x) for x in models[ev["model"]])
        uncached = ev["input_tokens"] - ev["cached_input_tokens"]
        expected += (
            uncached * p_in + ev["cached_input_tokens"] * p_cached + ev["output_tokens"] * p_out
        ) / Decimal(1_000_000)
    r = env.client.get(
        "/v1/usage",
        query_string={"start": ts(env.month), "end": ts(env.next_month), "granularity": "month"},
        headers=env.read,
    )
    rows = r.get_json()["rows"]
    assert sum(row["output_tokens"] for row in rows) == sum(
        ev["output_tokens"] for ev in first.values()
    )
    assert sum(Decimal(row["cost"]) for row in rows) == expected


def test_cli_lists_conflicts(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env.post(env.event("cli-1"))
    env.post(env.event("cli-1", input_tokens=1, cached_input_tokens=0))
    monkeypatch.delenv("TOKEN_BILLING_CONFIG", raising=False)
    monkeypatch.setenv("TOKEN_BILLING_DATABASE_URL", env.settings.database_url)
    month = env.month.strftime("%Y-%m")
    assert main(["list-conflicts", "--month", month]) == 0
    out = capsys.readouterr().out
    assert '"event_id": "cli-1"' in out and '"resend_count": 1' in out

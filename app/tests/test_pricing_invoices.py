"""Effective-dated prices, exact money, invoices, late events -> adjustments."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from token_billing.pricing import Price, cost, line_amount, money_str

from .tb_testlib import Env, add_months, ts


def _load(env: Env, prices: list[dict[str, str]]) -> object:
    return env.client.post("/v1/prices", json={"prices": prices}, headers=env.admin)


def test_money_math_is_exact() -> None:
    p = Price(
        1,
        "m",
        None,
        Decimal("3"),
        Decimal("15"),
        Decimal("0.3"),
        "USD",  # type: ignore[arg-type]
    )
    assert cost(1, 0, 0, p) == Decimal("0.000003")
    assert cost(800, 200, 500, p) == Decimal("0.00996")
    # 0.1 + 0.2 style traps: exact in Decimal
    q = Price(2, "m", None, Decimal("0.1"), Decimal("0.2"), Decimal("0"), "USD")  # type: ignore[arg-type]
    assert cost(1_000_000, 0, 1_000_000, q) == Decimal("0.3")
    # line rounding: half-up, once per line
    assert line_amount(1, Decimal("5000")) == Decimal("0.01")  # 0.005 -> 0.01
    assert line_amount(1, Decimal("4999.999999999")) == Decimal("0.00")
    assert line_amount(333_333, Decimal("0.03")) == Decimal("0.01")  # 0.00999999
    assert line_amount(10**15, Decimal("999999999.999999999")) == Decimal("999999999999999999.00")
    assert money_str(Decimal("1.500")) == "1.5" and money_str(Decimal("0E-9")) == "0"


def test_price_change_inside_month(env: Env) -> None:
    mid = env.month + timedelta(days=14, hours=12, minutes=30)
    r = _load(
        env,
        [
            {
                "model": "gpt-test",
                "effective_from": ts(mid),
                "input_per_mtok": "6.00",
                "output_per_mtok": "30",
                "cached_input_per_mtok": "0.60",
            }
        ],
    )
    assert r.status_code == 200, r.get_json()
    before = env.event("before", occurred_at=ts(mid - timedelta(seconds=1)))
    at = env.event("at", occurred_at=ts(mid))
    after = env.event("after", occurred_at=ts(mid + timedelta(days=3)))
    assert env.post([before, at, after]).status_code == 200
    # each event: 800 uncached, 200 cached, 500 output
    old = Decimal(800 * 3 + 200 * Decimal("0.3") + 500 * 15) / 1_000_000
    new = Decimal(800 * 6 + 200 * Decimal("0.6") + 500 * 30) / 1_000_000
    r = env.client.get(
        "/v1/usage",
        query_string={"start": ts(env.month), "end": ts(env.next_month), "granularity": "month"},
        headers=env.read,
    )
    rows = r.get_json()["rows"]
    assert len(rows) == 1
    assert Decimal(rows[0]["cost"]) == old + 2 * new
    # invoice: two lines per token kind (old and new unit price)
    inv = env.client.post(
        "/v1/invoices",
        json={"customer_id": "acme", "month": f"{env.month:%Y-%m}"},
        headers=env.admin,
    ).get_json()
    lines = [(ln["token_kind"], ln["unit_price_per_mtok"], ln["tokens"]) for ln in inv["lines"]]
    assert lines == [
        ("input", "3", 800),
        ("cached_input", "0.3", 200),
        ("output", "15", 500),
        ("input", "6", 1600),
        ("cached_input", "0.6", 400),
        ("output", "30", 1000),
    ]
    assert Decimal(inv["total"]) == sum(Decimal(ln["amount"]) for ln in inv["lines"])


def test_price_loading_rules(env: Env) -> None:
    base = {
        "model": "new-model",
        "effective_from": ts(env.month),
        "input_per_mtok": "1",
        "output_per_mtok": "2",
    }
    r = _load(env, [base])
    assert r.get_json() == {"inserted": 1, "unchanged": 0}
    assert _load(env, [base]).get_json() == {"inserted": 0, "unchanged": 1}  # idempotent
    r = _load(env, [{**base, "input_per_mtok": "1.5"}])  # immutable
    assert r.status_code == 400 and "immutable" in r.get_json()["error"]["message"]
    # cached price defaults to the input price
    prices = env.client.get("/v1/prices?model=new-model", headers=env.read).get_json()["prices"]
    assert prices[0]["cached_input_per_mtok"] == "1"
    # floats are refused (money is never a float)
    r = env.client.post(
        "/v1/prices",
        data='{"prices": [{"model": "f", "effective_from": "2026-01-01T00:00:00Z", '
        '"input_per_mtok": 0.1, "output_per_mtok": "1"}]}',
        headers={**env.admin, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "float" in r.get_json()["error"]["message"]
    for bad in (
        {"input_per_mtok": "-1"},
        {"input_per_mtok": "1e400"},
        {"output_per_mtok": "0.0000000001"},
    ):
        r = _load(env, [{**base, "model": "m2", **bad}])
        assert r.status_code == 400, bad
    # a price that would re-price recorded usage is refused; all-or-nothing
    assert (
        env.post(env.event("used", occurred_at=ts(env.month + timedelta(days=10)))).status_code
        == 200
    )
    r = _load(
        env,
        [
            {**base, "model": "other", "effective_from": ts(env.month)},
            {**base, "model": "gpt-test", "effective_from": ts(env.month + timedelta(days=5))},
        ],
    )
    assert r.status_code == 400 and "re-price" in r.get_json()["error"]["message"]
    assert env.client.get("/v1/prices?model=other", headers=env.read).get_json()["prices"] == []
    # ...but a future price is fine
    r = _load(
        env,
        [{**base, "model": "gpt-test", "effective_from": ts(env.next_month + timedelta(days=40))}],
    )
    assert r.get_json()["inserted"] == 1


def test_unpriced_event_accepted_after_price_loaded(env: Env) -> None:
    ev = env.event("late-price", model="brand-new")
    assert env.post(ev).get_json()["results"][0]["error"]["code"] == "no_price"
    _load(
        env,
        [
            {
                "model": "brand-new",
                "effective_from": ts(env.month),
                "input_per_mtok": "1",
                "output_per_mtok": "1",
            }
        ],
    )
    assert env.post(ev).get_json()["accepted"] == 1


def _invoice(env: Env, month: str, customer: str = "acme") -> object:
    return env.client.post(
        "/v1/invoices", json={"customer_id": customer, "month": month}, headers=env.admin
    )


def test_invoice_generation_idempotent_and_immutable(env: Env) -> None:
    month = f"{env.month:%Y-%m}"
    events = [env.event(f"i{i}", occurred_at=ts(env.month + timedelta(hours=i))) for i in range(24)]
    events += [
        env.event(f"s{i}", model="small", occurred_at=ts(env.month + timedelta(days=i)))
        for i in range(5)
    ]
    assert env.post(events).status_code == 200
    r1 = _invoice(env, month)
    assert r1.status_code == 201
    inv = r1.get_json()
    r2 = _invoice(env, month)
    assert r2.status_code == 200
    assert r2.get_json() == inv
    assert inv["period"] == month and inv["status"] == "issued"
    by = {(ln["model"], ln["token_kind"]): ln for ln in inv["lines"]}
    assert by[("gpt-test", "input")]["tokens"] == 24 * 800
    assert by[("gpt-test", "input")]["amount"] == "0.06"  # 19200 * 3 / 1e6 = 0.0576
    assert by[("gpt-test", "output")]["amount"] == "0.18"  # 12000 * 15 / 1e6
    assert by[("small", "cached_input")]["amount"] == "0.00"
    assert Decimal(inv["total"]) == sum(Decimal(ln["amount"]) for ln in inv["lines"])
    assert env.client.get(f"/v1/invoices/{inv['invoice_id']}", headers=env.read).get_json() == inv
    listed = env.client.get(f"/v1/invoices?customer_id=acme&month={month}", headers=env.read)
    assert listed.get_json()["invoices"] == [inv]
    # the database itself refuses to change an issued invoice
    for stmt in (
        "UPDATE invoices SET total = 0",
        "DELETE FROM invoice_lines",
        "UPDATE invoice_lines SET amount = 0",
        "DELETE FROM invoices",
    ):
        with pytest.raises((DBAPIError, IntegrityError)), env.engine.begin() as conn:
            conn.execute(text(stmt))
    assert _invoice(env, month).get_json() == inv


def test_late_events_become_adjustments_on_next_invoice(env: Env) -> None:
    m1, m2 = env.month, env.next_month
    assert env.post(env.event("on-time", occurred_at=ts(m1 + timedelta(days=2)))).status_code == 200
    inv1 = _invoice(env, f"{m1:%Y-%m}").get_json()
    assert inv1["adjustments_total"] == "0.00"
    # an event for the invoiced month arrives late, plus one for month 2
    late = env.event(
        "late", occurred_at=ts(m1 + timedelta(days=2, minutes=5)), output_tokens=100_000
    )
    assert (
        env.post([late, env.event("m2", occurred_at=ts(m2 + timedelta(days=1)))]).status_code == 200
    )
    # invoice 1 unchanged
    assert _invoice(env, f"{m1:%Y-%m}").get_json() == inv1
    r = _invoice(env, f"{m2:%Y-%m}")
    assert r.status_code == 201
    inv2 = r.get_json()
    adj = [ln for ln in inv2["lines"] if ln["kind"] == "adjustment"]
    usage = [ln for ln in inv2["lines"] if ln["kind"] == "usage"]
    assert {ln["usage_period"] for ln in adj} == {f"{m1:%Y-%m}"}
    assert {(ln["token_kind"], ln["tokens"]) for ln in adj} == {
        ("input", 800),
        ("cached_input", 200),
        ("output", 100_000),
    }
    assert {ln["usage_period"] for ln in usage} == {f"{m2:%Y-%m}"}
    assert Decimal(inv2["adjustments_total"]) == sum(Decimal(ln["amount"]) for ln in adj)
    assert inv2["adjustments_total"] == "1.50"
    # every accepted token is on exactly one invoice
    total_tokens = sum(ln["tokens"] for inv in (inv1, inv2) for ln in inv["lines"])
    assert total_tokens == 3 * 1000 + 500 + 500 + 100_000
    # an earlier month can no longer be invoiced after a later one
    r = _invoice(env, f"{add_months(m1, -1):%Y-%m}")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "later_invoice_exists"


def test_invoice_errors(env: Env) -> None:
    from datetime import UTC, datetime

    r = _invoice(env, f"{datetime.now(UTC):%Y-%m}")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "period_open"
    assert _invoice(env, "2025-13").status_code == 400
    assert _invoice(env, "nope").get_json()["error"]["code"] == "invalid_month"
    r = _invoice(env, f"{env.month:%Y-%m}", customer="ghost")
    assert r.status_code == 404
    assert env.client.get("/v1/invoices/999", headers=env.read).status_code == 404


def test_spend_and_csv_export(env: Env) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ev = env.event("now-1", occurred_at=ts(max(this_month, now - timedelta(minutes=1))))
    assert env.post(ev).status_code == 200
    spend = env.client.get("/v1/customers/acme/spend", headers=env.read).get_json()
    assert spend["period_start"] == ts(this_month)
    assert Decimal(spend["cost"]) == Decimal("0.00996") and spend["events"] == 1
    assert env.client.get("/v1/customers/ghost/spend", headers=env.read).status_code == 404
    env.post(env.event("past", occurred_at=ts(env.month + timedelta(hours=1))))
    r = env.client.get(
        "/v1/usage/export",
        query_string={
            "start": ts(env.month),
            "end": ts(this_month + timedelta(days=32)),
            "granularity": "month",
        },
        headers=env.read,
    )
    assert r.status_code == 200 and r.mimetype == "text/csv"
    lines = r.data.decode().strip().split("\n")
    assert lines[0].startswith("period_start,customer_id,model,events")
    assert len(lines) == 3
    assert lines[1].split(",")[7] == "0.00996"
    # invalid ranges
    bad = env.client.get(
        "/v1/usage?start=2025-01-01T00:30:00Z&end=2025-02-01T00:00:00Z", headers=env.read
    )
    assert bad.status_code == 400 and "whole hour" in bad.get_json()["error"]["message"]
    assert env.client.get("/v1/usage?start=x&end=y", headers=env.read).status_code == 400
    assert env.client.get("/v1/usage", headers=env.read).status_code == 400


def test_price_loaded_while_service_runs_is_used_at_once(env: Env) -> None:
    """The ingest path caches the price book; a new price must still apply immediately."""
    t_old = env.month + timedelta(days=1)
    t_new = env.month + timedelta(days=20)
    assert env.post(env.event("p-old", occurred_at=ts(t_old))).status_code == 200  # warms caches
    r = _load(
        env,
        [
            {
                "model": "gpt-test",
                "effective_from": ts(env.month + timedelta(days=10)),
                "input_per_mtok": "100",
                "output_per_mtok": "100",
                "cached_input_per_mtok": "100",
            }
        ],
    )
    assert r.get_json()["inserted"] == 1
    assert env.post(env.event("p-new", occurred_at=ts(t_new))).status_code == 200
    rows = env.client.get(
        "/v1/usage",
        query_string={"start": ts(env.month), "end": ts(env.next_month), "granularity": "day"},
        headers=env.read,
    ).get_json()["rows"]
    costs = {r["period_start"][:10]: Decimal(r["cost"]) for r in rows}
    assert costs[f"{t_old:%Y-%m-%d}"] == Decimal("0.00996")
    assert costs[f"{t_new:%Y-%m-%d}"] == Decimal("0.15")  # 1500 tokens x 100 / 1e6

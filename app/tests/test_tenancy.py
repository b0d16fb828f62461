"""Customer-bound keys: reads and ingests of their own customer only."""

from __future__ import annotations

from typing import Any

import pytest

from token_billing.cli import main

from .tb_testlib import Env, bearer, ts


def _bound(env: Env, scopes: list[str], customer: str = "acme") -> dict[str, str]:
    r = env.client.post(
        "/v1/api-keys",
        json={"name": f"portal-{customer}", "scopes": scopes, "customer_id": customer},
        headers=env.admin,
    )
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["customer_id"] == customer
    return bearer(r.get_json()["key"])


def _code(r: Any) -> tuple[int, str | None]:
    body = r.get_json() or {}
    return r.status_code, body.get("error", {}).get("code")


def test_bound_key_reads_only_its_customer(env: Env) -> None:
    key = _bound(env, ["read"])
    period = {"start": ts(env.month), "end": ts(env.next_month)}
    get = env.client.get
    assert get("/v1/customers/acme/spend", headers=key).status_code == 200
    assert _code(get("/v1/customers/globex/spend", headers=key)) == (403, "customer_forbidden")
    assert _code(get("/v1/usage", query_string=period, headers=key)) == (403, "customer_required")
    own = {**period, "customer_id": "acme"}
    other = {**period, "customer_id": "globex"}
    assert get("/v1/usage", query_string=own, headers=key).status_code == 200
    assert _code(get("/v1/usage", query_string=other, headers=key))[0] == 403
    assert get("/v1/usage/export", query_string=own, headers=key).status_code == 200
    assert _code(get("/v1/usage/export", query_string=other, headers=key))[0] == 403
    assert get("/v1/usage/conflicts", query_string=own, headers=key).status_code == 200
    assert _code(get("/v1/usage/conflicts", query_string=other, headers=key))[0] == 403
    assert _code(get("/v1/customers", headers=key)) == (403, "customer_required")
    r = get("/v1/customers", query_string={"customer_id": "acme"}, headers=key)
    assert [c["customer_id"] for c in r.get_json()["customers"]] == ["acme"]
    assert _code(get("/v1/unpriced", headers=key))[0] == 403
    assert get("/v1/prices", headers=key).status_code == 200  # the price list is public data
    assert _code(get("/v1/invoices", headers=key)) == (403, "customer_required")
    assert get("/v1/invoices", query_string={"customer_id": "acme"}, headers=key).status_code == 200
    # an invoice is checked against its customer once loaded
    env.post([env.event("t-1"), env.event("t-2", customer_id="globex")])
    month = env.month.strftime("%Y-%m")
    ids = {}
    for cust in ("acme", "globex"):
        r = env.client.post(
            "/v1/invoices", json={"customer_id": cust, "month": month}, headers=env.admin
        )
        ids[cust] = r.get_json()["invoice_id"]
    assert get(f"/v1/invoices/{ids['acme']}", headers=key).status_code == 200
    assert _code(get(f"/v1/invoices/{ids['globex']}", headers=key))[0] == 403
    # an unbound read key still reads everything
    assert get("/v1/usage", query_string=period, headers=env.read).status_code == 200


def test_bound_key_ingests_only_its_customer(env: Env) -> None:
    key = _bound(env, ["ingest"])
    assert env.post(env.event("i-1"), headers=key).status_code == 200
    r = env.post([env.event("i-2"), env.event("i-3", customer_id="globex")], headers=key)
    assert _code(r) == (403, "customer_forbidden")
    assert env.count_events() == 1  # nothing of the refused batch was stored
    assert _code(env.post(env.event("i-4", customer_id="globex"), headers=key))[0] == 403
    # its scopes still apply
    r = env.client.get("/v1/customers/acme/spend", headers=key)
    assert _code(r) == (403, "insufficient_scope")


def test_bound_keys_are_validated(env: Env) -> None:
    def create(body: dict[str, Any]) -> tuple[int, str | None]:
        return _code(env.client.post("/v1/api-keys", json=body, headers=env.admin))

    assert create({"scopes": ["admin"], "customer_id": "acme"}) == (400, "invalid_value")
    assert create({"scopes": ["read"], "customer_id": "nobody"}) == (404, "unknown_customer")
    assert create({"scopes": ["root"]}) == (400, "invalid_scopes")
    assert (
        _code(env.client.post("/v1/api-keys", json={"scopes": ["read"]}, headers=env.read))[0]
        == 403
    )
    r = env.client.get("/v1/api-keys", headers=env.admin)
    bound = [k for k in r.get_json()["api_keys"] if k["customer_id"]]
    assert bound == []
    key = _bound(env, ["read"], "globex")
    listed = env.client.get("/v1/api-keys", headers=env.admin).get_json()["api_keys"]
    key_id = next(k["key_id"] for k in listed if k["customer_id"] == "globex")
    assert env.client.delete(f"/v1/api-keys/{key_id}", headers=env.admin).status_code == 200
    assert env.client.delete(f"/v1/api-keys/{key_id}", headers=env.admin).status_code == 404
    assert key  # revoked keys stop at the auth cache's TTL (unchanged semantics)


def test_every_route_declares_its_tenancy(env: Env) -> None:
    public = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/static/<path:filename>"}
    for rule in env.app.url_map.iter_rules():
        if rule.rule in public:
            continue
        view = env.app.view_functions[rule.endpoint]
        assert getattr(view, "tenancy", None) in ("param", "body", "none", "platform"), rule.rule


def test_cli_creates_a_bound_key(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKEN_BILLING_CONFIG", raising=False)
    monkeypatch.setenv("TOKEN_BILLING_DATABASE_URL", env.settings.database_url)
    args = ["create-api-key", "--name", "portal", "--scopes", "read", "--customer", "globex"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "bound to customer globex" in out.err
    key = bearer(out.out.strip())
    assert env.client.get("/v1/customers/globex/spend", headers=key).status_code == 200
    assert env.client.get("/v1/customers/acme/spend", headers=key).status_code == 403
    assert main([*args[:-1], "nobody"]) == 1
    assert "unknown customer_id 'nobody'" in capsys.readouterr().err

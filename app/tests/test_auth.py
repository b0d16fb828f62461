"""API keys: 401 for missing/invalid/revoked keys, 403 for a missing scope."""

from __future__ import annotations

import pytest

from token_billing import auth
from token_billing.errors import InvalidInput, StateConflict

from .tb_testlib import Env, bearer


def _tamper(key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def test_401_cases(env: Env) -> None:
    cases = [
        ({}, "missing_api_key"),
        ({"Authorization": "Basic abc"}, "invalid_api_key"),
        ({"Authorization": "Bearer"}, "invalid_api_key"),
        ({"Authorization": "Bearer nope"}, "invalid_api_key"),
        (bearer("tbk_0123456789abcdef_" + "x" * 43), "invalid_api_key"),
        (bearer(_tamper(env.keys["admin"])), "invalid_api_key"),
    ]
    for headers, code in cases:
        r = env.client.post("/v1/usage/events", json=env.event(), headers=headers)
        assert r.status_code == 401, headers
        assert r.get_json()["error"]["code"] == code
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        # the key is never echoed back
        assert "x" * 20 not in r.get_data(as_text=True)
    assert env.count_events() == 0


def test_403_scope(env: Env) -> None:
    r = env.client.get("/v1/prices", headers=env.ingest)
    assert r.status_code == 403
    err = r.get_json()["error"]
    assert err["code"] == "insufficient_scope"
    assert "'read'" in err["message"] and "GET /v1/prices" in err["message"]
    assert env.post(env.event(), headers=env.read).status_code == 403
    assert (
        env.client.post("/v1/customers", json={"customer_id": "x"}, headers=env.read).status_code
        == 403
    )
    # admin implies everything
    assert env.post(env.event(), headers=env.admin).status_code == 200
    assert env.client.get("/v1/prices", headers=env.admin).status_code == 200
    assert env.count_events() == 1


def test_revoked_key(env: Env) -> None:
    key = env.keys["ingest"]
    key_id = auth.split_key(key)
    assert key_id
    with env.engine.begin() as conn:
        assert auth.revoke_key(conn, key_id)
        assert not auth.revoke_key(conn, key_id)
    r = env.post(env.event())
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "revoked_api_key"


def test_keys_stored_hashed(env: Env) -> None:
    with env.engine.connect() as conn:
        rows = auth.list_keys(conn)
        hashes = [r[0] for r in conn.exec_driver_sql("SELECT key_hash FROM api_keys").fetchall()]
    assert len(rows) == 3
    for key in env.keys.values():
        assert key not in hashes and auth.hash_key(key) in hashes
        assert not any(key in str(r) for r in rows)


def test_scopes_parsing_and_provisioned_keys(env: Env) -> None:
    assert auth.parse_scopes("read, ingest") == {"read", "ingest"}
    with pytest.raises(InvalidInput, match="invalid scopes"):
        auth.parse_scopes("read,root")
    with pytest.raises(InvalidInput):
        auth.parse_scopes("")
    pre = auth.generate_key()
    with env.engine.begin() as conn:
        kid, same = auth.create_key(conn, "deploy", frozenset({"read"}), pre)
        assert same == pre
        # provisioning the same key again is a no-op; a different secret is refused
        assert auth.create_key(conn, "deploy", frozenset({"read"}), pre)[0] == kid
        with pytest.raises(StateConflict, match="already exists"):
            auth.create_key(conn, "deploy", frozenset({"read"}), pre[:-4] + "AAAA")
        with pytest.raises(InvalidInput, match="must look like"):
            auth.create_key(conn, "x", frozenset({"read"}), "short")
    assert env.client.get("/v1/prices", headers=bearer(pre)).status_code == 200


def test_public_endpoints_need_no_key(env: Env) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert env.client.get(path).status_code == 200, path


def test_auth_cache_bounds_revocation_delay(env: Env) -> None:
    import time

    from token_billing.app import create_app

    from .tb_testlib import make_settings

    settings = make_settings(env.settings.database_url, auth_cache_seconds="1")
    client = create_app(settings, env.engine).test_client()
    assert client.get("/v1/prices", headers=env.read).status_code == 200
    with env.engine.begin() as conn:
        assert auth.revoke_key(conn, auth.split_key(env.keys["read"]) or "")
    # cached for at most auth_cache_seconds...
    assert client.get("/v1/prices", headers=env.read).status_code == 200
    time.sleep(1.1)
    r = client.get("/v1/prices", headers=env.read)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "revoked_api_key"
    # failures are never cached
    assert client.get("/v1/prices", headers=bearer("tbk_nope")).status_code == 401

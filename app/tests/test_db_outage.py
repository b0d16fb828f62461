"""Database unreachable -> 503 + Retry-After, nothing half-stored, recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from token_billing.app import create_app
from token_billing.db import make_engine
from token_billing.migrate import upgrade

from .pgcluster import PgCluster
from .tb_testlib import Env, make_settings, provision


def test_failure_mid_transaction_stores_nothing(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection dies after the events were inserted, before COMMIT."""
    if env.engine.dialect.name == "postgresql":
        from token_billing.storage import pg

        # the server kills our own backend while executing the insert statement
        monkeypatch.setattr(
            pg,
            "_PG_INGEST",
            pg._PG_INGEST.replace(
                "SELECT event_id FROM ins WHERE",
                "SELECT event_id FROM ins WHERE pg_terminate_backend(pg_backend_pid()) OR",
            ),
        )
    else:

        def broken(*_a: object, **_k: object) -> None:
            raise OperationalError("INSERT INTO usage_hourly", {}, Exception("disk I/O error"))

        from token_billing.storage.sqlite import SqliteStore

        monkeypatch.setattr(SqliteStore, "_upsert_rollups", broken)
    batch = [env.event(f"half-{i}") for i in range(10)]
    r = env.post(batch)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == str(env.settings.retry_after_seconds)
    assert r.get_json()["error"]["code"] == "database_unavailable"
    assert env.count_events() == 0
    monkeypatch.undo()
    r = env.post(batch)
    assert r.status_code == 200 and r.get_json()["accepted"] == 10
    assert env.rollup_totals()[0] == 10


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster(prefix="tb-pg-outage-")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_postgres_down_then_back(own_cluster: PgCluster) -> None:
    url = own_cluster.create_database("billing")
    settings = make_settings(url, db_connect_timeout="2", retry_after_seconds="3")
    engine = make_engine(settings)
    upgrade(engine)
    keys = provision(engine, settings)
    app = create_app(settings, engine)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {keys['ingest']}"}
    env = Env(app, client, engine, settings, {}, headers, {}, keys, *_months())
    assert env.post(env.event("before")).status_code == 200
    assert client.get("/readyz").status_code == 200

    own_cluster.stop()
    r = env.post(env.event("during"))
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "3"
    assert "nothing was stored" in r.get_json()["error"]["message"]
    rz = client.get("/readyz")
    assert rz.status_code == 503 and rz.get_json()["status"] == "unavailable"
    assert client.get("/healthz").status_code == 200  # the process itself is fine

    own_cluster.restart_same_port()
    r = env.post([env.event("during"), env.event("before")])
    assert r.status_code == 200
    assert (r.get_json()["accepted"], r.get_json()["duplicates"]) == (1, 1)
    assert client.get("/readyz").status_code == 200
    assert env.count_events() == 2
    engine.dispose()


def test_sqlite_unreachable_then_recovers(tmp_path: Path) -> None:
    db_dir = tmp_path / "not-yet"
    settings = make_settings(f"sqlite:///{db_dir}/billing.db")
    engine = make_engine(settings)
    app = create_app(settings, engine)
    client = app.test_client()
    r = client.post(
        "/v1/usage/events",
        json={},
        headers={"Authorization": "Bearer tbk_0123456789abcdef_" + "x" * 43},
    )
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert client.get("/readyz").status_code == 503
    db_dir.mkdir()
    assert client.get("/readyz").status_code == 503  # reachable now, but not migrated
    assert "migrate" in client.get("/readyz").get_json()["schema"]["message"]
    upgrade(engine)
    keys = provision(engine, settings)
    env = Env(
        app,
        client,
        engine,
        settings,
        {},
        {"Authorization": f"Bearer {keys['ingest']}"},
        {},
        keys,
        *_months(),
    )
    assert env.post(env.event("x")).status_code == 200
    assert client.get("/readyz").status_code == 200
    engine.dispose()


def _months() -> tuple[object, object]:
    from datetime import UTC, datetime

    from .tb_testlib import add_months, month_start

    m = add_months(month_start(datetime.now(UTC)), -2)
    return m, add_months(m, 1)


def test_a_read_only_server_answers_503_and_its_connections_are_dropped(
    pg_cluster: PgCluster,
) -> None:
    """A database leader demoted by a failover, reached before the balancers moved: every
    write meets PostgreSQL's read-only error (SQLSTATE 25006). The service answers 503 with
    nothing stored and drops the connections, so that once the address leads to a writable
    server the resend is stored (a kept pooled connection would go on failing)."""
    import psycopg
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from token_billing.db import is_unavailable_error

    from .tb_testlib import _new_pg_database

    url = _new_pg_database(pg_cluster)
    name = make_url(url).database
    settings = make_settings(url, retry_after_seconds="3")
    engine = make_engine(settings)
    keys = provision(engine, settings)
    engine.dispose()

    def read_only(on: bool) -> None:
        setting = "default_transaction_read_only"
        change = f"SET {setting} = on" if on else f"RESET {setting}"
        with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" {change}')

    read_only(True)
    app = create_app(settings, engine)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {keys['ingest']}"}
    env = Env(app, client, engine, settings, {}, headers, {}, keys, *_months())
    batch = [env.event(f"read-only-{i}") for i in range(5)]
    r = env.post(batch)
    assert r.status_code == 503, r.get_json()
    assert r.headers["Retry-After"] == "3"
    assert r.get_json()["error"]["code"] == "database_unavailable"
    assert env.count_events() == 0  # reads work there
    # a write through the engine: every connection made before it is dropped
    with pytest.raises(Exception) as caught, engine.begin() as conn:
        conn.execute(text("CREATE TABLE read_only_probe (x int)"))
    assert is_unavailable_error(caught.value), caught.value

    read_only(False)
    r = env.post(batch)
    assert r.status_code == 200 and r.get_json()["accepted"] == 5, r.get_json()
    assert env.count_events() == 5
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE read_only_probe (x int)"))
    engine.dispose()

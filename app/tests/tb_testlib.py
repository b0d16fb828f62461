"""Shared test helpers and fixtures (re-exported by conftest.py; imported by the tests
under this unique module name so other conftest.py files in a combined run never shadow it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from token_billing import auth
from token_billing.app import create_app
from token_billing.config import Settings, load_settings
from token_billing.customers import upsert_customer
from token_billing.db import make_engine
from token_billing.migrate import upgrade
from token_billing.pricing import parse_price_records, store_prices
from token_billing.schema import (
    usage_daily,
    usage_daily_all,
    usage_events,
    usage_hourly,
    usage_hourly_all,
    usage_pending,
)
from token_billing.storage.flush import flush

from .pgcluster import PgBinariesMissing, PgCluster

BACKENDS = ["sqlite", "postgresql"]
TEMPLATE_DB = "tb_template"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster()
    except PgBinariesMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    cluster.start()
    try:
        url = cluster.create_database(TEMPLATE_DB)
        engine = make_engine(load_settings({"TOKEN_BILLING_DATABASE_URL": url}))
        upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.destroy()


def _new_pg_database(cluster: PgCluster) -> str:
    import psycopg

    name = "tb_" + uuid.uuid4().hex[:12]
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    return cluster.url(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Any, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/billing.db"
        engine = make_engine(load_settings({"TOKEN_BILLING_DATABASE_URL": url}))
        upgrade(engine)
        engine.dispose()
        return url
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return _new_pg_database(cluster)


def make_settings(db_url: str, **extra: str) -> Settings:
    env = {"TOKEN_BILLING_DATABASE_URL": db_url, "TOKEN_BILLING_LOG_LEVEL": "warning"}
    env.update({f"TOKEN_BILLING_{k.upper()}": v for k, v in extra.items()})
    return load_settings(env)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings)
    yield eng
    eng.dispose()


def month_start(dt: datetime) -> datetime:
    return dt.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(dt: datetime, n: int) -> datetime:
    y, m = divmod(dt.month - 1 + n, 12)
    return dt.replace(year=dt.year + y, month=m + 1)


@dataclass
class Env:
    """A ready service: app, client, keys, one customer, one priced model."""

    app: Any
    client: Any
    engine: Engine
    settings: Settings
    admin: dict[str, str]
    ingest: dict[str, str]
    read: dict[str, str]
    keys: dict[str, str]
    # a closed month well inside the accepted event age, and the one after it
    month: datetime
    next_month: datetime

    def event(self, event_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "event_id": event_id or uuid.uuid4().hex,
            "customer_id": "acme",
            "model": "gpt-test",
            "input_tokens": 1000,
            "cached_input_tokens": 200,
            "output_tokens": 500,
            "occurred_at": ts(self.month + timedelta(days=3, hours=5, minutes=7)),
        }
        ev.update(overrides)
        return ev

    def post(self, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post("/v1/usage/events", json=body, headers=headers or self.ingest)

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(usage_events)).scalar_one())

    def rollup_totals(self) -> tuple[int, int, int, int]:
        """Totals of the hourly rollup. Asserts that the views (rollups + pending) agree
        with the raw events, then flushes pending and asserts the rollup tables do."""
        with self.engine.begin() as conn:
            ev = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(usage_events.c.input_tokens), 0),
                    func.coalesce(func.sum(usage_events.c.cached_input_tokens), 0),
                    func.coalesce(func.sum(usage_events.c.output_tokens), 0),
                )
            ).one()
            events = tuple(int(x) for x in ev)
            for phase, tables in (
                ("before flush", (usage_hourly_all, usage_daily_all)),
                ("after flush", (usage_hourly, usage_daily)),
            ):
                if phase == "after flush":
                    flush(conn)
                for t in tables:
                    row = conn.execute(
                        select(
                            func.coalesce(func.sum(t.c.event_count), 0),
                            func.coalesce(func.sum(t.c.input_tokens), 0),
                            func.coalesce(func.sum(t.c.cached_input_tokens), 0),
                            func.coalesce(func.sum(t.c.output_tokens), 0),
                        )
                    ).one()
                    got = tuple(int(x) for x in row)
                    assert got == events, f"{t.name} {phase}: {got} != events {events}"
            pending = conn.execute(select(func.count()).select_from(usage_pending)).scalar_one()
            assert pending == 0, f"{pending} pending rows left after a flush"
        return events  # type: ignore[return-value]


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def provision(engine: Engine, settings: Settings) -> dict[str, str]:
    keys = {}
    with engine.execution_options(tb_write=True).begin() as conn:
        for scope in ("admin", "ingest", "read"):
            _, key = auth.create_key(conn, f"test-{scope}", frozenset({scope}))
            keys[scope] = key
    upsert_customer(engine, "acme", "Acme Corp")
    upsert_customer(engine, "globex", "Globex")
    now = datetime.now(UTC)
    base = add_months(month_start(now), -4)
    with engine.execution_options(tb_write=True).begin() as conn:
        store_prices(
            conn,
            parse_price_records(
                [
                    {
                        "model": "gpt-test",
                        "effective_from": ts(base),
                        "input_per_mtok": "3.00",
                        "output_per_mtok": "15.00",
                        "cached_input_per_mtok": "0.30",
                    },
                    {
                        "model": "small",
                        "effective_from": ts(base),
                        "input_per_mtok": "0.15",
                        "output_per_mtok": "0.60",
                        "cached_input_per_mtok": "0.075",
                    },
                ],
                settings.currency,
            ),
            settings.currency,
        )
    return keys


def migrated_with_keys(db_url: str) -> dict[str, str]:
    """Migrate the database at db_url, provision it (customers, prices, keys); the keys."""
    settings = make_settings(db_url)
    engine = make_engine(settings)
    try:
        upgrade(engine)
        return provision(engine, settings)
    finally:
        engine.dispose()


@pytest.fixture
def env(settings: Settings, engine: Engine) -> Env:
    keys = provision(engine, settings)
    app = create_app(settings, engine)
    app.testing = True
    now = datetime.now(UTC)
    month = add_months(month_start(now), -2)
    return Env(
        app=app,
        client=app.test_client(),
        engine=engine,
        settings=settings,
        admin=bearer(keys["admin"]),
        ingest=bearer(keys["ingest"]),
        read=bearer(keys["read"]),
        keys=keys,
        month=month,
        next_month=add_months(month, 1),
    )

"""A real PostgreSQL with the billing schema and a month of usage, the billing API on
loopback, and a read-only role for the report."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

_PGCLUSTER = Path(__file__).resolve().parents[2] / "app" / "tests" / "pgcluster.py"


def _load_pgcluster() -> Any:
    """The billing tests' cluster helper, loaded by path (one helper, two test suites)."""
    spec = importlib.util.spec_from_file_location("report_tests_pgcluster", _PGCLUSTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def month_start(dt: datetime, back: int) -> datetime:
    y, m = divmod(dt.year * 12 + dt.month - 1 - back, 12)
    return datetime(y, m + 1, 1, tzinfo=UTC)


@dataclass
class Billing:
    superuser_url: str
    readonly_url: str
    api_url: str
    read_key: str
    client: Any
    ingest: dict[str, str]
    month: datetime  # the reported month (closed)
    previous: datetime


@pytest.fixture(scope="module")
def billing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Billing]:
    from token_billing import auth
    from token_billing.app import create_app
    from token_billing.config import load_settings
    from token_billing.customers import upsert_customer
    from token_billing.db import make_engine
    from token_billing.migrate import upgrade
    from token_billing.pricing import parse_price_records, store_prices
    from werkzeug.serving import make_server

    pgc = _load_pgcluster()
    cluster = pgc.PgCluster(prefix="tb-report-")
    cluster.start()
    try:
        url = cluster.create_database("billing")
        settings = load_settings(
            {"TOKEN_BILLING_DATABASE_URL": url, "TOKEN_BILLING_LOG_LEVEL": "warning"}
        )
        engine = make_engine(settings)
        upgrade(engine)
        now = datetime.now(UTC)
        month, previous = month_start(now, 2), month_start(now, 3)
        with engine.execution_options(tb_write=True).begin() as conn:
            _, read_key = auth.create_key(conn, "report", frozenset({"read"}))
            _, ingest_key = auth.create_key(conn, "load", frozenset({"ingest"}))
            store_prices(
                conn,
                parse_price_records(
                    [
                        {
                            "model": "gpt-a",
                            "effective_from": previous.isoformat(),
                            "input_per_mtok": "3.00",
                            "output_per_mtok": "15.00",
                            "cached_input_per_mtok": "0.30",
                        },
                        {
                            "model": "gpt-a",  # a price change in the middle of the month
                            "effective_from": (month + timedelta(days=14)).isoformat(),
                            "input_per_mtok": "2.50",
                            "output_per_mtok": "12.50",
                            "cached_input_per_mtok": "0.25",
                        },
                        {
                            "model": "small",
                            "effective_from": previous.isoformat(),
                            "input_per_mtok": "0.15",
                            "output_per_mtok": "0.60",
                            "cached_input_per_mtok": "0.075",
                        },
                    ],
                    "USD",
                ),
                "USD",
            )
        for cid in ("acme", "globex/eu", "初"):
            upsert_customer(engine, cid, cid)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE ROLE reporting_ro LOGIN PASSWORD 'ro-secret'")
            conn.exec_driver_sql("GRANT SELECT ON usage_daily_all, prices TO reporting_ro")
        engine.dispose()
        app = create_app(settings)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        ro_url = url.replace("//postgres@", "//reporting_ro:ro-secret@", 1)
        assert ro_url != url, url
        yield Billing(
            superuser_url=url,
            readonly_url=ro_url,
            api_url=f"http://127.0.0.1:{server.server_port}",
            read_key=read_key,
            client=app.test_client(),
            ingest={"Authorization": f"Bearer {ingest_key}"},
            month=month,
            previous=previous,
        )
        server.shutdown()
    finally:
        cluster.destroy()

"""The monthly report against a real billing database and API."""

from __future__ import annotations

import csv
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from report_engine import check, cli, report, source
from report_engine.publish import path_name
from report_engine.source import Month

from .conftest import Billing

PNG = b"\x89PNG\r\n\x1a\n"


def _load(billing: Billing) -> dict[str, int]:
    """Events over both months for three customers; returns tokens per customer in the
    reported month (input + output)."""
    rng = random.Random(11)
    tokens: dict[str, int] = {}
    batch = []
    for start, tag in ((billing.previous, "p"), (billing.month, "m")):
        for k in range(400):
            customer = rng.choice(["acme", "acme", "globex/eu", "初"])
            inp = rng.randint(1, 9000)
            out = rng.randint(0, 3000)
            batch.append(
                {
                    "event_id": f"{tag}-{k}",
                    "customer_id": customer,
                    "model": rng.choice(["gpt-a", "small"]),
                    "input_tokens": inp,
                    "cached_input_tokens": rng.randint(0, inp),
                    "output_tokens": out,
                    "occurred_at": (start + timedelta(minutes=rng.randint(0, 27 * 1440)))
                    .isoformat()
                    .replace("+00:00", "Z"),
                }
            )
            if tag == "m":
                tokens[customer] = tokens.get(customer, 0) + inp + out
    for i in range(0, len(batch), 200):
        r = billing.client.post("/v1/usage/events", json=batch[i : i + 200], headers=billing.ingest)
        assert r.status_code == 200, r.get_json()
    return tokens


@pytest.fixture(scope="module")
def loaded(billing: Billing) -> dict[str, int]:
    return _load(billing)


def test_readonly_role_cannot_write(billing: Billing) -> None:
    engine = create_engine(billing.readonly_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM usage_daily_all")).scalar_one() >= 0
    for write in ("DELETE FROM usage_daily", "DELETE FROM prices", "DELETE FROM usage_pending"):
        with engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(write))
    for table in ("usage_events", "usage_daily", "usage_pending"):
        with engine.connect() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(f"SELECT count(*) FROM {table}"))
    engine.dispose()


def test_month_report(billing: Billing, loaded: dict[str, int], tmp_path: Path) -> None:
    engine = create_engine(billing.readonly_url)
    month = Month(billing.month)
    result = report.run(engine, month, tmp_path, billing.api_url, billing.read_key)
    assert result.customers == 3 and result.rows_checked >= 5
    root = tmp_path / str(month)
    assert root.is_symlink()
    for scope in [root] + [root / "customers" / path_name(c) for c in loaded]:
        for name in ("tokens.png", "spend.png"):
            data = (scope / name).read_bytes()
            assert data.startswith(PNG) and len(data) > 5000, scope / name
        page = (scope / "index.html").read_text()
        assert 'src="tokens.png"' in page and 'src="spend.png"' in page
    for customer, expected in loaded.items():
        with (root / "customers" / path_name(customer) / "daily.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert sum(int(r["input_tokens"]) + int(r["output_tokens"]) for r in rows) == expected
    with (root / "daily.csv").open() as fh:
        platform_cost = sum(Decimal(r["cost"]) for r in csv.DictReader(fh))
    api = check.api_totals(billing.api_url, billing.read_key, month)
    assert platform_cost == sum((v["cost"] for v in api.values()), Decimal(0))
    assert str(month) in (tmp_path / "index.html").read_text()
    assert "customers/globex%2Feu/index.html" in (root / "index.html").read_text()

    # a re-run replaces the month: a new build behind the same link, the old one gone
    first = root.resolve()
    report.run(engine, month, tmp_path, billing.api_url, billing.read_key)
    assert root.resolve() != first and not first.exists()
    engine.dispose()


def test_totals_that_differ_from_the_api_publish_nothing(
    billing: Billing, loaded: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(billing.readonly_url)
    month = Month(billing.month)
    report.run(engine, month, tmp_path, billing.api_url, billing.read_key)
    published = (tmp_path / str(month)).resolve()
    # the report prices a little differently from the billing service (a bug it must catch)
    real_cost = source.cost
    monkeypatch.setattr(source, "cost", lambda *a: real_cost(*a) + Decimal("0.000000001"))
    with pytest.raises(check.TotalsMismatch, match="cost: report"):
        report.run(engine, month, tmp_path, billing.api_url, billing.read_key)
    assert (tmp_path / str(month)).resolve() == published
    assert not list((tmp_path / ".builds").glob("*.tmp"))
    engine.dispose()


def test_cli(
    billing: Billing,
    loaded: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(billing.read_key + "\n")
    monkeypatch.setenv("REPORT_ENGINE_DATABASE_URL", billing.readonly_url)
    monkeypatch.setenv("REPORT_ENGINE_API_URL", billing.api_url)
    monkeypatch.setenv("REPORT_ENGINE_API_KEY_FILE", str(key_file))
    out = tmp_path / "out"
    month = str(Month(billing.month))
    assert cli.main(["--month", month, "--output", str(out)]) == 0
    assert f"{month}: 3 customers" in capsys.readouterr().err
    assert cli.main(["--month", "2026-13", "--output", str(out)]) == 2
    assert "month must be YYYY-MM" in capsys.readouterr().err
    monkeypatch.setenv("REPORT_ENGINE_API_URL", "file:///etc/passwd")
    assert cli.main(["--month", month, "--output", str(out)]) == 2
    assert "must be http(s)" in capsys.readouterr().err

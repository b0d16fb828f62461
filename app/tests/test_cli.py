"""The token-billing CLI end to end (in-process, same entry point as the console script)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from token_billing import __version__
from token_billing.app import create_app
from token_billing.cli import main
from token_billing.config import load_settings

from .tb_testlib import add_months, month_start, ts


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> str:
    for var in ("TOKEN_BILLING_CONFIG", "TOKEN_BILLING_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TOKEN_BILLING_DATABASE_URL", db_url)
    monkeypatch.setenv("TOKEN_BILLING_LOG_LEVEL", "warning")
    monkeypatch.setenv("TOKEN_BILLING_AUTH_CACHE_SECONDS", "0")  # revocation checked at once
    return db_url


def test_cli_workflow(
    cli_env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["migrate"]) == 0
    assert "already at" in capsys.readouterr().out
    assert main(["check-config", "--connect"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["schema"]["ok"]

    assert main(["create-customer", "acme", "--name", "Acme"]) == 0
    assert main(["create-customer", "acme"]) == 0
    assert "already exists" in capsys.readouterr().out

    month = add_months(month_start(datetime.now(UTC)), -2)
    prices = tmp_path / "prices.toml"
    prices.write_text(
        "[[prices]]\n"
        'model = "m1"\n'
        f'effective_from = "{ts(month)}"\n'
        'input_per_mtok = "2.5"\n'
        "output_per_mtok = 10\n"
        "cached_input_per_mtok = 1.25\n"
    )
    assert main(["load-prices", str(prices)]) == 0
    assert "1 new" in capsys.readouterr().out
    assert main(["load-prices", str(prices)]) == 0
    assert "1 unchanged" in capsys.readouterr().out
    csv_prices = tmp_path / "p.csv"
    csv_prices.write_text(
        f"model,effective_from,input_per_mtok,output_per_mtok\nm2,{ts(month)},1,2\n"
    )
    assert main(["load-prices", str(csv_prices)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(
        '[{"model": "m3", "effective_from": "soon", "input_per_mtok": "1", "output_per_mtok": "1"}]'
    )
    assert main(["load-prices", str(bad)]) == 1
    assert "effective_from" in capsys.readouterr().err

    assert main(["create-api-key", "--name", "ops", "--scopes", "ingest,read"]) == 0
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert key.startswith("tbk_") and "created API key" in captured.err
    assert main(["create-api-key", "--name", "x", "--scopes", "root"]) == 1
    capsys.readouterr()
    monkeypatch.setenv("ADMIN_KEY", "tbk_00112233445566aa_" + "s" * 43)
    assert (
        main(["create-api-key", "--name", "deploy", "--scopes", "admin", "--key-env", "ADMIN_KEY"])
        == 0
    )
    assert (
        main(["create-api-key", "--name", "deploy", "--scopes", "admin", "--key-env", "ADMIN_KEY"])
        == 0
    )
    assert capsys.readouterr().out == ""  # a supplied key is never printed
    assert main(["list-api-keys"]) == 0
    listing = capsys.readouterr().out
    assert "00112233445566aa" in listing and "s" * 43 not in listing and key not in listing

    app = create_app(load_settings())
    client = app.test_client()
    events = [
        {
            "event_id": f"c{i}",
            "customer_id": "acme",
            "model": "m1",
            "input_tokens": 400_000,
            "cached_input_tokens": 100_000,
            "output_tokens": 50_000,
            "occurred_at": ts(month + timedelta(days=i)),
        }
        for i in range(4)
    ]
    r = client.post("/v1/usage/events", json=events, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200

    out_csv = tmp_path / "usage.csv"
    assert (
        main(
            [
                "export-csv",
                "--start",
                ts(month),
                "--end",
                ts(add_months(month, 1)),
                "--granularity",
                "month",
                "-o",
                str(out_csv),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert rows[0]["events"] == "4" and rows[0]["cost"] == "5.5"  # 4 * (0.75 + 0.125 + 0.5)

    assert main(["generate-invoices", "--month", f"{month:%Y-%m}", "--json"]) == 0
    invoices = json.loads(capsys.readouterr().out)
    assert [i["total"] for i in invoices] == ["5.50"]
    assert main(["generate-invoices", "--month", f"{month:%Y-%m}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == invoices
    assert main(["generate-invoices", "--month", "2024-99"]) == 1

    key_id = key.split("_")[1]
    assert main(["revoke-api-key", key_id]) == 0
    assert main(["revoke-api-key", key_id]) == 1
    r = client.get("/v1/prices", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401


def test_cli_version_and_config_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert __version__ in capsys.readouterr().out
    monkeypatch.setenv("TOKEN_BILLING_MAX_BATCH_SIZE", "-3")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'max_batch_size'" in err


def test_cli_db_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_BILLING_DATABASE_URL", "postgresql://u@127.0.0.1:1/x")
    monkeypatch.setenv("TOKEN_BILLING_DB_CONNECT_TIMEOUT", "2")
    assert main(["migrate"]) == 1
    assert "database unavailable" in capsys.readouterr().err

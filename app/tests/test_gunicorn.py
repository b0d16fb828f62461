"""Real gunicorn, 2 workers: /metrics aggregates over workers; SIGTERM is graceful."""

from __future__ import annotations

import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

from .gunicorn_proc import gunicorn
from .pgcluster import PgCluster, free_port
from .tb_testlib import add_months, migrated_with_keys, month_start, ts


def _metric(text: str, name: str, labels: str) -> float:
    m = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_gunicorn_two_workers_metrics(pg_cluster: PgCluster, tmp_path: Path) -> None:
    import psycopg

    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "tb_gunicorn" TEMPLATE "tb_template"')
    url = pg_cluster.url("tb_gunicorn")
    keys = migrated_with_keys(url)

    port = free_port()
    mp_dir = tmp_path / "prom"
    settings_env = {
        "database_url": url,
        "bind": f"127.0.0.1:{port}",
        "workers": "2",
        "threads": "2",
        "prometheus_multiproc_dir": str(mp_dir),
        "log_level": "info",
    }
    base = f"http://127.0.0.1:{port}"
    with gunicorn(settings_env, tmp_path / "gunicorn.log") as proc:
        month = add_months(month_start(datetime.now(UTC)), -1)
        headers = {"Authorization": f"Bearer {keys['ingest']}", "Connection": "close"}

        def post(i: int) -> int:
            body = {
                "event_id": f"g-{i}",
                "customer_id": "acme",
                "model": "gpt-test",
                "input_tokens": 10,
                "output_tokens": 1,
                "occurred_at": ts(month),
            }
            return requests.post(
                f"{base}/v1/usage/events", json=body, headers=headers, timeout=10
            ).status_code

        sent = 0
        pids: set[str] = set()
        with ThreadPoolExecutor(max_workers=6) as pool:
            while sent < 600:
                assert all(code == 200 for code in pool.map(post, range(sent, sent + 60)))
                sent += 60
                pids = {
                    m.group(1) for f in os.listdir(mp_dir) if (m := re.search(r"_(\d+)\.db$", f))
                }
                if len(pids) >= 2 and sent >= 120:
                    break
        assert len(pids) >= 2, f"requests never reached both workers: {pids}"
        # whichever worker answers, /metrics shows the sum over both
        for _ in range(6):
            text = requests.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=5).text
            assert _metric(text, "token_billing_events_total", 'outcome="accepted"') == sent
            assert (
                _metric(text, "token_billing_tokens_total", 'kind="input",model="gpt-test"')
                == sent * 10
            )
            assert "token_billing_http_request_duration_seconds_bucket" in text

        # graceful shutdown on SIGTERM
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    out = (tmp_path / "gunicorn.log").read_text()
    assert '"msg": "request"' in out  # structured JSON access lines
    assert keys["ingest"] not in out and "Bearer" not in out  # no secrets in logs
    # worker_exit disposed each worker's engine without raising
    assert "Exception during worker exit" not in out, out[-2000:]

"""Reporting hosts: the report engine in its own env family next to the billing
service, on a monthly timer, its reports served read-only and opened by a real
headless browser (screenshot kept under build/artifacts/)."""

import base64
import csv
import io
import json
import os
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from labhosts import hosts_of

testinfra_hosts = hosts_of("reporting")

ENVS = "/opt/miniconda3/envs"
OUT = "/srv/report-engine"
READ = "tbk_9f8e7d6c5b4a3921_labAdminKeyNotSecretOnlyForTheLab001"
INGEST = "tbk_1a2b3c4d5e6f7081_labIngestKeyNotSecretOnlyForTheLab01"
ARTIFACTS = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / "build" / "artifacts" / os.environ.get(
    "MOLECULE_SCENARIO_NAME", "lab")


def py(host, env: str, code: str) -> str:
    return host.check_output(f"{ENVS}/{env}/bin/python -c %s", code)


def test_both_families_present(host):
    envs = host.check_output(f"ls {ENVS}").split()
    assert any(e.startswith("token-billing-v") for e in envs)
    assert {"reporting-engine-v1", "reporting-engine-v2"} <= set(envs)
    assert host.file("/opt/report-engine/current").linked_to == "/opt/report-engine/releases/v1"
    assert host.file("/opt/report-engine/releases/v1/env").linked_to == f"{ENVS}/reporting-engine-v1"


def test_each_service_imports_its_own_pins(host):
    billing_env = host.file("/opt/token-billing/current/env").linked_to.rsplit("/", 1)[-1]
    assert host.run(f"{ENVS}/{billing_env}/bin/python -c 'import pandas'").rc != 0
    assert py(host, "reporting-engine-v1", "import pandas; print(pandas.__version__)") == "2.2.3"
    assert py(host, "reporting-engine-v2", "import pandas; print(pandas.__version__)") == "2.3.3"
    sa = "import sqlalchemy; print(sqlalchemy.__version__)"
    assert py(host, "reporting-engine-v1", sa) == "2.0.44"
    assert py(host, billing_env, sa) != "2.0.44"
    # the billing process has its own env's libraries mapped, none of the reporting family's
    # (read as the service's user: root in the container lacks CAP_SYS_PTRACE for /proc/PID/maps)
    pid = host.check_output("systemctl show -P MainPID token-billing")
    maps = host.check_output(f"runuser -u token-billing -- cat /proc/{pid}/maps")
    assert f"{ENVS}/{billing_env}/" in maps and "reporting-engine" not in maps


@pytest.mark.parametrize(
    ("prop", "value"),
    [("User", "report-engine"), ("Type", "oneshot"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
     ("PrivateTmp", "yes"), ("ReadWritePaths", OUT)],
)
def test_unit_sandboxing(host, prop, value):
    assert host.service("report-engine").systemd_properties[prop] == value


def test_timer_is_scheduled_monthly(host):
    assert host.service("report-engine.timer").is_enabled
    assert host.check_output("systemctl show -P ActiveState report-engine.timer") == "active"
    listed = host.check_output("systemctl list-timers --all --no-pager report-engine.timer")
    assert "report-engine.service" in listed
    spec = host.check_output("systemctl show -P TimersCalendar report-engine.timer")
    assert "*-*-01 03:00:00 UTC" in spec
    assert host.file("/etc/systemd/system/report-engine.timer").content_string.startswith("#")


def api_month(host, month: str) -> dict[tuple[str, str], tuple[int, Decimal]]:
    start = f"{month}-01T00:00:00Z"
    y, m = map(int, month.split("-"))
    end = f"{y + m // 12:04d}-{m % 12 + 1:02d}-01T00:00:00Z"
    body = json.loads(host.check_output(
        "curl -fsS -H 'Authorization: Bearer %s' 'http://127.0.0.1:8000/v1/usage?start=%s&end=%s&granularity=month'",
        READ, start, end))
    return {(r["customer_id"], r["model"]): (int(r["events"]), Decimal(r["cost"])) for r in body["rows"]}


def ingest_this_month(host) -> None:
    now = datetime.now(UTC)
    at, run = now.strftime("%Y-%m-%dT%H:%M:%SZ"), now.strftime("%d%H%M%S%f")
    events = [
        {"event_id": f"report-{run}-{i}", "customer_id": ("acme", "globex")[i % 2], "model": "gpt-lab-small",
         "input_tokens": 1000 + i, "cached_input_tokens": i, "output_tokens": 10 * i, "occurred_at": at}
        for i in range(12)
    ]
    result = json.loads(host.check_output(
        "curl -fsS -X POST -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' "
        "--data-binary %s http://127.0.0.1:8000/v1/usage/events", INGEST, json.dumps(events)))
    assert result["accepted"] == len(events), result


def test_on_demand_run_produces_the_month_and_its_totals_equal_the_api(host):
    month = datetime.now(UTC).strftime("%Y-%m")
    ingest_this_month(host)
    # the previous month, as the timer would run it, and this month on demand
    host.check_output("systemctl start report-engine.service")
    host.check_output(f"systemctl start report-engine@{month}.service")
    for name in ("index.html", "daily.csv", "tokens.png", "spend.png"):
        assert host.file(f"{OUT}/{month}/{name}").exists, name
    assert f'href="{month}/' in host.file(f"{OUT}/index.html").content_string
    api = api_month(host, month)
    report: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for customer in sorted({c for c, _ in api}):
        csv_text = host.check_output(f"cat {OUT}/{month}/customers/{customer}/daily.csv")
        for r in csv.DictReader(io.StringIO(csv_text)):
            n, cost = report.get((customer, r["model"]), (0, Decimal(0)))
            report[(customer, r["model"])] = (n + int(r["events"]), cost + Decimal(r["cost"]))
    platform = list(csv.DictReader(io.StringIO(host.check_output(f"cat {OUT}/{month}/daily.csv"))))
    assert sum(Decimal(r["cost"]) for r in platform) == sum(cost for _, cost in api.values())
    assert sum(int(r["events"]) for r in platform) == sum(n for n, _ in api.values())
    assert report == api and report[("acme", "gpt-lab-small")][0] >= 6


def test_reports_served_read_only(host):
    month = datetime.now(UTC).strftime("%Y-%m")
    code = "%{http_code}"
    assert host.check_output(f"curl -s -o /dev/null -w {code} http://127.0.0.1:8090/") == "200"
    assert host.check_output(f"curl -s -o /dev/null -w {code} http://127.0.0.1:8090/{month}/tokens.png") == "200"
    for method in ("POST", "PUT", "DELETE"):
        assert host.check_output(f"curl -s -o /dev/null -w {code} -X {method} http://127.0.0.1:8090/index.html") in (
            "403", "405"), method
    assert host.check_output(f"curl -s -o /dev/null -w {code} http://127.0.0.1:8090/.builds/") == "404"
    listing = host.run(f"curl -s -w ' {code}' http://127.0.0.1:8090/{month}/customers/").stdout
    assert listing.endswith((" 403", " 404")) and "Index of" not in listing, listing


def test_page_opens_in_headless_chromium_with_every_chart(host):
    """Chromium from Debian (chromium-headless-shell), as root with --no-sandbox: a screenshot, and every <img>
    of the rendered DOM is a PNG the server gives the browser."""
    month = datetime.now(UTC).strftime("%Y-%m")
    host.check_output("command -v chromium-headless-shell >/dev/null || "
                      "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                      "--no-install-recommends chromium-headless-shell >/dev/null)")
    shell = "/usr/lib/chromium/chromium-headless-shell"
    shell = shell if host.file(shell).exists else "chromium-headless-shell"
    url = f"http://127.0.0.1:8090/{month}/index.html"
    flags = "--no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1800 --virtual-time-budget=10000"
    dom = host.check_output(f"{shell} {flags} --dump-dom {url} 2>/dev/null")
    images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    assert {"tokens.png", "spend.png"} <= set(images), dom[:2000]
    for src in images:
        ctype = host.check_output(f"curl -fsS -o /dev/null -w '%{{content_type}}' http://127.0.0.1:8090/{month}/{src}")
        assert ctype == "image/png", src
    # the browser's own log names any resource it failed to load
    shot = host.run(f"{shell} {flags} --enable-logging=stderr --v=0 --screenshot=/tmp/report-page.png {url}")
    assert shot.rc == 0, shot.stderr
    assert "Failed to load resource" not in shot.stderr and "net::ERR_" not in shot.stderr, shot.stderr
    png = host.file("/tmp/report-page.png")
    assert png.exists and png.size > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report-page.png").write_bytes(
        base64.b64decode(host.check_output("base64 -w0 /tmp/report-page.png")))

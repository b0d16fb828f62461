"""The whole stack on one host: an event sent through the load balancer is stored once."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from labhosts import hosts_of

testinfra_hosts = hosts_of("lb")

INGEST = "tbk_1a2b3c4d5e6f7081_labIngestKeyNotSecretOnlyForTheLab01"
READ = "tbk_9f8e7d6c5b4a3921_labAdminKeyNotSecretOnlyForTheLab001"


def post(host, body: dict) -> dict:
    out = host.check_output(
        "curl -sS -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer %s' "
        "--data-binary %s http://127.0.0.1/v1/usage/events",
        INGEST,
        json.dumps(body),
    )
    return json.loads(out)


def test_event_through_the_balancer_is_counted_once(host):
    event = {
        "event_id": f"allinone-{uuid.uuid4().hex}",
        "customer_id": "acme",
        "model": "gpt-lab-large",
        "input_tokens": 1000,
        "cached_input_tokens": 400,
        "output_tokens": 50,
        "occurred_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }
    first = post(host, event)
    again = post(host, event)
    assert (first["accepted"], first["duplicates"]) == (1, 0), first
    assert (again["accepted"], again["duplicates"]) == (0, 1), again


def test_unauthenticated_ingest_is_refused(host):
    code = host.check_output(
        "curl -s -o /dev/null -w %s -X POST -H 'Content-Type: application/json' "
        "--data-binary '{}' http://127.0.0.1/v1/usage/events",
        "%{http_code}",
    )
    assert code == "401"


def test_read_key_sees_the_usage(host):
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = day.strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = host.check_output(
        "curl -sS -H 'Authorization: Bearer %s' 'http://127.0.0.1/v1/usage?customer_id=acme&start=%s&end=%s'",
        READ,
        start,
        end,
    )
    assert "gpt-lab-large" in out, out

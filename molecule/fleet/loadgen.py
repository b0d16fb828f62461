"""Bounded load generator, run inside the load-balancer container against its own loopback.

Sends usage events with unique ids through HAProxy (127.0.0.1:80) from a few
threads, at a steady request rate, until a stop file appears, the deadline
passes or the request budget is spent. The count of answered requests is kept
in a progress file, so that a test can size its load phases in requests. Any
transport error, cut body, non-2xx answer or a body that does not
account for every event is a failed request; the batch is then resent with the
same event ids (idempotent ingest) until it is acknowledged or its retries run
out. Prints one JSON object: events sent, acknowledged and never acknowledged,
failed requests (the first few errors).
"""

import argparse
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

parser = argparse.ArgumentParser()
parser.add_argument("--key", required=True)
parser.add_argument("--run-id", required=True)
parser.add_argument("--url", default="http://127.0.0.1:80/v1/usage/events")
parser.add_argument("--threads", type=int, default=4)
parser.add_argument("--batch", type=int, default=5)
parser.add_argument("--max-requests", type=int, default=20000)
parser.add_argument("--deadline", type=float, default=300.0)
parser.add_argument("--rate", type=float, default=25.0, help="requests per second in all, 0: as fast as answered")
parser.add_argument("--stop-file", default="/tmp/loadgen.stop")
parser.add_argument("--progress-file", default="/tmp/loadgen.progress")
parser.add_argument("--retries", type=int, default=20, help="resends of a failed batch (same event ids)")
args = parser.parse_args()

lock = threading.Lock()
state = {"requests": 0, "answered": 0, "events_sent": 0, "events_acked": 0, "events_unacked": 0, "failed": 0,
         "errors": []}
start = time.monotonic()
pacing = {"next": start}


def budget() -> int | None:
    """The next request's number, once its turn at --rate has come; None when the budget is spent."""
    with lock:
        if state["requests"] >= args.max_requests:
            return None
        state["requests"] += 1
        n = state["requests"]
        # the next free slot, never in the past: after a stall the rate resumes instead of bursting
        turn = max(pacing["next"], time.monotonic())
        pacing["next"] = turn + (1 / args.rate if args.rate > 0 else 0)
    time.sleep(max(0.0, turn - time.monotonic()))
    return n


def answered() -> None:
    """One more request answered (acknowledged or given up): the progress file holds the count."""
    with lock:
        state["answered"] += 1
        count = state["answered"]
    tmp = f"{args.progress_file}.{threading.get_ident()}"
    with open(tmp, "w") as f:
        f.write(str(count))
    os.replace(tmp, args.progress_file)


def worker(n: int) -> None:
    seq = 0
    while time.monotonic() - start < args.deadline and not os.path.exists(args.stop_file):
        if budget() is None:
            return
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        events = []
        for _ in range(args.batch):
            seq += 1
            events.append({"event_id": f"{args.run_id}-{n}-{seq}", "customer_id": "acme", "model": "gpt-lab-small",
                           "input_tokens": 100, "output_tokens": 20, "occurred_at": now})
        with lock:
            state["events_sent"] += len(events)
        if send(events):
            with lock:
                state["events_acked"] += len(events)
        else:
            with lock:
                state["events_unacked"] += len(events)
        answered()


def send(events: list[dict]) -> bool:
    """POST the batch until every event is acknowledged; False when the retries ran out."""
    data = json.dumps({"events": events}).encode()
    for attempt in range(args.retries + 1):
        req = urllib.request.Request(args.url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {args.key}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = json.loads(resp.read())  # a cut body raises IncompleteRead or a JSON error
            if body["accepted"] + body["duplicates"] == len(events):
                return True
            problem = f"acknowledged {body['accepted'] + body['duplicates']} of {len(events)} events"
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        with lock:
            state["failed"] += 1
            if len(state["errors"]) < 5:
                state["errors"].append(problem)
        time.sleep(min(0.05 * (attempt + 1), 0.5))
    return False


threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
state["seconds"] = round(time.monotonic() - start, 1)
print(json.dumps(state))

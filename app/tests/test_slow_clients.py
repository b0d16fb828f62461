"""Slow senders cannot take a host out: the worker reads each request whole in its main
loop, so threads only ever serve complete requests, and a request not received within
request_read_timeout is answered 408 and closed."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import text

from token_billing.db import make_engine
from token_billing.worker import BufferedSocket, request_complete

from .gunicorn_proc import gunicorn
from .pgcluster import free_port
from .slowsend import trickle_many
from .tb_testlib import add_months, make_settings, migrated_with_keys, month_start, ts

HEAD = b"POST /v1/usage/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def test_request_complete_by_framing() -> None:
    assert not request_complete(HEAD)
    assert request_complete(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    sized = HEAD + b"Content-Length: 5\r\n\r\n"
    assert not request_complete(sized + b"abcd") and request_complete(sized + b"abcde")
    chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    assert not request_complete(chunked + b"5\r\nab")
    assert not request_complete(chunked + b"5\r\nabcde\r\n")
    assert not request_complete(chunked + b"5\r\nabcde\r\n0\r\n")
    assert request_complete(chunked + b"5\r\nabcde\r\n0\r\n\r\n")
    assert request_complete(chunked + b"5;x=y\r\nabcde\r\n0\r\nTrailer: 1\r\n\r\n")
    # the client waits for "100 Continue" before its body: a thread must answer it
    assert request_complete(HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    # malformed framing goes to the parser, which answers 400
    assert request_complete(HEAD + b"Content-Length: x\r\n\r\n")
    assert request_complete(chunked + b"zz\r\n")


def test_buffered_socket_replays_then_reads_on() -> None:
    left, right = socket.socketpair()
    with left, right:
        sock = BufferedSocket(left)
        sock.pending += b"abcdef"
        right.sendall(b"gh")
        assert [sock.recv(4), sock.recv(4), sock.recv(4)] == [b"abcd", b"ef", b"gh"]
        assert sock.fileno() == left.fileno()


def test_slow_senders_do_not_take_the_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/slow.db"
    keys = migrated_with_keys(url)
    port = free_port()
    read_timeout = 3.0
    settings_env = {
        "database_url": url,
        "bind": f"127.0.0.1:{port}",
        "workers": "1",
        "threads": "2",
        "request_read_timeout": str(read_timeout),
        "prometheus_multiproc_dir": str(tmp_path / "prom"),
    }
    senders = 12
    with gunicorn(settings_env, tmp_path / "gunicorn.log"), ThreadPoolExecutor(1) as pool:
        slow = pool.submit(trickle_many, "127.0.0.1", port, senders, 0.5, read_timeout + 20)
        latencies: list[float] = []
        failures: list[object] = []
        event = {
            "customer_id": "acme",
            "model": "gpt-test",
            "input_tokens": 10,
            "output_tokens": 1,
            "occurred_at": ts(add_months(month_start(datetime.now(UTC)), -1)),
        }
        headers = {"Authorization": f"Bearer {keys['ingest']}"}
        i = 0
        while not slow.done() and i < 200:  # health checks and ingests for as long as they trickle
            i += 1
            begin = time.monotonic()
            try:
                ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                posted = requests.post(
                    f"http://127.0.0.1:{port}/v1/usage/events",
                    json={**event, "event_id": f"slow-{i}"},
                    headers=headers,
                    timeout=5,
                )
                if ready.status_code != 200 or posted.status_code != 200:
                    failures.append((ready.status_code, posted.status_code))
            except requests.RequestException as exc:
                failures.append(repr(exc))
            latencies.append(time.monotonic() - begin)
        results = slow.result()
    latencies.sort()
    print(
        f"{senders} slow senders, 1 worker x 2 threads: {i} /readyz + ingest pairs meanwhile, "
        f"p50 {latencies[i // 2] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; "
        f"senders cut after {min(float(r['seconds']) for r in results):.1f}-"  # type: ignore[arg-type]
        f"{max(float(r['seconds']) for r in results):.1f} s"  # type: ignore[arg-type]
    )
    assert failures == [] and i >= 10
    for r in results:
        assert str(r["status"]).startswith("HTTP/1.1 408"), r
        assert read_timeout - 0.5 <= float(r["seconds"]) <= read_timeout + 5, r  # type: ignore[arg-type]
    log = (tmp_path / "gunicorn.log").read_text()
    assert log.count("request not received in time") == senders
    engine = make_engine(make_settings(url))
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM usage_events WHERE event_id LIKE 'slow-%'")
        ).scalar_one()
    engine.dispose()
    assert stored == i

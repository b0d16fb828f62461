"""Slow senders cannot take a host out: the worker reads each request whole in its main
loop, so threads only ever serve complete requests, and a request not received within
request_read_timeout is answered 408 and closed."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import text

from token_billing.db import make_engine
from token_billing.migrate import upgrade
from token_billing.worker import BufferedSocket, request_complete

from .gunicorn_proc import gunicorn
from .pgcluster import free_port
from .tb_testlib import add_months, make_settings, month_start, provision, ts

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


def _slow_sender(port: int, stop: threading.Event, result: dict[str, object]) -> None:
    """Sends a request one byte every 0.5 s, never finishing it; records what comes back."""
    start = time.monotonic()
    body = HEAD + b"Content-Length: 100000\r\n\r\n" + b"x" * 100000
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.settimeout(0.5)
            for byte in body:
                if stop.is_set():
                    break
                try:
                    sock.sendall(bytes([byte]))
                    reply = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError as exc:
                    result["error"] = repr(exc)
                    break
                result["reply"] = reply
                break
    finally:
        result["seconds"] = time.monotonic() - start


def test_slow_senders_do_not_take_the_threads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/slow.db"
    settings = make_settings(url)
    engine = make_engine(settings)
    upgrade(engine)
    keys = provision(engine, settings)
    engine.dispose()
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
    with gunicorn(settings_env, tmp_path / "gunicorn.log"):
        stop = threading.Event()
        results: list[dict[str, object]] = [{} for _ in range(senders)]
        threads = [
            threading.Thread(target=_slow_sender, args=(port, stop, r), daemon=True)
            for r in results
        ]
        for t in threads:
            t.start()
        time.sleep(0.5)  # let every sender connect and start trickling
        latencies, failures = [], []
        event = {
            "customer_id": "acme",
            "model": "gpt-test",
            "input_tokens": 10,
            "output_tokens": 1,
            "occurred_at": ts(add_months(month_start(datetime.now(UTC)), -1)),
        }
        headers = {"Authorization": f"Bearer {keys['ingest']}"}
        for i in range(40):  # bounded: 40 health checks and 40 ingests while they trickle
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
            time.sleep(0.05)
        for t in threads:
            t.join(timeout=read_timeout + 20)
        stop.set()
    latencies.sort()
    print(
        f"{senders} slow senders, 1 worker x 2 threads: 40 /readyz + ingest pairs, "
        f"p50 {latencies[20] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; "
        f"senders cut after {min(float(r['seconds']) for r in results):.1f}-"  # type: ignore[arg-type]
        f"{max(float(r['seconds']) for r in results):.1f} s"  # type: ignore[arg-type]
    )
    assert failures == []
    for r in results:
        assert str(r.get("reply", b"")).startswith("b'HTTP/1.1 408"), r
        assert read_timeout - 0.5 <= float(r["seconds"]) <= read_timeout + 5, r  # type: ignore[arg-type]
    log = (tmp_path / "gunicorn.log").read_text()
    assert log.count("request not received in time") == senders
    engine = make_engine(settings)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM usage_events WHERE event_id LIKE 'slow-%'")
        ).scalar_one()
    engine.dispose()
    assert stored == 40

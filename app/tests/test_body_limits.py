"""max_body_bytes holds for every framing: sized, chunked, slow, unsized."""

from __future__ import annotations

import io
import json
import select
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from token_billing.db import make_engine
from token_billing.migrate import upgrade
from token_billing.web.limits import BodyLimit

from .gunicorn_proc import gunicorn
from .pgcluster import PgCluster, free_port
from .tb_testlib import Env, add_months, make_settings, month_start, provision, ts

LIMIT = 4096


def _event(event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": "acme",
        "model": "gpt-test",
        "input_tokens": 10,
        "output_tokens": 1,
        "occurred_at": ts(add_months(month_start(datetime.now(UTC)), -1)),
        **extra,
    }


class _Called:
    def __init__(self) -> None:
        self.body: bytes | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [b"ok"]


def _wsgi(mw: BodyLimit, body: bytes, **environ: Any) -> str:
    status: list[str] = []
    env = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(body), **environ}
    b"".join(mw(env, lambda s, h: status.append(s)))
    return status[0]


def test_wsgi_layer_bounds_every_framing() -> None:
    app = _Called()
    mw = BodyLimit(app, 10)
    assert _wsgi(mw, b"x" * 11, CONTENT_LENGTH="11").startswith("413") and app.body is None
    assert _wsgi(mw, b"x" * 11, HTTP_TRANSFER_ENCODING="chunked").startswith("413")
    assert _wsgi(mw, b"x" * 11, **{"wsgi.input_terminated": True}).startswith("411")
    assert app.body is None
    assert _wsgi(mw, b"x" * 10, HTTP_TRANSFER_ENCODING="chunked").startswith("200")
    assert app.body == b"x" * 10
    assert _wsgi(mw, b"abc").startswith("411")
    status: list[str] = []
    b"".join(
        mw({"REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}, lambda s, h: status.append(s))
    )
    assert status == ["200 OK"]


def test_flask_client_chunked_oversize_is_413(env: Env) -> None:
    big = json.dumps(_event("fc-1", metadata={"pad": "x" * (5 * 1024 * 1024)})).encode()
    r = env.client.post(
        "/v1/usage/events",
        input_stream=io.BytesIO(big),
        headers={**env.ingest, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
    )
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "payload_too_large"
    assert env.count_events() == 0


@pytest.fixture(scope="module")
def server(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import psycopg

    with psycopg.connect(pg_cluster.dsn(), autocommit=True) as conn:
        conn.execute('CREATE DATABASE "tb_limits" TEMPLATE "tb_template"')
    url = pg_cluster.url("tb_limits")
    settings = make_settings(url)
    engine = make_engine(settings)
    upgrade(engine)
    keys = provision(engine, settings)
    port = free_port()
    tmp = tmp_path_factory.mktemp("limits")
    settings_env = {
        "database_url": url,
        "bind": f"127.0.0.1:{port}",
        "workers": "1",
        "max_body_bytes": str(LIMIT),
        "prometheus_multiproc_dir": str(tmp / "prom"),
    }
    try:
        with gunicorn(settings_env, tmp / "gunicorn.log"):
            yield port, keys["ingest"], engine
    finally:
        engine.dispose()


def _raw(port: int, head: str, chunks: list[bytes], pause: float = 0.005) -> int:
    """Send like a well-behaved client: stop sending once the server has answered (bytes
    still unread when gunicorn closes would make the kernel reset the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], pause)[0]:
                break  # answered early (413): stop sending
            sock.sendall(chunk)
        else:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while data := sock.recv(65536):
            reply += data
    return int(reply.split(b" ", 2)[1])


def _chunked(body: bytes, size: int = 1024) -> list[bytes]:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in parts] + [b"0\r\n\r\n"]


def _stored(engine: Any, event_id: str) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM usage_events WHERE event_id = :e"), {"e": event_id}
            ).scalar_one()
        )


def _head(key: str, framing: str, version: str = "1.1") -> str:
    return (
        f"POST /v1/usage/events HTTP/{version}\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nConnection: close\r\n{framing}\r\n"
    )


def test_gunicorn_limits(server: Any) -> None:
    port, key, engine = server
    chunked = "Transfer-Encoding: chunked\r\n"
    small = json.dumps(_event("gl-ok")).encode()
    assert _raw(port, _head(key, chunked), _chunked(small)) == 200
    assert _stored(engine, "gl-ok") == 1

    padded_outside = json.dumps(_event("gl-1")).encode() + b" " * (LIMIT * 4)
    assert _raw(port, _head(key, chunked), _chunked(padded_outside)) == 413
    padded_inside = json.dumps(_event("gl-2", metadata={"pad": "x" * LIMIT * 4})).encode()
    assert _raw(port, _head(key, chunked), _chunked(padded_inside)) == 413
    slow = json.dumps(_event("gl-3")).encode() + b" " * (LIMIT * 2)
    assert _raw(port, _head(key, chunked), _chunked(slow, 256), pause=0.05) == 413
    sized = f"Content-Length: {len(padded_outside)}\r\n"
    assert _raw(port, _head(key, sized), [padded_outside]) == 413
    assert _raw(port, _head(key, "", "1.0"), [padded_outside]) == 411
    for event_id in ("gl-1", "gl-2", "gl-3"):
        assert _stored(engine, event_id) == 0


def test_config_names_the_limit(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path}/x.db", max_body_bytes=str(LIMIT))
    assert settings.max_body_bytes == LIMIT

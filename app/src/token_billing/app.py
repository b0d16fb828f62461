"""Flask application factory: settings, services, request bookkeeping, blueprints."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from sqlalchemy import Engine

from . import __version__
from .config import Settings, load_settings
from .db import make_engine

if TYPE_CHECKING:
    from .storage.flush import Flusher

log = logging.getLogger("token_billing.http")


def _prepare_multiprocess_env(settings: Settings) -> None:
    # prometheus_client decides between in-process and mmap-file values at import time
    if settings.prometheus_multiproc_dir and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.makedirs(settings.prometheus_multiproc_dir, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = settings.prometheus_multiproc_dir


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Flask:
    settings = settings or load_settings()
    _prepare_multiprocess_env(settings)
    # everything that imports metrics comes after the multiprocess directory is set
    from . import auth, metrics
    from .ingest import Ingestor
    from .logutil import setup_logging
    from .web import customers, errors, invoices, keys, ops, prices, usage
    from .web.context import Services
    from .web.limits import BodyLimit

    setup_logging(settings.log_level, settings.log_format)
    engine = engine or make_engine(settings)

    app = Flask("token_billing")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["token_billing"] = Services(
        engine=engine,
        settings=settings,
        ingestor=Ingestor(engine, settings),
        auth_cache=auth.AuthCache(settings.auth_cache_seconds),
    )
    app.wsgi_app = BodyLimit(app.wsgi_app, settings.max_body_bytes)  # type: ignore[method-assign]
    errors.register(app)
    for bp in (ops.bp, usage.bp, customers.bp, prices.bp, invoices.bp, keys.bp):
        app.register_blueprint(bp)

    @app.before_request
    def _start_timer() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    def _finish(resp: Response) -> Response:
        elapsed = time.perf_counter() - g.get("t0", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.REQUEST_LATENCY.labels(request.method, route, str(resp.status_code)).observe(
            elapsed
        )
        resp.headers["X-Token-Billing-Version"] = __version__
        if route not in ("/metrics", "/healthz", "/readyz") or resp.status_code >= 400:
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "path": request.path,
                    "status": resp.status_code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "api_key_id": g.get("api_key_id"),
                    "remote": request.remote_addr,
                },
            )
        return resp

    return app


def start_flusher(app: Flask) -> Flusher | None:
    """Start this process's background rollup flusher (PostgreSQL, gunicorn workers only:
    the app is created after the fork, so every worker has one)."""
    services = app.extensions["token_billing"]
    if services.engine.dialect.name != "postgresql":
        return None
    if services.settings.rollup_flush_seconds <= 0:
        return None
    from .storage.flush import Flusher

    engine = make_engine(services.settings, pool_size=1, max_overflow=0)
    return Flusher(engine, services.settings.rollup_flush_seconds).start()

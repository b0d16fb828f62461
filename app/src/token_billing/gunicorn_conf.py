"""Gunicorn configuration shipped with the package.

    gunicorn -c python:token_billing.gunicorn_conf 'token_billing.wsgi:app'

Reads the same settings as the application (env vars / TOKEN_BILLING_CONFIG TOML); a bad
configuration stops the master at once with one line naming the setting. Sets up
Prometheus multiprocess mode: PROMETHEUS_MULTIPROC_DIR (setting
``prometheus_multiproc_dir``; a private temp dir when unset) is emptied when the master
starts, and ``child_exit`` marks dead workers so their live gauges are dropped. The
directory must be dedicated to ONE gunicorn instance.

Slow clients: the worker (token_billing.worker) reads each request whole in its main
loop before a thread takes it; one not complete within ``request_read_timeout`` seconds
is answered 408 and closed, so slow senders never hold the threads /readyz needs.

SIGTERM: gunicorn stops accepting connections, lets in-flight requests finish for up to
``graceful_timeout`` seconds, then exits; a request is either committed and answered or
rolled back.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from token_billing.config import ConfigError, load_settings
from token_billing.logutil import logging_dict
from token_billing.worker import buffered_worker

try:
    _settings = load_settings()
except ConfigError as _exc:
    print(f"token-billing: {_exc}", file=sys.stderr)
    raise SystemExit(2) from None

_owned_dir = False
_mp_dir = _settings.prometheus_multiproc_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if not _mp_dir:
    _mp_dir = tempfile.mkdtemp(prefix="token-billing-metrics-")
    _owned_dir = True
os.makedirs(_mp_dir, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _mp_dir

wsgi_app = "token_billing.wsgi:app"
bind = [_settings.bind]
workers = _settings.workers
# gthread, but a thread takes a request only once it is read whole (slow clients wait in
# the main loop and are cut with a 408 after request_read_timeout seconds)
worker_class = buffered_worker(_settings.request_read_timeout, _settings.max_body_bytes)
threads = _settings.threads
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
keepalive = _settings.keepalive
proc_name = "token-billing"
accesslog = None  # the app logs one structured line per request
errorlog = "-"
loglevel = _settings.log_level
logconfig_dict = logging_dict(_settings.log_level, _settings.log_format)
# 1000-event batches are ~250 KB; gunicorn's request-line/header limits stay default
limit_request_line = 8190

_log = logging.getLogger("token_billing.gunicorn")


def on_starting(server: Any) -> None:
    # stale files of a previous run would be summed into the new counters
    for name in os.listdir(_mp_dir):
        path = os.path.join(_mp_dir, name)
        if os.path.isfile(path):
            os.unlink(path)
    _log.info(
        "starting",
        extra={
            "bind": _settings.bind,
            "workers": workers,
            "threads": threads,
            "database": _settings.redacted_database_url(),
            "config_source": _settings.source,
        },
    )


def post_fork(server: Any, worker: Any) -> None:
    # Many threads mostly waiting on the database: hand the GIL over sooner than the
    # default 5 ms so a thread whose query returned is not stuck behind a busy one.
    sys.setswitchinterval(0.001)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    services = getattr(app, "extensions", {}).get("token_billing") if app is not None else None
    if services is not None:
        services.engine.dispose()


def on_exit(server: Any) -> None:
    _log.info("stopped")
    if _owned_dir:
        shutil.rmtree(_mp_dir, ignore_errors=True)

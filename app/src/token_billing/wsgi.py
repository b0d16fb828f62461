"""WSGI entry point: ``gunicorn -c python:token_billing.gunicorn_conf 'token_billing.wsgi:app'``."""

from __future__ import annotations

import sys

from .app import create_app, start_flusher
from .config import ConfigError

try:
    app = create_app()
except ConfigError as _exc:
    print(f"token-billing: {_exc}", file=sys.stderr)
    raise SystemExit(2) from None
start_flusher(app)

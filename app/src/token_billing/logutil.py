"""Structured JSON logging. Never log secrets: API keys, Authorization, DB passwords."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STD_ATTRS = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__.keys()) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET_KEYS = {"authorization", "api_key", "password", "key", "secret", "database_url"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key in _STD_ATTRS or key.startswith("_"):
                continue
            out[key] = "[redacted]" if key.lower() in _SECRET_KEYS else value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def logging_dict(level: str = "info", fmt: str = "json") -> dict[str, Any]:
    """A logging.config dict (also used by gunicorn's ``logconfig_dict``)."""
    formatter: dict[str, Any] = (
        {"()": "token_billing.logutil.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
            "alembic": {"level": "WARNING"},
            "sqlalchemy": {"level": "WARNING"},
        },
    }


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    import logging.config

    root = logging.getLogger()
    if getattr(root, "_token_billing_configured", False):
        return
    logging.config.dictConfig(logging_dict(level, fmt))
    root._token_billing_configured = True  # type: ignore[attr-defined]
    _ = sys  # stderr is the only sink: the service manager captures it

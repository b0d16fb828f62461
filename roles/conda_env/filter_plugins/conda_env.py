"""Turn a failed conda command result into one line."""

from __future__ import annotations

import json
from typing import Any


def _error_object(text: str) -> dict[str, Any] | None:
    """The conda error object in output that may also carry pip's lines."""
    decoder = json.JSONDecoder()
    found = None
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict) and "exception_name" in value:
            found = value
        start = text.find("{", end)
    return found


def conda_env_error(result: dict[str, Any]) -> str:
    """One line from conda's --json error object, else the command's stderr or msg."""
    error = _error_object(result.get("stdout") or "")
    if error:
        message = " ".join(str(error.get("message", "")).split())
        return f"{error['exception_name']}: {message}"
    for key in ("stderr", "msg"):
        lines = [line.strip() for line in str(result.get(key) or "").splitlines() if line.strip()]
        if lines:
            return " | ".join(lines[-3:])
    return f"rc={result.get('rc')}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"conda_env_error": conda_env_error}

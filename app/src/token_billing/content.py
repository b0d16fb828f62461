"""The billable content of a usage event, and its digest (see ``conflicts``)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

FIELDS = (
    "customer_id",
    "project",
    "model",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "occurred_at",
)


def billable_content(
    customer_id: str,
    project: str | None,
    model: str,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    occurred_at: datetime,
) -> str:
    return json.dumps(
        [
            customer_id,
            project,
            model,
            input_tokens,
            cached_input_tokens,
            output_tokens,
            occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def digest(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()

"""The billable content of a usage event (as JSON, for people) and its digest (for
comparing resends, see ``conflicts``)."""

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


def digest(
    customer_id: str,
    project: str | None,
    model: str,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    occurred_at: datetime,
) -> str:
    """BLAKE2b-128 of the billable content; ``occurred_at`` aware and in UTC. Fields are
    joined by US (0x1f) and an absent project is NUL: neither is printable, so no valid
    id can contain them (it runs for every event: cheaper than hashing the JSON)."""
    no_project = "\0"
    key = (
        f"{customer_id}\x1f{no_project if project is None else project}\x1f{model}"
        f"\x1f{input_tokens}\x1f{cached_input_tokens}\x1f{output_tokens}"
        f"\x1f{occurred_at.isoformat()}"
    )
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

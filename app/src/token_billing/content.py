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
    occurred_text: str = "",
) -> str:
    """BLAKE2b-128 of the billable content; ``occurred_at`` aware and in UTC. Fields are
    joined by US (0x1f) and an absent project is NUL: neither is printable, so no valid
    id can contain them (it runs for every event: cheaper than hashing the JSON).
    ``occurred_text``: the event's normalised RFC 3339 text, if known (saves a format)."""
    no_project = "\0"
    key = (
        f"{customer_id}\x1f{no_project if project is None else project}\x1f{model}"
        f"\x1f{input_tokens}\x1f{cached_input_tokens}\x1f{output_tokens}"
        f"\x1f{_isoformat(occurred_at, occurred_text)}"
    )
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def _isoformat(at: datetime, text: str) -> str:
    """``at.isoformat()``, taken from ``text`` when that is the same instant spelt the same
    but for Z: no fraction, or six digits that are not all zero (isoformat drops those)."""
    if text[-1:] == "Z" and (len(text) == 20 or (len(text) == 27 and text[20:26] != "000000")):
        return text[:-1] + "+00:00"
    return at.isoformat()

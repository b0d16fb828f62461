"""Per-event validation for the ingest path (tight: it runs for every event)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeGuard

from .content import digest

_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
MAX_ID_LEN = 128


class Event(NamedTuple):
    event_id: str
    customer_id: str
    api_key_id: str | None
    project: str | None
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    occurred_at: datetime  # aware, UTC
    metadata: str | None  # compact JSON text
    occurred_at_text: str  # normalised RFC 3339 text (<= 6 fraction digits), same instant

    @property
    def digest(self) -> str:
        """Of the billable content (``content.digest``): computed only for an event whose
        id was taken (``conflicts``), never on the way in."""
        return digest(
            self.customer_id,
            self.project,
            self.model,
            self.input_tokens,
            self.cached_input_tokens,
            self.output_tokens,
            self.occurred_at,
            self.occurred_at_text,
        )


@dataclass(frozen=True)
class Limits:
    max_tokens: int
    max_metadata_bytes: int
    max_age: timedelta
    max_skew: timedelta


def error(code: str, field: str | None, message: str) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        out["field"] = field
    return out


def parse_timestamp(value: Any) -> datetime | None:
    """RFC 3339 timestamp with an explicit offset -> aware UTC datetime, else None."""
    parsed = parse_timestamp_text(value)
    return None if parsed is None else parsed[0]


def parse_timestamp_text(value: Any) -> tuple[datetime, str] | None:
    """Like parse_timestamp, also returning the normalised text (microsecond precision)."""
    if type(value) is not str or (m := _RFC3339.fullmatch(value)) is None:
        return None
    fraction = m[2]
    if fraction is not None and len(fraction) > 7:  # Python keeps microseconds: cut the rest
        text = f"{m[1]}{fraction[:7]}{m[3]}".upper()
    else:
        text = value.upper()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt.astimezone(UTC), text


def _id_field(obj: dict[str, Any], name: str, required: bool) -> tuple[str | None, Any]:
    """Returns (value, error). value None with no error = absent optional field."""
    value = obj.get(name)
    if value is None:
        if required:
            return None, error("missing_field", name, f"{name} is required")
        return None, None
    if type(value) is not str:
        return None, error(
            "invalid_type", name, f"{name} must be a string, got {_json_type(value)}"
        )
    if not value or len(value) > MAX_ID_LEN or not value.isprintable():
        return None, error(
            "invalid_value",
            name,
            f"{name} must be 1-{MAX_ID_LEN} printable characters",
        )
    return value, None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _tokens(obj: dict[str, Any], name: str, limit: int, required: bool) -> tuple[int, Any]:
    value = obj.get(name)
    if value is None:
        if required:
            return 0, error("missing_field", name, f"{name} is required")
        return 0, None
    if type(value) is not int:
        return 0, error("invalid_type", name, f"{name} must be an integer, got {_json_type(value)}")
    if value < 0:
        return 0, error("out_of_range", name, f"{name} must be >= 0, got {value}")
    if value > limit:
        return 0, error("out_of_range", name, f"{name} must be <= {limit}, got {value}")
    return value, None


def _id_ok(value: Any) -> TypeGuard[str]:
    return type(value) is str and 0 < len(value) <= MAX_ID_LEN and value.isprintable()


def validate_event(
    obj: Any, limits: Limits, now: datetime
) -> tuple[Event | None, dict[str, Any] | None]:
    """Validate one decoded JSON event. Returns (event, None) or (None, error).

    A valid event without metadata takes one pass of inline checks; anything else goes
    through ``_validate_in_order``, which names the first problem (tests prove both
    accept the same events with the same result)."""
    if type(obj) is dict:
        get = obj.get
        event_id, customer_id, model = get("event_id"), get("customer_id"), get("model")
        api_key_id, project = get("api_key_id"), get("project")
        inp, outp = get("input_tokens"), get("output_tokens")
        cached = get("cached_input_tokens")
        if cached is None:
            cached = 0
        top = limits.max_tokens
        if (
            get("metadata") is None
            and _id_ok(event_id)
            and _id_ok(customer_id)
            and _id_ok(model)
            and (api_key_id is None or _id_ok(api_key_id))
            and (project is None or _id_ok(project))
            and type(inp) is int
            and type(outp) is int
            and type(cached) is int
            and 0 <= cached <= inp <= top
            and 0 <= outp <= top
            and (parsed := parse_timestamp_text(get("occurred_at"))) is not None
            and now - limits.max_age <= parsed[0] <= now + limits.max_skew
        ):
            at, text = parsed
            return Event(
                event_id,
                customer_id,
                api_key_id,
                project,
                model,
                inp,
                cached,
                outp,
                at,
                None,
                text,
            ), None
    return _validate_in_order(obj, limits, now)


def _validate_in_order(
    obj: Any, limits: Limits, now: datetime
) -> tuple[Event | None, dict[str, Any] | None]:
    if type(obj) is not dict:
        return None, error("invalid_type", None, f"event must be an object, got {_json_type(obj)}")
    event_id, err = _id_field(obj, "event_id", True)
    if err is not None:
        return None, err
    customer_id, err = _id_field(obj, "customer_id", True)
    if err is not None:
        return None, err
    model, err = _id_field(obj, "model", True)
    if err is not None:
        return None, err
    api_key_id, err = _id_field(obj, "api_key_id", False)
    if err is not None:
        return None, err
    project, err = _id_field(obj, "project", False)
    if err is not None:
        return None, err
    max_tokens = limits.max_tokens
    input_tokens, err = _tokens(obj, "input_tokens", max_tokens, True)
    if err is not None:
        return None, err
    output_tokens, err = _tokens(obj, "output_tokens", max_tokens, True)
    if err is not None:
        return None, err
    cached, err = _tokens(obj, "cached_input_tokens", max_tokens, False)
    if err is not None:
        return None, err
    if cached > input_tokens:
        return None, error(
            "invalid_value",
            "cached_input_tokens",
            f"cached_input_tokens ({cached}) must not exceed input_tokens ({input_tokens})",
        )
    raw_ts = obj.get("occurred_at")
    if raw_ts is None:
        return None, error("missing_field", "occurred_at", "occurred_at is required")
    parsed = parse_timestamp_text(raw_ts)
    if parsed is None:
        return None, error(
            "invalid_value",
            "occurred_at",
            "occurred_at must be an RFC 3339 timestamp with offset, e.g. 2025-01-31T23:59:59Z",
        )
    occurred_at, occurred_text = parsed
    if occurred_at > now + limits.max_skew:
        return None, error(
            "out_of_range", "occurred_at", "occurred_at is in the future beyond allowed clock skew"
        )
    if occurred_at < now - limits.max_age:
        return None, error(
            "out_of_range",
            "occurred_at",
            f"occurred_at is older than {limits.max_age.days} days",
        )
    meta = obj.get("metadata")
    meta_text: str | None = None
    if meta is not None:
        if type(meta) is not dict:
            return None, error(
                "invalid_type", "metadata", f"metadata must be an object, got {_json_type(meta)}"
            )
        meta_text = json.dumps(meta, separators=(",", ":"), ensure_ascii=False)
        if len(meta_text.encode()) > limits.max_metadata_bytes:
            return None, error(
                "out_of_range",
                "metadata",
                f"metadata must be at most {limits.max_metadata_bytes} bytes as JSON",
            )
    return (
        Event(
            event_id,  # type: ignore[arg-type]
            customer_id,  # type: ignore[arg-type]
            api_key_id,
            project,
            model,  # type: ignore[arg-type]
            input_tokens,
            cached,
            output_tokens,
            occurred_at,
            meta_text,
            occurred_text,
        ),
        None,
    )

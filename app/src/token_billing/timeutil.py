"""UTC time helpers shared by queries, invoices and the HTTP layer."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import InvalidInput

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def month_start(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(dt: datetime) -> datetime:
    if dt.month == 12:
        return dt.replace(year=dt.year + 1, month=1)
    return dt.replace(month=dt.month + 1)


def parse_month(value: str) -> datetime:
    m = _MONTH.fullmatch(value or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise InvalidInput("invalid_month", "month must be YYYY-MM, e.g. 2025-01")
    return datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC)

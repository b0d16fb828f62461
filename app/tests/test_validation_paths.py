"""The ingest fast path (inline checks, digest from the normalised text) accepts exactly
the events the field-by-field path accepts, with identical results, and refuses the rest
with the field-by-field path's error."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from token_billing.content import digest
from token_billing.validation import Limits, _validate_in_order, validate_event

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
LIMITS = Limits(1_000_000, 64, timedelta(days=400), timedelta(seconds=300))

STAMPS = [
    "2026-11-29T11:59:59Z",
    "2026-11-29T11:59:59z",
    "2026-11-29t11:59:59Z",
    "2026-11-29T11:59:59.000000Z",
    "2026-11-29T11:59:59.000001Z",
    "2026-11-29T11:59:59.5Z",
    "2026-11-29T11:59:59.123456Z",
    "2026-11-29T11:59:59.123456789Z",
    "2026-11-29T11:59:59.100000000Z",
    "2026-11-29T13:59:59.123456+02:00",
    "2026-11-29T06:29:59-05:30",
    "2026-11-29T12:05:01Z",  # beyond the clock skew
    "2025-10-01T00:00:00Z",  # older than max_age
    "2026-11-29 11:59:59Z",
    "2026-11-29T11:59:59",
    "2026-11-29",
    "2026-13-29T11:59:59Z",
    "",
    None,
    1764417599,
]
VALUES: dict[str, list[Any]] = {
    "event_id": ["e-1", "x" * 128, "x" * 129, "", "a\nb", 7, None, True],
    "customer_id": ["acme", "初", "", None, ["acme"]],
    "model": ["gpt-test", "", None, 1.5],
    "api_key_id": ["k1", None, "", 3],
    "project": ["p", None, "\x00", {}],
    "input_tokens": [0, 10, 1_000_000, 1_000_001, -1, True, 10.0, "10", None],
    "cached_input_tokens": [0, 5, 10, 11, None, False, -1],
    "output_tokens": [0, 1, 1_000_000, 1_000_001, -3, None, False],
    "occurred_at": STAMPS,
    "metadata": [None, {}, {"a": 1}, {"big": "x" * 100}, [], "m"],
}
BASE = {
    "event_id": "e-1",
    "customer_id": "acme",
    "model": "gpt-test",
    "input_tokens": 10,
    "cached_input_tokens": 5,
    "output_tokens": 1,
    "occurred_at": "2026-11-29T11:59:59.123456Z",
}


def _both(obj: Any) -> tuple[Any, Any]:
    return validate_event(obj, LIMITS, NOW), _validate_in_order(obj, LIMITS, NOW)


def test_every_single_field_variant_agrees() -> None:
    seen_valid = seen_invalid = 0
    for field, values in VALUES.items():
        for value in values:
            for absent in (False, True):
                obj = dict(BASE)
                if absent:
                    obj.pop(field, None)
                else:
                    obj[field] = value
                fast, slow = _both(obj)
                assert fast == slow, (field, value, absent)
                seen_valid += fast[0] is not None
                seen_invalid += fast[0] is None
    assert seen_valid > 20 and seen_invalid > 40


def test_random_combinations_agree() -> None:
    rnd = random.Random(11)
    fields = list(VALUES)
    for _ in range(3000):
        obj = dict(BASE)
        for field in rnd.sample(fields, rnd.randint(1, 4)):
            if rnd.random() < 0.15:
                obj.pop(field, None)
            else:
                obj[field] = rnd.choice(VALUES[field])
        assert _both(obj)[0] == _both(obj)[1], obj


def test_non_objects_agree() -> None:
    for obj in (None, [], "e", 1, [BASE]):
        fast, slow = _both(obj)
        assert fast == slow and fast[0] is None


def test_digest_from_text_equals_digest_from_instant() -> None:
    checked = 0
    for stamp, project in itertools.product(STAMPS, (None, "p")):
        event, _ = validate_event(
            dict(BASE, occurred_at=stamp, project=project),
            Limits(10**6, 64, timedelta(days=10**5), timedelta(days=10**5)),
            NOW,
        )
        if event is None:
            continue
        args = ("acme", project, "gpt-test", 10, 5, 1, event.occurred_at)
        assert event.digest == digest(*args) == digest(*args, event.occurred_at_text), stamp
        checked += 1
    assert checked >= 18

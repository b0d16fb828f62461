"""Effective-dated price book and exact money arithmetic.

Prices are per million tokens (input, output, cached input), exact decimals with at most
9 decimal places. A price row is immutable: a change is a new row with a later
``effective_from``. An event is priced by the row of its model with the greatest
``effective_from <= occurred_at``; the chosen ``price_id`` is stored with the event and
in the hourly rollup, so later price rows never re-price recorded usage.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, exists, select, text

from .errors import InvalidInput
from .schema import prices, usage_hourly_all
from .validation import parse_timestamp

MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")
_CTX = Context(prec=60)
MAX_PRICE = Decimal(1_000_000_000)


@dataclass(frozen=True)
class Price:
    price_id: int
    model: str
    effective_from: datetime
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal
    currency: str


def cost(uncached_input: int, cached_input: int, output: int, price: Price) -> Decimal:
    """Exact (unrounded) cost of the given token counts at ``price``."""
    total = _CTX.add(
        _CTX.add(
            _CTX.multiply(Decimal(uncached_input), price.input_per_mtok),
            _CTX.multiply(Decimal(cached_input), price.cached_input_per_mtok),
        ),
        _CTX.multiply(Decimal(output), price.output_per_mtok),
    )
    return _CTX.divide(total, MILLION)


def line_amount(tokens: int, unit_price_per_mtok: Decimal) -> Decimal:
    """Invoice line amount: tokens x unit price, rounded ONCE, half-up, to cents."""
    exact = _CTX.divide(_CTX.multiply(Decimal(tokens), unit_price_per_mtok), MILLION)
    return exact.quantize(CENT, rounding=ROUND_HALF_UP, context=_CTX)


def money_str(value: Decimal) -> str:
    """Decimal -> plain string (no exponent, no float)."""
    if value == 0:
        return "0"
    text_value = format(value.normalize(_CTX), "f")
    return text_value


class PriceBook:
    """Prices of a set of models, for lookup by (model, occurred_at)."""

    def __init__(self, rows: Iterable[tuple[int, str, datetime]]) -> None:
        self._by_model: dict[str, tuple[list[datetime], list[int]]] = {}
        for price_id, model, eff in sorted(rows, key=lambda r: (r[1], r[2])):
            effs, ids = self._by_model.setdefault(model, ([], []))
            effs.append(eff)
            ids.append(price_id)

    def lookup(self, model: str, at: datetime) -> int | None:
        entry = self._by_model.get(model)
        if entry is None:
            return None
        effs, ids = entry
        pos = bisect.bisect_right(effs, at)
        return ids[pos - 1] if pos else None


def load_price_book(conn: Connection, models: Sequence[str]) -> PriceBook:
    rows = conn.execute(
        select(prices.c.price_id, prices.c.model, prices.c.effective_from).where(
            prices.c.model.in_(models)
        )
    ).all()
    return PriceBook((r[0], r[1], r[2]) for r in rows)


def _row_to_price(r: Any) -> Price:
    return Price(
        price_id=r["price_id"],
        model=r["model"],
        effective_from=r["effective_from"],
        input_per_mtok=r["input_per_mtok"],
        output_per_mtok=r["output_per_mtok"],
        cached_input_per_mtok=r["cached_input_per_mtok"],
        currency=r["currency"],
    )


def prices_by_id(conn: Connection, ids: Iterable[int]) -> dict[int, Price]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(select(prices).where(prices.c.price_id.in_(wanted))).mappings()
    return {r["price_id"]: _row_to_price(r) for r in rows}


def list_prices(conn: Connection, model: str | None = None) -> list[Price]:
    q = select(prices).order_by(prices.c.model, prices.c.effective_from)
    if model:
        q = q.where(prices.c.model == model)
    return [_row_to_price(r) for r in conn.execute(q).mappings()]


def price_to_json(p: Price) -> dict[str, Any]:
    return {
        "price_id": p.price_id,
        "model": p.model,
        "effective_from": p.effective_from.isoformat().replace("+00:00", "Z"),
        "input_per_mtok": money_str(p.input_per_mtok),
        "output_per_mtok": money_str(p.output_per_mtok),
        "cached_input_per_mtok": money_str(p.cached_input_per_mtok),
        "currency": p.currency,
    }


# -- loading ---------------------------------------------------------------------------


class PriceError(InvalidInput):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_price", message)


@dataclass(frozen=True)
class PriceInput:
    model: str
    effective_from: datetime
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal


def _decimal(value: Any, field: str, where: str) -> Decimal:
    if isinstance(value, float):
        raise PriceError(f"{where}: {field} must be a decimal string or integer, not a float")
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise PriceError(f"{where}: {field} must be a decimal number")
    try:
        dec = Decimal(str(value).strip())
    except InvalidOperation:
        raise PriceError(f"{where}: {field} is not a decimal number: {value!r}") from None
    if not dec.is_finite() or dec < 0 or dec > MAX_PRICE:
        raise PriceError(f"{where}: {field} must be between 0 and {MAX_PRICE}")
    exponent = dec.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -9:
        raise PriceError(f"{where}: {field} has more than 9 decimal places")
    return dec


def parse_price_records(records: Sequence[Any], currency: str) -> list[PriceInput]:
    out: list[PriceInput] = []
    seen: set[tuple[str, datetime]] = set()
    for i, rec in enumerate(records):
        where = f"price #{i + 1}"
        if not isinstance(rec, dict):
            raise PriceError(f"{where}: must be an object/table")
        model = rec.get("model")
        if not isinstance(model, str) or not model.strip() or len(model) > 128:
            raise PriceError(f"{where}: model must be a non-empty string")
        where = f"price #{i + 1} ({model})"
        eff_raw = rec.get("effective_from")
        if isinstance(eff_raw, datetime):  # TOML datetime literal
            if eff_raw.tzinfo is None:
                raise PriceError(f"{where}: effective_from needs an explicit UTC offset")
            eff_raw = eff_raw.isoformat()
        eff = parse_timestamp(eff_raw)
        if eff is None:
            raise PriceError(f"{where}: effective_from must be an RFC 3339 timestamp")
        cur = rec.get("currency", currency)
        if cur != currency:
            raise PriceError(f"{where}: currency {cur!r} differs from configured {currency!r}")
        missing = [k for k in ("input_per_mtok", "output_per_mtok") if rec.get(k) in (None, "")]
        if missing:
            raise PriceError(f"{where}: missing {', '.join(missing)}")
        inp = _decimal(rec["input_per_mtok"], "input_per_mtok", where)
        outp = _decimal(rec["output_per_mtok"], "output_per_mtok", where)
        cached_raw = rec.get("cached_input_per_mtok")
        cached = (
            inp
            if cached_raw in (None, "")
            else _decimal(cached_raw, "cached_input_per_mtok", where)
        )
        key = (model, eff)
        if key in seen:
            raise PriceError(f"{where}: duplicate (model, effective_from) in the file")
        seen.add(key)
        out.append(PriceInput(model, eff, inp, outp, cached))
    return out


def read_price_file(path: str, currency: str) -> list[PriceInput]:
    """Read prices from .toml ([[prices]] tables), .json (list or {"prices": [...]}) or .csv."""
    with open(path, "rb") as fh:
        data = fh.read()
    lower = path.lower()
    records: Any
    try:
        if lower.endswith(".toml"):
            records = tomllib.loads(data.decode(), parse_float=Decimal).get("prices", [])
        elif lower.endswith(".json"):
            records = json.loads(data, parse_float=Decimal)
            if isinstance(records, dict):
                records = records.get("prices", [])
        elif lower.endswith(".csv"):
            records = list(csv.DictReader(io.StringIO(data.decode())))
        else:
            raise PriceError(f"{path}: unknown price file type (use .toml, .json or .csv)")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PriceError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(records, list):
        raise PriceError(f"{path}: expected a list of prices")
    return parse_price_records(records, currency)


@dataclass(frozen=True)
class LoadResult:
    inserted: int
    unchanged: int


def store_prices(conn: Connection, items: Sequence[PriceInput], currency: str) -> LoadResult:
    """Insert prices in the caller's (write) transaction. All or nothing.

    Identical existing rows are left alone (loading a file twice is a no-op). A different
    price for an existing (model, effective_from), or a new price that would change the
    price of usage already recorded, is refused: recorded usage is never re-priced.
    """
    if conn.dialect.name == "postgresql":
        # conflicts with the SHARE lock every ingest transaction takes while pricing
        conn.execute(text("LOCK TABLE prices IN SHARE ROW EXCLUSIVE MODE"))
    inserted = unchanged = 0
    for item in items:
        existing = (
            conn.execute(
                select(prices).where(
                    prices.c.model == item.model, prices.c.effective_from == item.effective_from
                )
            )
            .mappings()
            .first()
        )
        if existing is not None:
            same = (
                existing["input_per_mtok"] == item.input_per_mtok
                and existing["output_per_mtok"] == item.output_per_mtok
                and existing["cached_input_per_mtok"] == item.cached_input_per_mtok
            )
            if not same:
                raise PriceError(
                    f"price for {item.model} effective {item.effective_from.isoformat()} "
                    "already exists with different values; prices are immutable, add a "
                    "new effective_from instead"
                )
            unchanged += 1
            continue
        hour = item.effective_from.replace(minute=0, second=0, microsecond=0)
        used = conn.execute(
            select(
                exists().where(
                    usage_hourly_all.c.model == item.model, usage_hourly_all.c.hour >= hour
                )
            )
        ).scalar()
        if used:
            raise PriceError(
                f"price for {item.model} effective {item.effective_from.isoformat()} would "
                "re-price usage already recorded at or after that time; effective_from "
                "must be later than the model's recorded usage"
            )
        conn.execute(
            prices.insert().values(
                model=item.model,
                effective_from=item.effective_from,
                input_per_mtok=item.input_per_mtok,
                output_per_mtok=item.output_per_mtok,
                cached_input_per_mtok=item.cached_input_per_mtok,
                currency=currency,
            )
        )
        inserted += 1
    return LoadResult(inserted, unchanged)

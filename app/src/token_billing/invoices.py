"""Monthly invoices (calendar month, UTC), immutable once issued.

Issuing the invoice for customer C and month M, in one transaction:

1. if an invoice for (C, M) exists, return it unchanged (generation is idempotent; a
   unique constraint settles concurrent generators);
2. insert the invoice row (status ``pending``), then re-label every *open* rollup row of
   C with ``hour < end of M`` (``invoice_id = 0`` -> the new id). Rows of month M become
   usage lines; rows of earlier months are events that arrived after those months were
   invoiced (or months never invoiced) and become ``adjustment`` lines;
3. write the lines, set the totals and status ``issued``. Database triggers refuse any
   later UPDATE/DELETE of issued invoices and their lines.

A late event for an invoiced hour cannot join the re-labelled row (its key has the
invoice id); it creates a new open row, which the next invoice picks up. So every
accepted token is invoiced exactly once: never lost, never twice.

Money: each line = tokens x unit price (per million) rounded half-up to cents once;
totals are sums of lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, exists, select, update
from sqlalchemy.exc import IntegrityError

from . import metrics
from .customers import require as require_customer
from .errors import StateConflict
from .pricing import line_amount, money_str, prices_by_id
from .schema import customers, invoice_lines, invoices, usage_hourly
from .storage.flush import flush
from .timeutil import iso, next_month, parse_month

TOKEN_KINDS = ("input", "cached_input", "output")


@dataclass
class _Line:
    kind: str
    usage_period: str
    model: str
    token_kind: str
    unit_price: Decimal
    effective_from: datetime
    tokens: int = 0


def invoice_number(customer_id: str, start: datetime) -> str:
    return f"INV-{start:%Y%m}-{customer_id}"


def generate_invoice(
    engine: Engine, customer_id: str, month: str, now: datetime, currency: str
) -> tuple[dict[str, Any], bool]:
    """Issue (or return the already issued) invoice. Returns (invoice, created)."""
    start = parse_month(month)
    end = next_month(start)
    write_engine = engine.execution_options(tb_write=True)
    with engine.connect() as conn:
        found = _find(conn, customer_id, start)
        if found is not None:
            return found, False
    if now < end:
        raise StateConflict(
            "period_open", f"{month} is not over yet; invoices are issued after month end"
        )
    try:
        with write_engine.begin() as conn:
            require_customer(conn, customer_id)
            if _find_id(conn, customer_id, start) is not None:
                invoice_id = None  # raced with another generator: fall through to re-read
            else:
                later = conn.execute(
                    select(
                        exists().where(
                            invoices.c.customer_id == customer_id, invoices.c.period_start > start
                        )
                    )
                ).scalar()
                if later:
                    raise StateConflict(
                        "later_invoice_exists",
                        f"an invoice for a period after {month} exists for {customer_id}; "
                        "open usage of earlier months is billed on the next invoice as adjustment",
                    )
                invoice_id = _issue(conn, customer_id, start, end, now, currency)
    except IntegrityError:
        invoice_id = None  # concurrent generator won the unique constraint
    with engine.connect() as conn:
        found = _find(conn, customer_id, start)
    assert found is not None
    if invoice_id is not None:
        metrics.INVOICES.inc()
    return found, invoice_id is not None


def _issue(
    conn: Connection,
    customer_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
    currency: str,
) -> int:
    flush(conn)  # every event committed so far is in usage_hourly before it is claimed
    res = conn.execute(
        invoices.insert()
        .values(
            invoice_number=invoice_number(customer_id, start),
            customer_id=customer_id,
            period_start=start,
            period_end=end,
            currency=currency,
            usage_total=Decimal(0),
            adjustments_total=Decimal(0),
            total=Decimal(0),
            status="pending",
            issued_at=now,
        )
        .returning(invoices.c.invoice_id)
    )
    invoice_id = int(res.scalar_one())
    u = usage_hourly.c
    claimed = conn.execute(
        update(usage_hourly)
        .where(u.customer_id == customer_id, u.invoice_id == 0, u.hour < end)
        .values(invoice_id=invoice_id)
        .returning(
            u.hour, u.model, u.price_id, u.input_tokens, u.cached_input_tokens, u.output_tokens
        )
    ).all()
    book = prices_by_id(conn, (r[2] for r in claimed))
    lines: dict[tuple[str, str, str, int, str], _Line] = {}
    for hour, model, price_id, inp, cached, outp in claimed:
        price = book[price_id]
        kind = "usage" if hour >= start else "adjustment"
        period = f"{hour:%Y-%m}"
        for token_kind, tokens, unit in (
            ("input", int(inp) - int(cached), price.input_per_mtok),
            ("cached_input", int(cached), price.cached_input_per_mtok),
            ("output", int(outp), price.output_per_mtok),
        ):
            if tokens == 0:
                continue
            key = (kind, period, model, price_id, token_kind)
            line = lines.get(key)
            if line is None:
                line = lines[key] = _Line(
                    kind, period, model, token_kind, unit, price.effective_from
                )
            line.tokens += tokens
    ordered = sorted(
        lines.values(),
        key=lambda ln: (
            ln.kind != "usage",
            ln.usage_period,
            ln.model,
            ln.effective_from,
            TOKEN_KINDS.index(ln.token_kind),
        ),
    )
    usage_total = Decimal(0)
    adjustments_total = Decimal(0)
    rows = []
    for no, ln in enumerate(ordered, start=1):
        amount = line_amount(ln.tokens, ln.unit_price)
        if ln.kind == "usage":
            usage_total += amount
        else:
            adjustments_total += amount
        rows.append(
            {
                "invoice_id": invoice_id,
                "line_no": no,
                "kind": ln.kind,
                "usage_period": ln.usage_period,
                "model": ln.model,
                "token_kind": ln.token_kind,
                "tokens": ln.tokens,
                "unit_price_per_mtok": ln.unit_price,
                "amount": amount,
            }
        )
    if rows:
        conn.execute(invoice_lines.insert(), rows)
    conn.execute(
        update(invoices)
        .where(invoices.c.invoice_id == invoice_id)
        .values(
            usage_total=usage_total,
            adjustments_total=adjustments_total,
            total=usage_total + adjustments_total,
            status="issued",
        )
    )
    return invoice_id


def _find_id(conn: Connection, customer_id: str, start: datetime) -> int | None:
    row = conn.execute(
        select(invoices.c.invoice_id).where(
            invoices.c.customer_id == customer_id, invoices.c.period_start == start
        )
    ).first()
    return None if row is None else int(row[0])


def _find(conn: Connection, customer_id: str, start: datetime) -> dict[str, Any] | None:
    invoice_id = _find_id(conn, customer_id, start)
    return None if invoice_id is None else get_invoice(conn, invoice_id)


def get_invoice(conn: Connection, invoice_id: int) -> dict[str, Any] | None:
    inv = (
        conn.execute(select(invoices).where(invoices.c.invoice_id == invoice_id)).mappings().first()
    )
    if inv is None or inv["status"] != "issued":
        return None
    lines = conn.execute(
        select(invoice_lines)
        .where(invoice_lines.c.invoice_id == invoice_id)
        .order_by(invoice_lines.c.line_no)
    ).mappings()
    return {
        "invoice_id": inv["invoice_id"],
        "invoice_number": inv["invoice_number"],
        "customer_id": inv["customer_id"],
        "period": f"{inv['period_start']:%Y-%m}",
        "period_start": iso(inv["period_start"]),
        "period_end": iso(inv["period_end"]),
        "currency": inv["currency"],
        "status": inv["status"],
        "issued_at": iso(inv["issued_at"]),
        "lines": [
            {
                "line_no": ln["line_no"],
                "kind": ln["kind"],
                "usage_period": ln["usage_period"],
                "model": ln["model"],
                "token_kind": ln["token_kind"],
                "tokens": int(ln["tokens"]),
                "unit_price_per_mtok": money_str(ln["unit_price_per_mtok"]),
                "amount": f"{ln['amount']:.2f}",
            }
            for ln in lines
        ],
        "usage_total": f"{inv['usage_total']:.2f}",
        "adjustments_total": f"{inv['adjustments_total']:.2f}",
        "total": f"{inv['total']:.2f}",
    }


def list_invoices(
    conn: Connection, customer_id: str | None = None, month: str | None = None
) -> list[dict[str, Any]]:
    q = select(invoices.c.invoice_id).where(invoices.c.status == "issued")
    if customer_id:
        q = q.where(invoices.c.customer_id == customer_id)
    if month:
        q = q.where(invoices.c.period_start == parse_month(month))
    q = q.order_by(invoices.c.period_start, invoices.c.customer_id)
    out = []
    for (invoice_id,) in conn.execute(q).all():
        inv = get_invoice(conn, invoice_id)
        if inv is not None:
            out.append(inv)
    return out


def generate_all(
    engine: Engine,
    month: str,
    now: datetime,
    currency: str,
    customer_ids: Sequence[str] | None = None,
) -> list[tuple[dict[str, Any], bool]]:
    if customer_ids is None:
        with engine.connect() as conn:
            customer_ids = [
                r[0]
                for r in conn.execute(
                    select(customers.c.customer_id).order_by(customers.c.customer_id)
                )
            ]
    return [generate_invoice(engine, c, month, now, currency) for c in customer_ids]

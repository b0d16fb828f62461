"""Customers: the accounts usage is billed to. Never deleted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from .errors import InvalidInput, NotFound
from .schema import customers
from .timeutil import iso


def validate(customer_id: Any, name: Any) -> tuple[str, str]:
    if (
        not isinstance(customer_id, str)
        or not customer_id
        or len(customer_id) > 128
        or not customer_id.isprintable()
    ):
        raise InvalidInput("invalid_value", "customer_id must be 1-128 printable characters")
    if not isinstance(name, str) or len(name) > 256:
        raise InvalidInput("invalid_value", "name must be a string of at most 256 characters")
    return customer_id, name


def upsert_customer(engine: Engine, customer_id: str, name: str) -> bool:
    """Create a customer if missing. Returns True when created."""
    try:
        with engine.execution_options(tb_write=True).begin() as conn:
            if exists(conn, customer_id):
                return False
            conn.execute(customers.insert().values(customer_id=customer_id, name=name))
            return True
    except IntegrityError:
        return False


def exists(conn: Connection, customer_id: str) -> bool:
    row = conn.execute(
        select(customers.c.customer_id).where(customers.c.customer_id == customer_id)
    ).first()
    return row is not None


def require(conn: Connection, customer_id: str) -> None:
    if not exists(conn, customer_id):
        raise NotFound("unknown_customer", f"unknown customer_id {customer_id!r}")


def list_customers(conn: Connection, only: str | None = None) -> list[dict[str, Any]]:
    q = select(customers).order_by(customers.c.customer_id)
    if only is not None:
        q = q.where(customers.c.customer_id == only)
    return [
        {"customer_id": r["customer_id"], "name": r["name"], "created_at": iso(r["created_at"])}
        for r in conn.execute(q).mappings()
    ]

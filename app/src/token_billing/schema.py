"""Database schema (SQLAlchemy Core) and portable column types.

The Alembic migrations in ``token_billing.migrations`` are the source of truth for the
database; this module mirrors the *current* head so that queries can be written with
SQLAlchemy Core. ``tests/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    column,
    func,
    table,
)
from sqlalchemy.sql.expression import TableClause
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL: ``timestamptz``. SQLite: naive ISO text in UTC (sorts correctly).
    Values read back are always aware and in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text (e.g. from a func expression)
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class ExactDecimal(TypeDecorator[Decimal]):
    """Exact decimals: ``NUMERIC(p, s)`` on PostgreSQL, text on SQLite (whose NUMERIC is
    a float in disguise). Never a float anywhere."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 24, scale: int = 9) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("float given to an ExactDecimal column")
        dec = Decimal(value)
        if dialect.name == "sqlite":
            return format(dec, "f")
        return dec

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)) if not isinstance(value, Decimal) else value


metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("name", String(256), nullable=False, server_default=""),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, server_default=""),
    Column("key_hash", String(64), nullable=False),
    Column("scopes", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("customer_id", String(128), nullable=True),  # bound key: this customer only
)

prices = Table(
    "prices",
    metadata,
    Column("price_id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("effective_from", UTCDateTime(), nullable=False),
    Column("input_per_mtok", ExactDecimal(24, 9), nullable=False),
    Column("output_per_mtok", ExactDecimal(24, 9), nullable=False),
    Column("cached_input_per_mtok", ExactDecimal(24, 9), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
    UniqueConstraint("model", "effective_from", name="uq_prices_model_effective_from"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("api_key_id", String(128), nullable=True),
    Column("project", String(128), nullable=True),
    Column("model", String(128), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False, server_default=func.now()),
    Column("price_id", Integer, nullable=False),
    Column("metadata", Text, nullable=True),
    # digest of the billable content (content.py), as 1.1.0 and 1.2.0 stored it; NULL for
    # events stored before 0002 and since 1.3.0, which compares a resend with the columns
    Column("content_digest", String(64), nullable=True),
)

# Hourly rollup: SQLite upserts it in the ingest transaction, PostgreSQL (1.2.0+) in the
# flush of usage_pending (storage/rollup.py); readers use usage_hourly_all.
# invoice_id = 0 means "not yet invoiced"; invoicing re-labels rows with the invoice id,
# so a late event for an invoiced hour lands in a fresh open row (-> adjustment).
# shard: 1.1.0 writers used backend pid % 8 so concurrent batches did not queue on one
# row lock; the flusher writes shard 0; every reader sums over shards.
usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("customer_id", String(128), nullable=False),
    Column("hour", UTCDateTime(), nullable=False),
    Column("model", String(128), nullable=False),
    Column("price_id", Integer, nullable=False),
    Column("invoice_id", Integer, nullable=False, server_default="0"),
    Column("shard", SmallInteger, nullable=False, server_default="0"),
    Column("event_count", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "customer_id", "hour", "model", "price_id", "invoice_id", "shard", name="pk_usage_hourly"
    ),
    Index("ix_usage_hourly_hour", "hour"),
)

# Daily rollup (by occurrence day, never re-labelled): serves day/month reports and the
# current-period spend with at most ~31 rows per customer, model and price.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("customer_id", String(128), nullable=False),
    Column("day", UTCDateTime(), nullable=False),
    Column("model", String(128), nullable=False),
    Column("price_id", Integer, nullable=False),
    Column("shard", SmallInteger, nullable=False, server_default="0"),
    Column("event_count", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    PrimaryKeyConstraint("customer_id", "day", "model", "price_id", "shard", name="pk_usage_daily"),
    Index("ix_usage_daily_day", "day"),
)

# Hourly sums of batches not yet moved into the rollups (PostgreSQL; see
# storage/rollup.py). Append-only between flushes: no key, no index.
usage_pending = Table(
    "usage_pending",
    metadata,
    Column("customer_id", String(128), nullable=False),
    Column("hour", UTCDateTime(), nullable=False),
    Column("model", String(128), nullable=False),
    Column("price_id", Integer, nullable=False),
    Column("event_count", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
)


def _view(name: str, unit: str) -> TableClause:
    return table(
        name,
        column("customer_id", String(128)),
        column(unit, UTCDateTime()),
        column("model", String(128)),
        column("price_id", Integer),
        column("event_count", BigInteger),
        column("input_tokens", BigInteger),
        column("cached_input_tokens", BigInteger),
        column("output_tokens", BigInteger),
    )


# Views (migration 0003): each rollup UNION ALL the pending rows. Every reader of usage
# reads these; only ingest, flush and invoicing touch the tables.
usage_hourly_all = _view("usage_hourly_all", "hour")
usage_daily_all = _view("usage_daily_all", "day")

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_number", String(200), nullable=False, unique=True),
    Column("customer_id", String(128), ForeignKey("customers.customer_id"), nullable=False),
    Column("period_start", UTCDateTime(), nullable=False),
    Column("period_end", UTCDateTime(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("usage_total", ExactDecimal(24, 2), nullable=False),
    Column("adjustments_total", ExactDecimal(24, 2), nullable=False),
    Column("total", ExactDecimal(24, 2), nullable=False),
    Column("status", String(16), nullable=False),  # pending (inside the txn) | issued
    Column("issued_at", UTCDateTime(), nullable=False),
    UniqueConstraint("customer_id", "period_start", name="uq_invoices_customer_period"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", Integer, ForeignKey("invoices.invoice_id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # usage | adjustment
    Column("usage_period", String(7), nullable=False),  # YYYY-MM the tokens occurred in
    Column("model", String(128), nullable=False),
    Column("token_kind", String(16), nullable=False),  # input | cached_input | output
    Column("tokens", BigInteger, nullable=False),
    Column("unit_price_per_mtok", ExactDecimal(24, 9), nullable=False),
    Column("amount", ExactDecimal(24, 2), nullable=False),
    PrimaryKeyConstraint("invoice_id", "line_no", name="pk_invoice_lines"),
)

# Events rejected because no price was valid for (model, occurred_at): counted per model
# and day so "never silently free" is queryable (GET /v1/admin/unpriced).
unpriced_rejections = Table(
    "unpriced_rejections",
    metadata,
    Column("model", String(128), nullable=False),
    Column("day", String(10), nullable=False),
    Column("rejected_count", BigInteger, nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("model", "day", name="pk_unpriced_rejections"),
)

# Resends of a stored event_id with different billable content (conflicts.py): one row
# per distinct resent content, until ops settle it. occurred_at is the stored event's.
usage_conflicts = Table(
    "usage_conflicts",
    metadata,
    Column("event_id", String(128), nullable=False),
    Column("content_digest", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("stored_customer_id", String(128), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("content", Text, nullable=False),
    Column("stored_content", Text, nullable=False),
    Column("resend_count", BigInteger, nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("event_id", "content_digest", name="pk_usage_conflicts"),
    Index("ix_usage_conflicts_occurred_at", "occurred_at"),
)

# The application schema revisions (alembic heads of app releases) that may run against
# the schema as it is now. Expand migrations add their revision and keep the previous
# one; contract migrations drop revisions they break. /readyz consults it.
schema_compat = Table(
    "schema_compat",
    metadata,
    Column("revision", String(64), primary_key=True),
)

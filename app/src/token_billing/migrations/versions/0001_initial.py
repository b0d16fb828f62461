"""initial schema

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from token_billing.schema import ExactDecimal, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, server_default=""),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "prices",
        sa.Column("price_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("effective_from", UTCDateTime(), nullable=False),
        sa.Column("input_per_mtok", ExactDecimal(24, 9), nullable=False),
        sa.Column("output_per_mtok", ExactDecimal(24, 9), nullable=False),
        sa.Column("cached_input_per_mtok", ExactDecimal(24, 9), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("model", "effective_from", name="uq_prices_model_effective_from"),
    )
    op.create_table(
        "usage_events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("api_key_id", sa.String(128), nullable=True),
        sa.Column("project", sa.String(128), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("price_id", sa.Integer, nullable=False),
        sa.Column("metadata", sa.Text, nullable=True),
    )
    op.create_table(
        "usage_hourly",
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("price_id", sa.Integer, nullable=False),
        sa.Column("invoice_id", sa.Integer, nullable=False, server_default="0"),
        sa.Column("shard", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id",
            "hour",
            "model",
            "price_id",
            "invoice_id",
            "shard",
            name="pk_usage_hourly",
        ),
    )
    op.create_index("ix_usage_hourly_hour", "usage_hourly", ["hour"])
    op.create_table(
        "usage_daily",
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("day", UTCDateTime(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("price_id", sa.Integer, nullable=False),
        sa.Column("shard", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "customer_id", "day", "model", "price_id", "shard", name="pk_usage_daily"
        ),
    )
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])
    if op.get_bind().dialect.name == "postgresql":
        # rollup rows are updated in place by every batch: leave room for HOT updates
        for table in ("usage_hourly", "usage_daily"):
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")
    op.create_table(
        "invoices",
        sa.Column("invoice_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("invoice_number", sa.String(200), nullable=False, unique=True),
        sa.Column(
            "customer_id",
            sa.String(128),
            sa.ForeignKey("customers.customer_id"),
            nullable=False,
        ),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("usage_total", ExactDecimal(24, 2), nullable=False),
        sa.Column("adjustments_total", ExactDecimal(24, 2), nullable=False),
        sa.Column("total", ExactDecimal(24, 2), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("customer_id", "period_start", name="uq_invoices_customer_period"),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoices.invoice_id"), nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("usage_period", sa.String(7), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("token_kind", sa.String(16), nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("unit_price_per_mtok", ExactDecimal(24, 9), nullable=False),
        sa.Column("amount", ExactDecimal(24, 2), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", "line_no", name="pk_invoice_lines"),
    )
    op.create_table(
        "unpriced_rejections",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("rejected_count", sa.BigInteger, nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model", "day", name="pk_unpriced_rejections"),
    )
    op.create_table(
        "schema_compat",
        sa.Column("revision", sa.String(64), primary_key=True),
    )
    op.bulk_insert(
        sa.table("schema_compat", sa.column("revision", sa.String)), [{"revision": "0001"}]
    )
    _immutability_triggers()


def _immutability_triggers() -> None:
    """Issued invoices and their lines can never change, whatever the client."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION token_billing_invoice_immutable() RETURNS trigger AS $$
            BEGIN
              IF TG_TABLE_NAME = 'invoices' AND TG_OP = 'UPDATE'
                 AND OLD.status = 'pending' THEN
                RETURN NEW;
              END IF;
              RAISE EXCEPTION 'issued invoices are immutable (% on %)', TG_OP, TG_TABLE_NAME;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        for table in ("invoices", "invoice_lines"):
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION token_billing_invoice_immutable()"
            )
    else:
        op.execute(
            "CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices "
            "WHEN OLD.status <> 'pending' "
            "BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable'); END"
        )
        op.execute(
            "CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices "
            "BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable'); END"
        )
        for op_name in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER invoice_lines_no_{op_name.lower()} BEFORE {op_name} "
                "ON invoice_lines "
                "BEGIN SELECT RAISE(ABORT, 'issued invoices are immutable'); END"
            )


def downgrade() -> None:
    for table in (
        "schema_compat",
        "unpriced_rejections",
        "invoice_lines",
        "invoices",
        "usage_daily",
        "usage_hourly",
        "usage_events",
        "prices",
        "api_keys",
        "customers",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS token_billing_invoice_immutable()")

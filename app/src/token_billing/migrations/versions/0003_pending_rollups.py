"""rollups flushed off the ingest path: usage_pending and the *_all views (expand)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from token_billing.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SUMS = "event_count, input_tokens, cached_input_tokens, output_tokens"


def upgrade() -> None:
    op.create_table(
        "usage_pending",
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("hour", UTCDateTime(), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("price_id", sa.Integer, nullable=False),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # its rows live about a second: reclaim dead ones after every 10,000 (the
        # flushers also VACUUM it; this covers flushing left to invoicing)
        op.execute(
            "ALTER TABLE usage_pending SET (autovacuum_vacuum_scale_factor = 0, "
            "autovacuum_vacuum_threshold = 10000, autovacuum_vacuum_cost_delay = 0)"
        )
    day = "date_trunc('day', hour)" if postgresql else "substr(hour, 1, 10) || ' 00:00:00.000000'"
    op.execute(
        f"""CREATE VIEW usage_hourly_all AS
        SELECT customer_id, hour, model, price_id, {_SUMS} FROM usage_hourly
        UNION ALL
        SELECT customer_id, hour, model, price_id, {_SUMS} FROM usage_pending"""
    )
    op.execute(
        f"""CREATE VIEW usage_daily_all AS
        SELECT customer_id, day, model, price_id, {_SUMS} FROM usage_daily
        UNION ALL
        SELECT customer_id, {day} AS day, model, price_id, {_SUMS} FROM usage_pending"""
    )
    # 0002's code writes the rollups itself and keeps working; while both run, its
    # reads miss the other release's pending rows until they are flushed (< 1 s).
    op.bulk_insert(
        sa.table("schema_compat", sa.column("revision", sa.String)), [{"revision": "0003"}]
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        from token_billing.storage.rollup import FLUSH

        op.get_bind().exec_driver_sql(FLUSH)
    op.execute("DROP VIEW usage_daily_all")
    op.execute("DROP VIEW usage_hourly_all")
    op.drop_table("usage_pending")
    op.execute("DELETE FROM schema_compat WHERE revision = '0003'")

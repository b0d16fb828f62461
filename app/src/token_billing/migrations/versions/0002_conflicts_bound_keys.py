"""conflicting resends, customer-bound keys (expand: 0001 keeps working)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from token_billing.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_events") as batch:
        batch.add_column(sa.Column("content_digest", sa.String(64), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(128), nullable=True))
    op.create_table(
        "usage_conflicts",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("content_digest", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("stored_customer_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("stored_content", sa.Text, nullable=False),
        sa.Column("resend_count", sa.BigInteger, nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "content_digest", name="pk_usage_conflicts"),
    )
    op.create_index("ix_usage_conflicts_occurred_at", "usage_conflicts", ["occurred_at"])
    # 0001's code inserts without a digest (NULL: compared by its columns) and never
    # reads the new columns, so it stays ready during the rolling deploy.
    op.bulk_insert(
        sa.table("schema_compat", sa.column("revision", sa.String)), [{"revision": "0002"}]
    )


def downgrade() -> None:
    op.drop_index("ix_usage_conflicts_occurred_at", "usage_conflicts")
    op.drop_table("usage_conflicts")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("customer_id")
    with op.batch_alter_table("usage_events") as batch:
        batch.drop_column("content_digest")
    op.execute("DELETE FROM schema_compat WHERE revision = '0002'")

"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Expand/contract rule: a migration shipped with release N must leave the schema usable by
release N-1 (add nullable columns / new tables, backfill, keep old columns). Dropping or
renaming happens in a later "contract" migration, once no N-1 instance runs. Record the
application revisions that may run against the new schema in ``schema_compat``.
"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}

"""Running the shipped Alembic migrations and checking the schema revision."""

from __future__ import annotations

from dataclasses import dataclass

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, select, text

from . import schema

SCRIPT_LOCATION = "token_billing:migrations"
# arbitrary constant: serialises concurrent 'token-billing migrate' runs on PostgreSQL
_PG_ADVISORY_LOCK_ID = 7_402_117_553


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    return cfg


def head_revision() -> str:
    """The schema revision this release of the code expects (its alembic head)."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migration scripts must have exactly one head, got {heads}")
    return str(heads[0])


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision``. Returns (before, after)."""
    from alembic import command

    cfg = alembic_config()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_ADVISORY_LOCK_ID})
            conn.commit()
        try:
            before = current_revision(conn)
            conn.commit()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
            after = current_revision(conn)
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_ADVISORY_LOCK_ID})
                conn.commit()
    return before, after


@dataclass(frozen=True)
class SchemaStatus:
    ok: bool
    current: str | None
    expected: str
    message: str


def schema_status(conn: Connection) -> SchemaStatus:
    """Is the database schema usable by this release?

    Ready when the database is at our head revision, or at a later revision whose
    ``schema_compat`` table still lists our head (an expand migration of the next
    release has run: both releases work during the rolling deploy).
    """
    expected = head_revision()
    current = current_revision(conn)
    if current == expected:
        return SchemaStatus(True, current, expected, "schema at expected revision")
    if current is None:
        return SchemaStatus(
            False, None, expected, "database not migrated: run 'token-billing migrate'"
        )
    compatible = {r for (r,) in conn.execute(select(schema.schema_compat.c.revision)).all()}
    if expected in compatible:
        return SchemaStatus(
            True, current, expected, f"schema at {current}, compatible with {expected}"
        )
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current in known:
        return SchemaStatus(
            False,
            current,
            expected,
            f"schema at {current}, expected {expected}: run 'token-billing migrate'",
        )
    return SchemaStatus(
        False,
        current,
        expected,
        f"schema at {current} (newer release) is not compatible with {expected}",
    )

"""Migrations: the schema module matches the migrations; readiness follows schema_compat."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from token_billing.migrate import head_revision, schema_status, upgrade
from token_billing.schema import metadata

from .tb_testlib import Env


def test_migrated_schema_matches_metadata(env: Env) -> None:
    with env.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = compare_metadata(ctx, metadata)
    assert diffs == []


def test_migrate_is_idempotent(env: Env) -> None:
    before, after = upgrade(env.engine)
    assert before == after == head_revision()


def test_readyz_follows_schema_compat(env: Env) -> None:
    client = env.client
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready" and body["schema"]["current"] == head_revision()
    # the next release ran an expand migration: still compatible with us -> ready
    with env.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
        conn.execute(text("INSERT INTO schema_compat (revision) VALUES ('f00d')"))
    r = client.get("/readyz")
    assert r.status_code == 200, r.get_json()
    assert "compatible" in r.get_json()["schema"]["message"]
    # ...then its contract migration dropped our revision -> not ready
    with env.engine.begin() as conn:
        conn.execute(text("DELETE FROM schema_compat WHERE revision = :r"), {"r": head_revision()})
    r = client.get("/readyz")
    assert r.status_code == 503 and "not compatible" in r.get_json()["schema"]["message"]
    with env.engine.connect() as conn:
        assert not schema_status(conn).ok

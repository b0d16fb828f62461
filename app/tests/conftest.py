"""Fixtures for the billing service tests: SQLite and a real throwaway PostgreSQL."""

from .tb_testlib import backend, db_url, engine, env, pg_cluster, settings

__all__ = ["backend", "db_url", "engine", "env", "pg_cluster", "settings"]

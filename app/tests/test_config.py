"""Configuration: env vars and TOML; a bad setting fails with ONE line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from token_billing.config import ConfigError, load_settings


def test_defaults_zero_config() -> None:
    s = load_settings({})
    assert s.database_url == "sqlite:///token_billing.db"
    assert s.bind == "127.0.0.1:8080" and s.max_batch_size == 1000


def test_toml_then_env_override(tmp_path: Path) -> None:
    cfg = tmp_path / "billing.toml"
    cfg.write_text(
        'database_url = "postgresql://billing:s3cret@db.internal:5432/billing"\n'
        "workers = 3\n"
        'bind = "0.0.0.0:9000"\n'
        'log_format = "text"\n'
    )
    s = load_settings({"TOKEN_BILLING_CONFIG": str(cfg), "TOKEN_BILLING_WORKERS": "5"})
    assert s.workers == 5 and s.bind == "0.0.0.0:9000" and s.log_format == "text"
    assert s.database_url.startswith("postgresql+psycopg://")
    assert "s3cret" not in s.redacted_database_url()
    assert "s3cret" not in str(s.as_public_dict())


def test_password_file(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("p@ss/word\n")
    s = load_settings(
        {
            "TOKEN_BILLING_DATABASE_URL": "postgresql://billing@db/billing",
            "TOKEN_BILLING_DATABASE_PASSWORD_FILE": str(pw),
        }
    )
    from sqlalchemy.engine import make_url

    assert make_url(s.database_url).password == "p@ss/word"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"TOKEN_BILLING_WORKERS": "many"}, "workers"),
        ({"TOKEN_BILLING_WORKERS": "0"}, "workers"),
        ({"TOKEN_BILLING_DATABASE_URL": "mysql://x/y"}, "database_url"),
        ({"TOKEN_BILLING_DATABASE_URL": "::::"}, "database_url"),
        ({"TOKEN_BILLING_BIND": "localhost"}, "bind"),
        ({"TOKEN_BILLING_LOG_LEVEL": "loud"}, "log_level"),
        ({"TOKEN_BILLING_CURRENCY": "dollars"}, "currency"),
        ({"TOKEN_BILLING_DB_POOL_TIMEOUT": "-1"}, "db_pool_timeout"),
        ({"TOKEN_BILLING_CONFIG": "/nonexistent/billing.toml"}, "config"),
        ({"TOKEN_BILLING_DATABASE_PASSWORD_FILE": "/nonexistent"}, "database_password_file"),
    ],
)
def test_bad_settings(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_settings(env)
    msg = str(ei.value)
    assert "\n" not in msg
    assert f"'{setting}'" in msg


def test_bad_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("workers = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"TOKEN_BILLING_CONFIG": str(cfg)})
    cfg.write_text("wrokers = 3\n")
    with pytest.raises(ConfigError, match=r"'wrokers'.*unknown setting"):
        load_settings({"TOKEN_BILLING_CONFIG": str(cfg)})
    cfg.write_text('workers = "x"\n')
    with pytest.raises(ConfigError, match="'workers'"):
        load_settings({"TOKEN_BILLING_CONFIG": str(cfg)})


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_BILLING_")}
    full.update(env)
    return subprocess.run(args, capture_output=True, text=True, env=full, timeout=60, check=False)


def test_bad_config_fails_at_start_with_one_line(tmp_path: Path) -> None:
    env = {
        "TOKEN_BILLING_WORKERS": "lots",
        "TOKEN_BILLING_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    r = _run([sys.executable, "-m", "token_billing", "check-config"], env)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "'workers'" in r.stderr and "TOKEN_BILLING_WORKERS" in r.stderr
    # gunicorn with the shipped config: stops before forking workers, one line
    r = _run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:token_billing.gunicorn_conf",
            "token_billing.wsgi:app",
        ],
        env,
    )
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "'workers'" in lines[0], r.stderr

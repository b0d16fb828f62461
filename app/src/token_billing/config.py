"""Configuration: defaults, then a TOML file (``TOKEN_BILLING_CONFIG``), then env vars.

Every setting has one name. In the TOML file it is a top-level key (``workers = 4``),
as an environment variable it is ``TOKEN_BILLING_<NAME upper-cased>``
(``TOKEN_BILLING_WORKERS=4``). Environment variables win over the file.

A bad configuration raises :class:`ConfigError` whose message is ONE line naming the
setting; entry points print it and exit with status 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "TOKEN_BILLING_"
CONFIG_ENV = "TOKEN_BILLING_CONFIG"


class ConfigError(Exception):
    """A configuration problem; ``str(exc)`` is a single line naming the setting."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        env = ENV_PREFIX + setting.upper()
        super().__init__(f"configuration error: setting '{setting}' ({env}): {message}")


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///token_billing.db"
    database_password_file: str = ""
    db_pool_size: int = 5
    db_max_overflow: int = 5
    db_pool_timeout: float = 5.0
    db_connect_timeout: int = 5
    db_statement_timeout_ms: int = 30000
    bind: str = "127.0.0.1:8080"
    workers: int = 2
    threads: int = 8
    timeout: int = 30
    graceful_timeout: int = 25
    keepalive: int = 5
    # seconds a client has to send a whole request (line, headers, body) before a 408
    request_read_timeout: float = 10.0
    log_level: str = "info"
    log_format: str = "json"
    max_batch_size: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    max_tokens_per_event: int = 10_000_000
    max_metadata_bytes: int = 4096
    max_event_age_days: int = 400
    max_clock_skew_seconds: int = 300
    retry_after_seconds: int = 2
    auth_cache_seconds: int = 5
    # PostgreSQL: how often each worker moves pending usage into the rollups (0: never;
    # readers still see it, invoicing flushes first)
    rollup_flush_seconds: float = 1.0
    currency: str = "USD"
    prometheus_multiproc_dir: str = ""
    # where the settings came from (for check-config); not a setting itself
    source: str = field(default="defaults", compare=False)

    def redacted_database_url(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.database_url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - validated earlier; never leak on failure
            return "<unparseable>"

    def as_public_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            out[f.name] = getattr(self, f.name)
        out["database_url"] = self.redacted_database_url()
        return out


SETTING_NAMES = tuple(f.name for f in fields(Settings) if f.name != "source")


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str, Any], int]:
    def conv(name: str, raw: Any) -> int:
        if isinstance(raw, bool):
            raise ConfigError(name, f"expected an integer, got {raw!r}")
        if isinstance(raw, int):
            val = raw
        elif isinstance(raw, str):
            try:
                val = int(raw.strip())
            except ValueError:
                raise ConfigError(name, f"expected an integer, got {raw!r}") from None
        else:
            raise ConfigError(name, f"expected an integer, got {raw!r}")
        if lo is not None and val < lo:
            raise ConfigError(name, f"must be >= {lo}, got {val}")
        if hi is not None and val > hi:
            raise ConfigError(name, f"must be <= {hi}, got {val}")
        return val

    return conv


def _float(lo: float) -> Callable[[str, Any], float]:
    def conv(name: str, raw: Any) -> float:
        if isinstance(raw, bool):
            raise ConfigError(name, f"expected a number, got {raw!r}")
        try:
            val = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, f"expected a number, got {raw!r}") from None
        if not val >= lo:
            raise ConfigError(name, f"must be >= {lo}, got {val}")
        return val

    return conv


def _str(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError(name, f"expected a string, got {raw!r}")
    return raw.strip()


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def conv(name: str, raw: Any) -> str:
        val = _str(name, raw).lower()
        if val not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
        return val

    return conv


def _database_url(name: str, raw: Any) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    val = _str(name, raw)
    if not val:
        raise ConfigError(name, "must not be empty")
    try:
        url = make_url(val)
    except ArgumentError:
        raise ConfigError(
            name, "not a valid database URL (sqlite:///PATH or postgresql://...)"
        ) from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(name, f"unsupported database backend {backend!r} (sqlite or postgresql)")
    if backend == "postgresql":
        driver = url.get_driver_name()
        if driver not in ("psycopg", "psycopg2", "") and url.drivername != "postgresql":
            raise ConfigError(name, f"unsupported PostgreSQL driver {driver!r} (use psycopg)")
        url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return val


def _bind(name: str, raw: Any) -> str:
    val = _str(name, raw)
    if val.startswith("unix:"):
        return val
    host, sep, port = val.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(name, f"expected HOST:PORT or unix:PATH, got {raw!r}")
    return val


def _currency(name: str, raw: Any) -> str:
    val = _str(name, raw).upper()
    if len(val) != 3 or not val.isalpha():
        raise ConfigError(name, f"expected an ISO 4217 code like USD, got {raw!r}")
    return val


CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "database_url": _database_url,
    "database_password_file": _str,
    "db_pool_size": _int(1, 200),
    "db_max_overflow": _int(0, 200),
    "db_pool_timeout": _float(0.1),
    "db_connect_timeout": _int(1, 600),
    "db_statement_timeout_ms": _int(0),
    "bind": _bind,
    "workers": _int(1, 64),
    "threads": _int(1, 64),
    "timeout": _int(1),
    "graceful_timeout": _int(1),
    "keepalive": _int(0),
    "request_read_timeout": _float(0.5),
    "log_level": _choice("debug", "info", "warning", "error"),
    "log_format": _choice("json", "text"),
    "max_batch_size": _int(1, 100_000),
    "max_body_bytes": _int(1024),
    "max_tokens_per_event": _int(1),
    "max_metadata_bytes": _int(0),
    "max_event_age_days": _int(1),
    "max_clock_skew_seconds": _int(0),
    "retry_after_seconds": _int(1, 3600),
    "auth_cache_seconds": _int(0, 3600),
    "rollup_flush_seconds": _float(0),
    "currency": _currency,
    "prometheus_multiproc_dir": _str,
}
assert set(CONVERTERS) == set(SETTING_NAMES)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"config file {path} is not valid TOML: {exc}") from None
    # Allow either flat keys or a [token_billing] table (flat keys win).
    section = data.pop("token_billing", None)
    if isinstance(section, dict):
        data = {**section, **data}
    return data


def load_settings(
    environ: Mapping[str, str] | None = None, config_path: str | None = None
) -> Settings:
    """Load and validate settings. Raises :class:`ConfigError` (one line) on any problem."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    sources = ["defaults"]
    path = config_path if config_path is not None else env.get(CONFIG_ENV, "")
    if path:
        file_values = _read_toml(path)
        for key in file_values:
            if key not in CONVERTERS:
                raise ConfigError(key, f"unknown setting in config file {path}")
        raw.update(file_values)
        sources.append(f"file:{path}")
    env_used = False
    for name in SETTING_NAMES:
        env_name = ENV_PREFIX + name.upper()
        if env_name in env:
            raw[name] = env[env_name]
            env_used = True
    # the standard prometheus variable is honoured too
    if "prometheus_multiproc_dir" not in raw and env.get("PROMETHEUS_MULTIPROC_DIR"):
        raw["prometheus_multiproc_dir"] = env["PROMETHEUS_MULTIPROC_DIR"]
    if env_used:
        sources.append("env")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        values[name] = CONVERTERS[name](name, value)
    settings = Settings(**values, source="+".join(sources))
    if settings.database_password_file:
        settings = _apply_password_file(settings)
    if settings.graceful_timeout > settings.timeout * 10:
        raise ConfigError("graceful_timeout", "unreasonably larger than timeout")
    return settings


def _apply_password_file(settings: Settings) -> Settings:
    from dataclasses import replace

    from sqlalchemy.engine import make_url

    name = "database_password_file"
    try:
        password = Path(settings.database_password_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            name, f"cannot read {settings.database_password_file}: {exc.strerror}"
        ) from None
    if not password:
        raise ConfigError(name, f"{settings.database_password_file} is empty")
    url = make_url(settings.database_url).set(password=password)
    return replace(settings, database_url=url.render_as_string(hide_password=False))

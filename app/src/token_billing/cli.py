"""``token-billing`` command line.

Exit status: 0 ok, 1 operation failed (message on stderr), 2 usage or configuration error.
Over 300 lines: one short function per command plus the parser that lists them all; the
commands only call the domain modules.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .config import ConfigError, Settings, load_settings
from .errors import DomainError


class CliError(Exception):
    pass


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(config_path=args.config)


def _engine(settings: Settings) -> Any:
    from .db import make_engine

    return make_engine(settings)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    out: dict[str, Any] = {
        "ok": True,
        "source": settings.source,
        "settings": settings.as_public_dict(),
    }
    if args.connect:
        from .migrate import schema_status

        engine = _engine(settings)
        try:
            with engine.connect() as conn:
                st = schema_status(conn)
            out["schema"] = {
                "ok": st.ok,
                "current": st.current,
                "expected": st.expected,
                "message": st.message,
            }
            out["ok"] = st.ok
        finally:
            engine.dispose()
    print(json.dumps(out, indent=2, default=str))
    return 0 if out["ok"] else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    from .migrate import upgrade

    settings = _settings(args)
    engine = _engine(settings)
    try:
        before, after = upgrade(engine, args.revision)
    finally:
        engine.dispose()
    if before == after:
        print(f"schema already at {after}")
    else:
        print(f"schema migrated from {before or 'empty'} to {after}")
    return 0


def cmd_create_api_key(args: argparse.Namespace) -> int:
    from . import auth

    scopes = auth.parse_scopes(args.scopes)
    key = None
    if args.key_env:
        key = os.environ.get(args.key_env)
        if not key:
            raise CliError(f"environment variable {args.key_env} is empty or unset")
    elif args.key_file:
        try:
            with open(args.key_file, encoding="utf-8") as fh:
                key = fh.read().strip()
        except OSError as exc:
            raise CliError(f"cannot read {args.key_file}: {exc.strerror}") from None
    settings = _settings(args)
    engine = _engine(settings)
    try:
        with engine.execution_options(tb_write=True).begin() as conn:
            key_id, full = auth.create_key(conn, args.name, scopes, key, args.customer)
    finally:
        engine.dispose()
    bound = f", bound to customer {args.customer}" if args.customer else ""
    print(f"created API key {key_id} ({','.join(sorted(scopes))}{bound})", file=sys.stderr)
    if key is None:
        print(full)  # the only time the key is ever shown
    return 0


def cmd_generate_api_key(_args: argparse.Namespace) -> int:
    from . import auth

    print(auth.generate_key())
    return 0


def cmd_revoke_api_key(args: argparse.Namespace) -> int:
    from . import auth

    key_id = auth.split_key(args.key_id) or args.key_id
    engine = _engine(_settings(args))
    try:
        with engine.execution_options(tb_write=True).begin() as conn:
            done = auth.revoke_key(conn, key_id)
    finally:
        engine.dispose()
    if not done:
        raise CliError(f"no active API key {key_id}")
    print(f"revoked API key {key_id}")
    return 0


def cmd_list_api_keys(args: argparse.Namespace) -> int:
    from . import auth

    engine = _engine(_settings(args))
    try:
        with engine.connect() as conn:
            rows = auth.list_keys(conn)
    finally:
        engine.dispose()
    print(json.dumps(rows, indent=2, default=str))
    return 0


def cmd_create_customer(args: argparse.Namespace) -> int:
    from .customers import upsert_customer

    engine = _engine(_settings(args))
    try:
        created = upsert_customer(engine, args.customer_id, args.name)
    finally:
        engine.dispose()
    print(f"customer {args.customer_id} {'created' if created else 'already exists'}")
    return 0


def cmd_load_prices(args: argparse.Namespace) -> int:
    from . import pricing

    settings = _settings(args)
    try:
        items = pricing.read_price_file(args.file, settings.currency)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    except pricing.PriceError as exc:
        raise CliError(str(exc)) from None
    engine = _engine(settings)
    try:
        with engine.execution_options(tb_write=True).begin() as conn:
            res = pricing.store_prices(conn, items, settings.currency)
    except pricing.PriceError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    print(f"prices loaded: {res.inserted} new, {res.unchanged} unchanged")
    return 0


def cmd_generate_invoices(args: argparse.Namespace) -> int:
    from . import invoices

    settings = _settings(args)
    engine = _engine(settings)
    now = datetime.now(UTC)
    try:
        results = invoices.generate_all(
            engine, args.month, now, settings.currency, [args.customer] if args.customer else None
        )
    except DomainError as exc:
        raise CliError(exc.message) from None
    finally:
        engine.dispose()
    for inv, created in results:
        print(
            f"{inv['invoice_number']}: total {inv['total']} {inv['currency']} "
            f"({'issued' if created else 'already issued'})",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps([inv for inv, _ in results], indent=2))
    return 0


def cmd_export_csv(args: argparse.Namespace) -> int:
    from . import queries
    from .validation import parse_timestamp

    start = parse_timestamp(args.start)
    end = parse_timestamp(args.end)
    if start is None or end is None:
        raise CliError("--start and --end must be RFC 3339 timestamps (e.g. 2025-01-01T00:00:00Z)")
    settings = _settings(args)
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            rows = queries.usage_report(
                conn,
                start,
                end,
                granularity=args.granularity,
                customer_id=args.customer,
                model=args.model,
            )
    finally:
        engine.dispose()
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        for chunk in queries.usage_csv(rows, settings.currency):
            out.write(chunk)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def cmd_list_conflicts(args: argparse.Namespace) -> int:
    from . import conflicts
    from .timeutil import next_month, parse_month

    start = parse_month(args.month)
    engine = _engine(_settings(args))
    try:
        with engine.connect() as conn:
            rows = conflicts.list_conflicts(conn, start, next_month(start), args.customer)
    finally:
        engine.dispose()
    print(json.dumps(rows, indent=2))
    print(
        f"{len(rows)} conflicting resend(s) of events that occurred in {args.month}",
        file=sys.stderr,
    )
    return 0


def cmd_flush_rollups(args: argparse.Namespace) -> int:
    from .storage.flush import flush

    engine = _engine(_settings(args))
    try:
        with engine.begin() as conn:
            moved = flush(conn)
    finally:
        engine.dispose()
    print(f"moved {moved} pending hourly row(s) into the rollups", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    if args.config:
        os.environ["TOKEN_BILLING_CONFIG"] = args.config
    _settings(args)  # fail fast with the one-line message
    argv = ["gunicorn", "-c", "python:token_billing.gunicorn_conf", "token_billing.wsgi:app"]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])  # noqa: S606
    return 0  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="token-billing", description="Token billing service")
    p.add_argument("--version", action="version", version=f"token-billing {__version__}")
    p.add_argument(
        "--config",
        default=None,
        help="TOML config file (default: $TOKEN_BILLING_CONFIG; env vars override it)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "check-config", help="validate the configuration and print it (secrets redacted)"
    )
    s.add_argument(
        "--connect", action="store_true", help="also connect and check the schema revision"
    )
    s.set_defaults(func=cmd_check_config)

    s = sub.add_parser("migrate", help="apply database migrations (idempotent)")
    s.add_argument("--revision", default="head")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("create-api-key", help="create an API key; prints it once on stdout")
    s.add_argument("--name", required=True)
    s.add_argument("--scopes", required=True, help="comma-separated: ingest,read,admin")
    s.add_argument("--customer", help="bind the key to this customer (its reads and ingests only)")
    g = s.add_mutually_exclusive_group()
    g.add_argument(
        "--key-env", help="register the pre-generated key held in this env var (idempotent)"
    )
    g.add_argument(
        "--key-file", help="register the pre-generated key stored in this file (idempotent)"
    )
    s.set_defaults(func=cmd_create_api_key)

    s = sub.add_parser(
        "generate-api-key", help="print a new random key (not stored) for --key-env/--key-file"
    )
    s.set_defaults(func=cmd_generate_api_key)

    s = sub.add_parser("revoke-api-key", help="revoke an API key (by key id or full key)")
    s.add_argument("key_id")
    s.set_defaults(func=cmd_revoke_api_key)

    s = sub.add_parser("list-api-keys", help="list API keys (ids, names, scopes; never secrets)")
    s.set_defaults(func=cmd_list_api_keys)

    s = sub.add_parser("create-customer", help="register a customer (idempotent)")
    s.add_argument("customer_id")
    s.add_argument("--name", default="")
    s.set_defaults(func=cmd_create_customer)

    s = sub.add_parser(
        "load-prices", help="load prices from a .toml/.json/.csv file (all or nothing)"
    )
    s.add_argument("file")
    s.set_defaults(func=cmd_load_prices)

    s = sub.add_parser("generate-invoices", help="issue invoices for a closed month (idempotent)")
    s.add_argument("--month", required=True, help="YYYY-MM (UTC calendar month)")
    s.add_argument("--customer", help="only this customer (default: all customers)")
    s.add_argument("--json", action="store_true", help="print the invoices as JSON on stdout")
    s.set_defaults(func=cmd_generate_invoices)

    s = sub.add_parser("export-csv", help="usage and cost report as CSV")
    s.add_argument("--start", required=True)
    s.add_argument("--end", required=True)
    s.add_argument("--granularity", choices=("hour", "day", "month"), default="day")
    s.add_argument("--customer")
    s.add_argument("--model")
    s.add_argument("--output", "-o")
    s.set_defaults(func=cmd_export_csv)

    s = sub.add_parser(
        "list-conflicts",
        help="resends of a stored event_id with different billable content, for a month",
    )
    s.add_argument("--month", required=True, help="YYYY-MM: when the stored events occurred")
    s.add_argument("--customer", help="only this customer")
    s.set_defaults(func=cmd_list_conflicts)

    s = sub.add_parser(
        "flush-rollups",
        help="move pending usage into the rollups now (the service does it every second; "
        "run it after rolling back to a release before 1.2.0)",
    )
    s.set_defaults(func=cmd_flush_rollups)

    s = sub.add_parser("serve", help="run the HTTP service under gunicorn with the shipped config")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"token-billing: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"token-billing: error: {exc}", file=sys.stderr)
        return 1
    except DomainError as exc:
        print(f"token-billing: error: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        from .db import is_unavailable_error

        if is_unavailable_error(exc):
            print(
                f"token-billing: error: database unavailable ({type(exc).__name__})",
                file=sys.stderr,
            )
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

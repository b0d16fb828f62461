"""``report-engine``: build one month's usage report.

Configuration from the environment (the systemd unit sets it):
REPORT_ENGINE_DATABASE_URL (a read-only role), REPORT_ENGINE_OUTPUT_DIR,
REPORT_ENGINE_API_URL and REPORT_ENGINE_API_KEY_FILE (a read key of the billing API).
Exit status 0 published, 1 failed (one line on stderr, nothing published), 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from . import __version__
from .source import Month


def _previous_month() -> str:
    return str(
        Month(datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)).previous
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="report-engine", description=__doc__)
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("--month", help="YYYY-MM (default: the previous calendar month, UTC)")
    p.add_argument("--output", help="default $REPORT_ENGINE_OUTPUT_DIR")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    env = os.environ
    try:
        month = Month.parse(args.month or _previous_month())
        url = env.get("REPORT_ENGINE_DATABASE_URL")
        out = args.output or env.get("REPORT_ENGINE_OUTPUT_DIR")
        if not url or not out:
            print(
                "report-engine: set REPORT_ENGINE_DATABASE_URL and REPORT_ENGINE_OUTPUT_DIR "
                "(or --output)",
                file=sys.stderr,
            )
            return 2
        key = None
        if key_file := env.get("REPORT_ENGINE_API_KEY_FILE"):
            key = Path(key_file).read_text(encoding="utf-8").strip()
        from sqlalchemy import create_engine

        from .report import run

        engine = create_engine(url, pool_pre_ping=True)
        try:
            result = run(engine, month, Path(out), env.get("REPORT_ENGINE_API_URL"), key)
        finally:
            engine.dispose()
    except ValueError as exc:
        print(f"report-engine: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 (one line for the journal, exit 1)
        print(f"report-engine: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(
        f"report-engine: {result.month}: {result.customers} customers, "
        f"{result.rows_checked} totals checked, published at {result.path}",
        file=sys.stderr,
    )
    return 0

"""One month's report: read, check against the API, render every scope, publish."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from . import check, publish, render
from .source import Month, read_month

log = logging.getLogger("report_engine")


@dataclass(frozen=True)
class Result:
    month: str
    customers: int
    rows_checked: int
    path: Path


def run(
    engine: Engine, month: Month, out: Path, api_url: str | None, api_key: str | None
) -> Result:
    log.info("reading %s and %s from the billing database", month, month.previous)
    frame, currency = read_month(engine, month)
    previous, _ = read_month(engine, month.previous)
    log.info("%d daily rows for %d customers", len(frame), frame["customer_id"].nunique())
    checked = 0
    if api_url is not None and api_key is not None:
        checked = check.verify(frame, check.api_totals(api_url, api_key, month))
        log.info("totals equal the billing API's for %d customer/model pairs", checked)
    else:
        log.warning("no billing API configured: totals not checked")
    customers = sorted(str(c) for c in frame["customer_id"].unique())
    with publish.month_build(out, str(month)) as root:
        links = [(c, f"customers/{publish.path_name(c)}/index.html") for c in customers]
        render.write_scope(
            root,
            f"Platform, {month}",
            frame=frame,
            previous=previous,
            currency=currency,
            links=links,
        )
        for n, customer in enumerate(customers, 1):
            render.write_scope(
                root / "customers" / publish.path_name(customer),
                f"{customer}, {month}",
                frame=frame[frame["customer_id"] == customer],
                previous=previous[previous["customer_id"] == customer],
                currency=currency,
            )
            if n % 50 == 0 or n == len(customers):
                log.info("rendered %d/%d customers", n, len(customers))
    log.info("published %s", out / str(month))
    return Result(str(month), len(customers), checked, out / str(month))

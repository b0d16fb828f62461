"""Publishing a month atomically: readers see the old month or the new one, never a mix.

``<out>/<YYYY-MM>`` is a symlink into ``<out>/.builds/``; a re-run builds a new directory
beside it and swaps the link with one rename, then removes the month's older builds.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MONTH_DIR = re.compile(r"\d{4}-\d{2}")


def path_name(customer_id: str) -> str:
    """A customer id as one safe path segment (no '/', no '.', reversible)."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"%{ord(m.group()):02X}", customer_id)


@contextmanager
def month_build(out: Path, month: str) -> Iterator[Path]:
    """Yields an empty directory to build the month in; publishes it on success,
    removes it on failure (the published month, if any, is untouched)."""
    link = out / month
    if link.exists() and not link.is_symlink():
        raise RuntimeError(f"{link} is a directory, not a published month link: move it away")
    builds = out / ".builds"
    builds.mkdir(parents=True, exist_ok=True)
    final = builds / f"{month}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
    tmp = final.with_name(final.name + ".tmp")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.rename(final)
    new_link = out / f".{month}.link.{os.getpid()}"
    new_link.symlink_to(final.relative_to(out))
    os.replace(new_link, link)
    for old in builds.glob(f"{month}.*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    write_index(out)


def write_index(out: Path) -> None:
    months = sorted(
        (p.name for p in out.iterdir() if p.is_symlink() and MONTH_DIR.fullmatch(p.name)),
        reverse=True,
    )
    items = "".join(
        f'<li><a href="{html.escape(m)}/index.html">{html.escape(m)}</a></li>' for m in months
    )
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Token usage reports</title></head><body>\n"
        f"<h1>Token usage reports</h1>\n<ul>{items}</ul>\n</body></html>\n"
    )
    tmp = out / f".index.html.{os.getpid()}"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out / "index.html")

"""The files of one scope (a customer, or the whole platform) for one month."""

from __future__ import annotations

import html
from decimal import Decimal
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display

import matplotlib.pyplot as plt
import pandas as pd

from .source import COLUMNS

CSV_COLUMNS = [c for c in COLUMNS if c != "customer_id"]


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.groupby(["day", "model"], as_index=False).agg(
        {
            "events": "sum",
            "input_tokens": "sum",
            "cached_input_tokens": "sum",
            "output_tokens": "sum",
            "cost": lambda s: sum(s, Decimal(0)),
        }
    )
    out = out.sort_values(["day", "model"])[CSV_COLUMNS]
    out["cost"] = out["cost"].map(lambda d: format(d, "f"))
    out.to_csv(path, index=False)


def tokens_chart(frame: pd.DataFrame, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    if frame.empty:
        ax.text(0.5, 0.5, "no usage", ha="center", va="center", transform=ax.transAxes)
    else:
        per_day = frame.assign(tokens=frame["input_tokens"] + frame["output_tokens"]).pivot_table(
            index="day", columns="model", values="tokens", aggfunc="sum", fill_value=0
        )
        per_day.plot(kind="bar", stacked=True, ax=ax, width=0.85)
        ax.set_xticklabels([d.strftime("%d") for d in per_day.index], rotation=0)
        ax.legend(title="model", fontsize="small")
    ax.set_title(title)
    ax.set_xlabel("day")
    ax.set_ylabel("tokens (input + output)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def spend_chart(
    frame: pd.DataFrame, previous: pd.DataFrame, currency: str, title: str, path: Path
) -> None:
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    plotted = False
    for label, data, style in (("this month", frame, "o-"), ("previous month", previous, "s--")):
        if data.empty:
            continue
        daily = data.groupby("day")["cost"].agg(lambda s: float(sum(s, Decimal(0))))
        cumulative = daily.cumsum()
        # markers: a month with one day of usage is one point, not an invisible line
        ax.plot([d.day for d in cumulative.index], cumulative.to_numpy(), style, label=label)
        plotted = True
    ax.set_title(title)
    ax.set_xlabel("day of month")
    ax.set_ylabel(f"cumulative spend ({currency})")
    if plotted:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no spend", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_page(
    directory: Path, heading: str, frame: pd.DataFrame, currency: str, links: list[tuple[str, str]]
) -> None:
    total = sum(frame["cost"], Decimal(0)) if not frame.empty else Decimal(0)
    tokens = int((frame["input_tokens"] + frame["output_tokens"]).sum()) if not frame.empty else 0
    items = "".join(
        f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>' for text, href in links
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>body{{font-family:sans-serif;margin:2em}}
img{{max-width:100%;display:block;margin:1em 0}}</style>
</head><body>
<h1>{html.escape(heading)}</h1>
<p>Total spend <strong>{format(total, "f")} {html.escape(currency)}</strong>,
{tokens:,} tokens. <a href="daily.csv">daily.csv</a></p>
<img src="tokens.png" alt="daily tokens by model">
<img src="spend.png" alt="cumulative spend against the previous month">
{f"<ul>{items}</ul>" if items else ""}
</body></html>
"""
    (directory / "index.html").write_text(page, encoding="utf-8")


def write_scope(
    directory: Path,
    heading: str,
    *,
    frame: pd.DataFrame,
    previous: pd.DataFrame,
    currency: str,
    links: list[tuple[str, str]] | None = None,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_csv(frame, directory / "daily.csv")
    tokens_chart(frame, f"{heading}: daily tokens by model", directory / "tokens.png")
    spend_chart(frame, previous, currency, f"{heading}: cumulative spend", directory / "spend.png")
    write_page(directory, heading, frame, currency, links or [])

"""`make report MONTH=YYYY-MM`: a month of the landing page as one self-contained HTML file.

Tables only, no scripts or outside references, so a mail client shows it as it is. It reads the
same named queries as the dashboard: per team, the month's invoice total (its status: final or
the preview), spend by product, the top movers into the month, reconciliation and payments.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

import pandas as pd

from pipeline.alerts.rules import money
from pipeline.dashboard import display
from pipeline.dashboard.queries import Reader, WarehouseUnavailable, params
from pipeline.settings import SettingsError, load_settings, validate_period

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.figure { font-size: 1.6em; font-weight: bold; }
.sample { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.5em 1em; }
"""
SAMPLE_NOTE = (
    '<p class="sample"><strong>Sample data (built-in sandbox)</strong>: generated accounts, not '
    "a real bill.</p>"
)


def table(frame: pd.DataFrame, drop: tuple[str, ...] = ()) -> str:
    """The rows as the dashboard's tables show them: human column names, amounts `1,234.56`."""
    if frame.empty:
        return "<p>None.</p>"
    return display.shown(frame, drop).to_html(index=False, border=0, na_rep="", escape=True)


def render(reader: Reader, month: str, sample_data: bool = False) -> str:
    """The month's report as HTML text; sample data (`sample_data`, or the file's own mark) is
    said under the title, so a forwarded report never passes for a real bill."""
    teams = reader.read("teams") if "month_forecast" in reader.views() else pd.DataFrame()
    if teams.empty:
        raise WarehouseUnavailable(f"no loaded data in {reader.path}")
    uuids = list(teams.team_uuid)
    p = params(uuids, month, month)
    invoices = reader.read("reconciliation", **p)
    sample = sample_data or reader.sample_data()
    title = f"DigitalOcean costs, {html.escape(month)}{' (sample data)' if sample else ''}"
    parts = [f"<h1>{title}</h1>", *([SAMPLE_NOTE] if sample else [])]
    for uuid, name in zip(teams.team_uuid, teams.team_name, strict=True):
        rows = reader.read("reconciliation", **params([uuid], month, month))
        total = sum(rows.invoice_amount) if len(rows) else None
        status = ", ".join(sorted(set(rows.status))) or "not loaded"
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(
            f"<p>Invoice total ({html.escape(status)}): "
            f'<span class="figure">{money(total)}</span></p>'
        )
        product = reader.read("monthly_by_product", **params([uuid], month, month))
        parts.append(table(product, drop=("team_name",)))
    sections = {
        "Top movers": reader.read("top_movers", **p),
        "Credits, taxes and reconciliation": invoices,
        "Payments against invoices": reader.read("payments", **p),
    }
    for title, frame in sections.items():
        parts += [f"<h2>{title}</h2>", table(frame)]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>DigitalOcean costs {month}'
        f"</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("month", help="YYYY-MM")
    parser.add_argument("--out", type=Path, help="default: data/report-YYYY-MM.html")
    args = parser.parse_args(argv)
    try:
        month = validate_period(args.month, "MONTH")
        settings = load_settings()
        text = render(Reader(settings.warehouse), month, settings.sample_data)
    except (SettingsError, WarehouseUnavailable) as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("data") / f"report-{month}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

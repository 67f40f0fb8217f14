"""How the page and the report show values: human column names, money as text, a colour a series.

The queries keep the views' column names and exact Decimals, so an analyst's SQL and the page
agree; only here, at the last step, does a column get a name a reader knows and an amount its
two decimals and thousands separators. The chart colours live here too: every series of a chart
gets its own colour, and past the palette's size the smallest series share one "Other" entry.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import pandas as pd

from pipeline.alerts.rules import CENT

# Vega's categorical schemes, spelled out so a chart's spec names each series' colour: ten
# colours far apart while they suffice, else twenty (hue pairs, dark then light).
TABLEAU10 = (
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b",
    "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
)  # fmt: skip
TABLEAU20 = (
    "#4c78a8", "#9ecae9", "#f58518", "#ffbf79", "#54a24b", "#88d27a", "#b79a20", "#f2cf5b",
    "#439894", "#83bcb6", "#e45756", "#ff9d98", "#79706e", "#bab0ac", "#d67195", "#fcbfd2",
    "#b279a2", "#d6a5c9", "#9e765f", "#d8b5a5",
)  # fmt: skip
MAX_SERIES = len(TABLEAU20)

# What a reader calls each column the tables show; an amount's header says its currency.
COLUMN_NAMES: Mapping[str, str] = {
    "invoice_period": "Month",
    "usage_date": "Date",
    "team_name": "Team",
    "product": "Product",
    "project_name": "Project",
    "region": "Region",
    "tag_value": "Tag value",
    "status": "Status",
    "resource_kind": "Resource kind",
    "resource_id": "Resource ID",
    "resource_name": "Resource",
    "tags": "Tags",
    "resource_tags": "Tags",
    "idle_since": "Idle since",
    "kind": "Kind",
    "grain": "Grain",
    "subject": "SKU or service",
    "why": "Why",
    "reconciliation": "Reconciliation",
    "reconciled_by": "Reconciled by",
    "invoices": "Invoices",
    "invoices_with_payments": "Invoices with payments",
    "amount": "Amount (USD)",
    "previous_amount": "Month before (USD)",
    "change": "Change (USD)",
    "change_pct": "Change (%)",
    "allocated_amount": "Allocated (USD)",
    "tagged_amount": "Tagged (USD)",
    "share": "Allocated share",
    "cost": "Cost (USD)",
    "baseline": "Usual cost (USD)",
    "excess": "Above usual (USD)",
    "invoice_amount": "Invoice (USD)",
    "items_sum": "Items sum (USD)",
    "taxes": "Taxes (USD)",
    "credits_and_adjustments": "Credits and adjustments (USD)",
    "invoiced": "Invoiced (USD)",
    "paid": "Paid (USD)",
    "outstanding": "Outstanding (USD)",
    "cost_last_month": "Last month (USD)",
    "month_to_date": "Month to date (USD)",
}
MONEY_COLUMNS = frozenset(name for name, title in COLUMN_NAMES.items() if title.endswith("(USD)"))
PERCENT_COLUMNS = frozenset({"change_pct"})
SHARE_COLUMNS = frozenset({"share"})


NOT_AVAILABLE = "n/a"  # a figure with nothing to show: no previous month, no spend to share


def money_text(value: Decimal | None) -> str:
    """An amount in USD as a table shows it: two decimals, thousands separators, no float."""
    if value is None:
        return NOT_AVAILABLE
    return f"{Decimal(value).quantize(CENT):,}"


def percent_text(value: Decimal | None) -> str:
    """A percentage already in percent (change_pct), to one decimal."""
    return NOT_AVAILABLE if value is None else f"{Decimal(value):,.1f}"


def share_percent(value: Decimal | None) -> str:
    """A share between 0 and 1 (allocation_coverage.share) as percent, as the metrics show it."""
    return NOT_AVAILABLE if value is None else f"{100 * Decimal(value):.1f} %"


def tags_text(value: str | None) -> str | None:
    """A resource's tags (a JSON object) as `key=value` pairs, the way DigitalOcean writes them."""
    if not value:
        return value
    return ", ".join(f"{key}={tag}" for key, tag in json.loads(value).items())


def exact_text(value: Any) -> Any:
    """A Decimal as its exact text; any other value as it is."""
    return str(value) if isinstance(value, Decimal) else value


FORMATS = {
    **dict.fromkeys(MONEY_COLUMNS, money_text),
    **dict.fromkeys(PERCENT_COLUMNS, percent_text),
    **dict.fromkeys(SHARE_COLUMNS, share_percent),
    "tags": tags_text,
}


def shown(frame: pd.DataFrame, drop: Iterable[str] = ()) -> pd.DataFrame:
    """A query's rows as a table shows them: formatted values under human names.

    Amounts become text only here, from the exact Decimals; a column without a human name keeps
    its own, and its Decimals their exact text (pandas would pad them like floats: 22.790)."""
    out = frame.drop(columns=list(drop))
    for column in out.columns:
        fmt = FORMATS.get(column, exact_text)
        out[column] = pd.Series([fmt(v) for v in out[column]], index=out.index, dtype=object)
    return out.rename(columns=dict(COLUMN_NAMES))


def series_order(frame: pd.DataFrame, color: str, amount: str = "amount") -> list[Hashable]:
    """The series of `color`, the largest absolute total first (a credit counts by its size)."""
    totals: dict[Hashable, Decimal] = {}
    for name, value in zip(frame[color], frame[amount], strict=True):
        totals[name] = totals.get(name, Decimal(0)) + Decimal(value or 0)
    return sorted(totals, key=lambda name: (-abs(totals[name]), str(name)))


def other_label(count: int) -> str:
    """The legend entry the smallest series share when there are more than colours."""
    return f"Other ({count} smaller)"


def grouped(
    frame: pd.DataFrame, color: str, limit: int = MAX_SERIES
) -> tuple[pd.DataFrame, list[Hashable]]:
    """The rows with at most `limit` series, largest first, and that order (the colour domain).

    Past `limit`, the smallest series are relabelled as one "Other" entry, so no two series
    share a colour and the legend stays readable."""
    order = series_order(frame, color)
    if len(order) <= limit:
        return frame, order
    kept, rest = order[: limit - 1], order[limit - 1 :]
    other = other_label(len(rest))
    keep = set(kept)
    relabelled = frame.assign(**{color: [v if v in keep else other for v in frame[color]]})
    return relabelled, [*kept, other]


def palette(count: int) -> list[str]:
    """`count` distinct colours (at most MAX_SERIES: `grouped` keeps a chart within it)."""
    if count > MAX_SERIES:
        raise ValueError(f"{count} series, more than the {MAX_SERIES} colours; group them first")
    return list(TABLEAU10 if count <= len(TABLEAU10) else TABLEAU20)[:count]


def colour_scale(order: list[Hashable], present: Iterable[Hashable]) -> tuple[list, list[str]]:
    """The domain and colours of one chart of several: each series keeps the colour it has in
    `order` (all the charts' series, as `grouped` returns them), so a product is one colour
    in every team's chart; the domain holds only the series `present` in this chart."""
    colours = dict(zip(order, palette(len(order)), strict=True))
    shown = set(present)
    domain = [name for name in order if name in shown]
    return domain, [colours[name] for name in domain]


def legend_layout(labels: Iterable[Any], width: int) -> tuple[int, int]:
    """Columns and height in pixels for a legend under a chart `width` pixels wide, so every
    label shows whole (about 6 pixels a character at Streamlit's legend font, plus the swatch)."""
    names = [str(label) for label in labels]
    if not names:
        return 1, 0
    column = 6 * max(len(name) for name in names) + 36
    columns = max(1, min(len(names), width // column))
    rows = -(-len(names) // columns)
    return columns, 20 * rows + 30

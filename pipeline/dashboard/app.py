"""The cost dashboard: `make dashboard` serves this Streamlit script.

It reads the published warehouse (`Settings.warehouse`: WAREHOUSE_PATH with a token, the
sandbox's own file without one) through the named queries of `queries.py`
only, one read-only open per query, so a load is never blocked and the page and an analyst's
SQL never disagree. Results are cached per file version: a load that publishes shows on the
next interaction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from pipeline.alerts.rules import DAILY_COSTS_ASSET, money
from pipeline.dashboard import display
from pipeline.dashboard.landing import forecast_basis, share_text, team_figures, thresholds_of
from pipeline.dashboard.queries import ALLOCATION_VIEWS, Reader, WarehouseUnavailable, params
from pipeline.settings import SettingsError, load_settings

ALL_PROJECTS = "(all projects)"
# About how many pixels a legend under a chart has in a 1440-pixel window, the page's width or
# a half column: the script cannot see the window, so the legend's columns are sized for this.
WIDE, HALF = 860, 420
PLOT_HEIGHT = 260  # the bars' height; a chart's legend adds to it
ANY_VALUE = "(any value)"
HOW_TO_LOAD = """
**No loaded data yet** in `{path}`.

Load it, then reload this page:

```bash
make run                               # every month (the built-in sandbox without a token)
make backfill FROM=2024-01 TO=2024-12  # or a range of months
```

Set `DIGITALOCEAN_TOKEN` (or `DIGITALOCEAN_TOKENS` for several teams) in `.env` to read your own
bills; `make doctor` checks the set-up. The dashboard reads the published file `WAREHOUSE_PATH`
(without a token, the sandbox's own file, `SANDBOX_WAREHOUSE_PATH`).
"""
SAMPLE_BANNER = (
    "**Sample data (built-in sandbox)**: generated accounts, not your bill. Set "
    "`DIGITALOCEAN_TOKEN` (or `DIGITALOCEAN_TOKENS`) and `make run` to load your own; they go "
    "to `WAREHOUSE_PATH`, never beside these."
)


@st.cache_data(show_spinner=False, max_entries=256)
def _cached(path: str, version: int, name: str, args: tuple) -> pd.DataFrame:
    """One named query's rows, per file version (a new publication is a new version)."""
    return Reader(Path(path)).read(name, **dict(args))


def read(reader: Reader, name: str, **kw: Any) -> pd.DataFrame:
    args = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kw.items()))
    frame = _cached(str(reader.path), reader.version(), name, args)
    return frame.copy()


def chartable(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Decimal amounts as floats, for drawing only (tables and figures keep the Decimals)."""
    return frame.assign(**{c: frame[c].astype(float) for c in columns})


def stacked(
    frame: pd.DataFrame, x: str, x_type: str, color: str, title: str, *, width: int = WIDE
) -> None:
    """A stacked bar chart per team, as wide as its column (`width`: about how many pixels).

    Each series has its own colour, the same in every team's chart, the largest first in the
    stack and the legend; the legend sits under the plot, in as many columns as its longest name
    allows, so every name shows whole."""
    names = display.COLUMN_NAMES
    x_title, color_title = names.get(x, x), names.get(color, color)
    frame, order = display.grouped(frame, color)
    for team, rows in frame.groupby("team_name", sort=True):
        domain, colours = display.colour_scale(order, rows[color])
        columns, legend_height = display.legend_layout(domain, width)
        x_tooltip = alt.Tooltip(
            f"{x}:{x_type}", title=x_title, format="%Y-%m-%d" if x_type == "T" else alt.Undefined
        )
        chart = (
            alt.Chart(chartable(rows, "amount"), title=f"{team} {title}".strip())
            .mark_bar()
            .encode(
                x=alt.X(f"{x}:{x_type}", title=None, axis=alt.Axis(labelAngle=0)),
                y=alt.Y("sum(amount):Q", title="USD"),
                color=alt.Color(
                    f"{color}:N",
                    title=color_title,
                    sort=domain,
                    scale=alt.Scale(domain=domain, range=colours),
                    legend=alt.Legend(orient="bottom", columns=columns, labelLimit=0, titleLimit=0),
                ),
                tooltip=[
                    x_tooltip,
                    alt.Tooltip(f"{color}:N", title=color_title),
                    alt.Tooltip("sum(amount):Q", format=",.2f", title="USD"),
                ],
            )
            .properties(height=PLOT_HEIGHT + legend_height)
        )
        st.altair_chart(chart, width="stretch")


def table(frame: pd.DataFrame, drop: tuple[str, ...] = (), **kw: Any) -> None:
    """A query's rows under human column names, amounts as text with two decimals."""
    st.dataframe(display.shown(frame, drop), hide_index=True, width="stretch", **kw)


def landing(reader: Reader, teams: list[tuple[str, str]], settings) -> None:
    st.header("Where each team stands")
    for f in team_figures(reader, teams, thresholds_of(settings)):
        st.subheader(f.team_name)
        c1, c2, c3, c4 = st.columns(4)
        c1.metric(
            f"{f.team_name} · {f.closed_period or 'no'} invoice",
            money(f.closed_total),
            help="The last closed month's invoice total",
        )
        c2.metric(
            f"{f.team_name} · {f.open_period or 'open month'} to date",
            money(f.month_to_date),
            help="The open month so far, as the preview invoice says",
        )
        over = f.over_budget
        side = "over" if over is not None and over > 0 else "under"
        c3.metric(
            f"{f.team_name} · forecast",
            money(f.forecast),
            delta=None if over is None else f"{money(abs(over))} {side} budget",
            delta_color="inverse",
            help="Month end: to date plus the last 7 days' daily rate (month_forecast)",
        )
        c3.caption(f"{f.team_name} · {forecast_basis(f.days_loaded, f.days_in_month)}")
        c4.metric(
            f"{f.team_name} · budget",
            money(f.budget) if f.budget is not None else "none set",
            help="BUDGETS (by team name or uuid), else BUDGET_USD",
        )


def allocation(reader: Reader, p: dict, views: set[str]) -> None:
    st.header("Spend by tag, and allocation coverage")
    missing = [v for v in ALLOCATION_VIEWS if v not in views]
    if missing:
        st.info(
            "This warehouse has no allocation views yet ("
            + ", ".join(missing)
            + "): a load with this version of the pipeline adds them."
        )
        return
    if p["tag_key"] is None:
        st.info("No tags loaded for these teams.")
    else:
        share = read(reader, "untagged_share", **p)
        untagged, total = share.at[0, "untagged"], share.at[0, "total"]
        label = f"untagged share of spend for tag key “{p['tag_key']}”"
        st.metric(label, share_text(untagged, total))
        by_tag = read(reader, "spend_by_tag", **p)
        if len(by_tag):
            stacked(by_tag, "invoice_period", "O", "tag_value", f"Spend by {p['tag_key']}")
    coverage = read(reader, "allocation_coverage", **p)
    st.subheader("Allocation coverage")
    st.caption("Allocated: spend tied to a resource or project; allocated share: of the amount.")
    table(coverage)
    st.subheader("Resources behind the spend")
    table(read(reader, "resources", **p))


def anomalies(reader: Reader, p: dict, ui_url: str) -> None:
    st.header("Anomalies")
    found = read(reader, "anomalies", **p)
    if found.empty:
        st.caption("No cost anomaly in these months (spikes and new SKUs, default thresholds).")
        return
    found["In Dagster"] = [
        f"{ui_url}/assets/{DAILY_COSTS_ASSET}?view=checks" for _ in range(len(found))
    ]
    table(
        found,
        drop=("team_uuid", "alert_key"),
        column_config={"In Dagster": st.column_config.LinkColumn(display_text="checks")},
    )


def what_to_cut(reader: Reader, p: dict, views: set[str], max_age_days: int) -> None:
    st.header("What to cut")
    if "idle_resources" not in views:
        st.info("This warehouse has no idle_resources view yet: a load with this version adds it.")
        return
    st.caption(
        "Idle resources in each team's latest inventory: volumes attached to nothing, load "
        "balancers with no targets, powered-off droplets, unassigned reserved IPs and snapshots "
        f"older than {max_age_days} days (SNAPSHOT_MAX_AGE_DAYS). Their cost is what the latest "
        "closed month's invoice and the open month's preview charged them; the team, project and "
        "tag filters apply, the months filter does not."
    )
    totals = read(reader, "idle_total", max_age_days=max_age_days, **p)
    bills = read(reader, "last_closed_month", **p)
    billed = dict(zip(bills.team_uuid, bills.invoice_total, strict=True))
    for row in totals.itertuples():
        c1, c2, c3 = st.columns(3)
        c1.metric(
            f"{row.team_name} · idle in {row.invoice_period or 'no closed month'}",
            money(row.idle_amount),
            help=f"{row.resources} idle resource(s)",
        )
        c2.metric(
            f"{row.team_name} · share of that bill",
            share_text(row.idle_amount, billed.get(row.team_uuid)),
        )
        c3.metric(f"{row.team_name} · idle so far this month", money(row.idle_month_to_date))
    found = read(reader, "idle_resources", max_age_days=max_age_days, **p)
    if found.empty:
        st.caption("No idle resource for these filters.")
        return
    table(found, drop=("team_uuid",))


def main() -> None:
    st.set_page_config(page_title="DigitalOcean costs", layout="wide")
    st.title("DigitalOcean costs")
    try:
        settings = load_settings()
    except SettingsError as exc:
        st.error(f"The settings are not valid: {exc}")
        st.stop()
    reader = Reader(settings.warehouse)
    if settings.sample_data or reader.sample_data():
        st.warning(SAMPLE_BANNER, icon="⚠️")
    try:
        views = reader.views()
        teams_frame = read(reader, "teams") if "month_forecast" in views else pd.DataFrame()
    except WarehouseUnavailable:
        views, teams_frame = set(), pd.DataFrame()
    if teams_frame.empty:
        st.markdown(HOW_TO_LOAD.format(path=settings.warehouse))
        st.stop()
    names = dict(zip(teams_frame.team_uuid, teams_frame.team_name, strict=True))
    months = list(read(reader, "months").invoice_period)

    with st.sidebar:
        st.header("Filters")
        chosen = st.multiselect("Teams", list(names), default=list(names), format_func=names.get)
        if not chosen:
            st.warning("Choose at least one team.")
            st.stop()
        first, last = (
            (months[0], months[-1])
            if len(months) < 2
            else st.select_slider(
                "Months", options=months, value=(months[max(0, len(months) - 12)], months[-1])
            )
        )
        projects = list(read(reader, "projects", teams=chosen).project_name)
        project = st.selectbox("Project", [ALL_PROJECTS, *projects])
        tag_key = tag_value = None
        if all(v in views for v in ALLOCATION_VIEWS):
            # The key covering the most spend first: the default shows the most of the bill.
            keys = read(reader, "tag_keys", teams=chosen, first=first, last=last)
            tagged = dict(zip(keys.tag_key, keys.tagged_amount, strict=True))
            tag_key = (
                st.selectbox(
                    "Tag key",
                    list(tagged),
                    format_func=lambda key: f"{key} ({money(tagged[key])} tagged)",
                    help="Ordered by the spend each key covers in these months, the most first",
                )
                if tagged
                else None
            )
            if tag_key is not None:
                values = list(read(reader, "tag_values", teams=chosen, tag_key=tag_key).tag_value)
                picked = st.selectbox("Tag value", [ANY_VALUE, *values])
                tag_value = None if picked == ANY_VALUE else picked
        days = st.radio("Daily window", [30, 90], horizontal=True, format_func="{} days".format)

    p = dict(
        params(
            chosen,
            first,
            last,
            project=None if project == ALL_PROJECTS else project,
            tag_key=tag_key,
            tag_value=tag_value,
            days=days,
        )
    )
    landing(reader, [(uuid, names[uuid]) for uuid in chosen], settings)

    st.header("Monthly spend by product")
    st.caption(
        "Invoice lines (FOCUS BilledCost), narrowed by the project filter; the open month is"
        " partial."
    )
    monthly = read(reader, "monthly_by_product", **p)
    if len(monthly):
        stacked(monthly, "invoice_period", "O", "product", "")
    else:
        st.caption("No invoice lines in these months.")

    st.header(f"Daily cost, last {days} loaded days")
    st.caption("Billing Insights' nightly estimates: a month's sum may differ from its invoice.")
    left, right = st.columns(2)
    with left:
        daily = read(reader, "daily_by_sku", **p)
        if len(daily):
            stacked(daily, "usage_date", "T", "product", "by product (SKU)", width=HALF)
    with right:
        region = read(reader, "daily_by_region", **p)
        if len(region):
            stacked(region, "usage_date", "T", "region", "by region", width=HALF)
    if daily.empty and region.empty:
        st.caption("No Billing Insights loaded (they begin 2025-12-01).")

    st.header("Top movers")
    st.caption("The newest whole month in the range against the month before, by product.")
    table(read(reader, "top_movers", **p))

    allocation(reader, p, views)
    what_to_cut(reader, p, views, settings.alerts.snapshot_max_age_days)
    anomalies(reader, p, settings.alerts.ui_url)

    st.header("Credits, taxes and reconciliation")
    table(read(reader, "reconciliation", **p))
    st.header("Payments against invoices")
    table(read(reader, "payments", **p))


main()

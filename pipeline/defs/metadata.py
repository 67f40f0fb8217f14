"""What a materialization shows in the UI, built the same way for every source and table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd

from pipeline.engine.batches import TeamLoad
from pipeline.sources.base import Table
from pipeline.teams import Outcome, Team

BAR_WIDTH = 24
SHOWN_MONTHS = 24


def money(value: object) -> str:
    return f"{value:,.2f} USD" if value is not None and pd.notna(value) else "0.00 USD"


def bars(amounts: pd.Series, width: int = BAR_WIDTH) -> list[str]:
    """A bar per month, scaled to the largest: a plot the UI can show in markdown."""
    values = [Decimal(0) if pd.isna(v) else Decimal(str(v)) for v in amounts]
    top = max([v for v in values if v > 0], default=Decimal(0))
    return ["█" * int(width * v / top) if top and v > 0 else "" for v in values]


def fetch_metadata(loads: dict[Team, TeamLoad]) -> dict[str, Any]:
    """Pages landed, what they covered and what it took: in all, and per team."""
    batches = {team: load.batch for team, load in loads.items() if load.batch is not None}
    per_team = pd.DataFrame(
        [(team.name, team.uuid, b.targets, b.pages, b.requests) for team, b in batches.items()],
        columns=["team", "team_uuid", "targets", "pages", "requests"],
    )
    return {
        "dagster/row_count": int(per_team["pages"].sum()),
        "fetch_ids": ", ".join(b.fetch_id for b in batches.values()),
        "teams": len(batches),
        "targets": int(per_team["targets"].sum()),
        "pages": int(per_team["pages"].sum()),
        "requests": int(per_team["requests"].sum()),
        "retries": sum(load.retries for load in loads.values()),
        "rate_limited": sum(load.rate_limited for load in loads.values()),
        "by_team": dg.MetadataValue.md(per_team.to_markdown(index=False)),
    }


def swapped_teams(loads: dict[Team, TeamLoad]) -> list[Team]:
    """The teams whose rows the step swapped, in their order."""
    return [team for team, load in loads.items() if load.result is not None]


@dataclass(frozen=True)
class Counted:
    """One month's sums, cut from sums counted once for every month of a run (a group-by a
    month cost more than the rest of a month's figures): rows and amount per team, amount per
    the table's `spend_by`."""

    rows: pd.Series
    amounts: pd.Series | None
    spend: pd.Series | None


def counted_by_month(table: Table, frame: pd.DataFrame) -> dict[str, Counted]:
    """Each month's `Counted`, from one group-by a figure over every month's rows."""
    month = table.partition_column
    keys = [month, "team_uuid"]
    rows = _by_first_level(frame.groupby(keys).size())
    amounts = _by_first_level(frame.groupby(keys)["amount"].sum()) if "amount" in frame else {}
    spend = {}
    if table.spend_by:
        spend = _by_first_level(
            frame.groupby([month, table.spend_by], dropna=False)["amount"].sum()
        )
    return {
        period: Counted(part, amounts.get(period), spend.get(period))
        for period, part in rows.items()
    }


def _by_first_level(sums: pd.Series) -> dict[str, pd.Series]:
    return {key: part.droplevel(0) for key, part in sums.groupby(level=0, sort=False)}


def by_team(frame: pd.DataFrame, teams: Sequence[Team], counted: Counted | None = None) -> str:
    """Rows (and amount) per team, every team listed (a team without rows as 0): the
    materialization's per-team counts, counted on the teams' rows in one frame (or `counted`
    already)."""
    uuids = pd.Index([team.uuid for team in teams])
    if counted is not None:
        counts = counted.rows.reindex(uuids, fill_value=0)
    elif len(frame):
        counts = frame.groupby("team_uuid").size().reindex(uuids, fill_value=0)
    else:
        counts = pd.Series(0, index=uuids)
    rows = pd.DataFrame(
        {
            "team": [team.name for team in teams],
            "team_uuid": uuids,
            "rows": counts.to_numpy(dtype=int),
        }
    )
    if "amount" in frame:
        if counted is not None and counted.amounts is not None:
            sums = counted.amounts
        else:
            sums = frame.groupby("team_uuid")["amount"].sum() if len(frame) else pd.Series()
        rows["amount"] = [money(sums.get(uuid, 0)) for uuid in uuids]
    else:
        rows["amount"] = ""
    return rows.to_markdown(index=False)


def _per_month(table: Table, frame: pd.DataFrame, periods: Sequence[str]) -> pd.DataFrame:
    month = table.partition_column
    grouped = frame.groupby(month).agg(rows=(month, "size"))
    if "amount" in frame:
        grouped = grouped.join(frame.groupby(month)["amount"].sum())
    else:
        grouped["amount"] = None
    grouped = grouped.reindex(periods).fillna({"rows": 0})
    return pd.DataFrame(
        {
            "month": grouped.index,
            table.noun or "rows": grouped["rows"].astype(int).to_numpy(),
            "amount": [money(v) for v in grouped["amount"]],
            "spend": bars(grouped["amount"]),
        }
    )


def _spend_by(
    table: Table, frame: pd.DataFrame, periods: Sequence[str], spend: pd.Series | None = None
) -> str:
    """Amount by the table's `spend_by` and month (the last six); `spend`: one month's, counted
    already."""
    if not len(frame):
        return "no rows"
    column = table.spend_by
    if spend is not None:
        by = spend.to_frame(periods[-1])
    else:
        by = (
            frame.groupby([column, table.partition_column], dropna=False)["amount"]
            .sum()
            .unstack(table.partition_column)
            .reindex(columns=periods[-6:])
        )
    by = by.loc[by.sum(axis=1).sort_values(ascending=False).index]
    return by.fillna(0).map(lambda v: f"{v:,.2f}").to_markdown()


def table_metadata(
    table: Table, frame: pd.DataFrame, teams: Sequence[Team], periods: Sequence[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """What the UI shows of a table's load: for the whole run (every month of it carries this),
    and for each month its own figures (row count, totals, rows per team, a sample, the
    breakdown the table declares), so a month's page describes that month, not the run.
    `frame`: every team's rows, in the teams' order (`StepOutcome.rows`)."""
    run: dict[str, Any] = {"run": _run_line(table, frame, periods)}
    if not is_snapshot([table]):  # a snapshot is of no run's months
        run["months"] = len(periods)
    run["teams"] = len(teams)
    if table.plot:
        run["run_by_month"] = dg.MetadataValue.md(
            _per_month(table, frame, periods).tail(SHOWN_MONTHS).to_markdown(index=False)
        )
    month = table.partition_column
    if month not in frame:  # a snapshot of now (the inventory): the run's figures are all
        return {**run, **_figures(table, frame, teams, periods)}, {}
    # The rows cut by month once, and their sums counted once for every month.
    rows = dict(tuple(frame.groupby(month, sort=False))) if len(frame) else {}
    counted = counted_by_month(table, frame) if len(frame) else {}
    months = {
        period: _figures(
            table, rows.get(period, frame.iloc[0:0]), teams, [period], counted.get(period)
        )
        for period in periods
    }
    return run, months


def is_snapshot(tables: Sequence[Table]) -> bool:
    """Tables of a snapshot of now (the inventory, kept as validity intervals), not of months."""
    return all(table.write == "intervals" for table in tables)


def span(tables: Sequence[Table], periods: Sequence[str]) -> str:
    """What a load covers, as the run log says it: `3 month(s) 2024-01…2024-03`, or for the
    inventory `the snapshot of 2026-12`: it is of no month but the one it is read in."""
    if is_snapshot(tables):
        return f"the snapshot of {periods[-1]}"
    return f"{len(periods)} month(s) {periods[0]}…{periods[-1]}"


def _run_line(table: Table, frame: pd.DataFrame, periods: Sequence[str]) -> str:
    """`2024-01…2024-06, 6 month(s): 1,594 items, 326,387.98 USD`; `the snapshot of 2026-12:
    42 droplets` for the inventory."""
    line = (
        span([table], periods)
        if is_snapshot([table])
        else f"{periods[0]}…{periods[-1]}, {len(periods)} month(s)"
    )
    line += f": {len(frame):,} "
    line += table.noun or "rows"
    if "amount" in frame:
        line += f", {money(frame['amount'].sum() if len(frame) else 0)}"
    return line


def _figures(
    table: Table,
    frame: pd.DataFrame,
    teams: Sequence[Team],
    periods: Sequence[str],
    counted: Counted | None = None,
) -> dict[str, Any]:
    """Row count, totals, rows per team, a sample and the declared breakdown of these rows
    (`counted`: their sums, when counted already)."""
    metadata: dict[str, Any] = {
        "dagster/row_count": len(frame),
        "by_team": dg.MetadataValue.md(by_team(frame, teams, counted)),
    }
    for column in ("amount", *table.totals):
        if column in frame:
            key = "total_amount" if column == "amount" else column
            metadata[key] = money(frame[column].sum() if len(frame) else 0)
    sample = frame.drop(columns=["loaded_at"], errors="ignore").head(10).astype(str)
    metadata["preview"] = dg.MetadataValue.md(sample.to_markdown(index=False))
    if table.spend_by:
        metadata[f"spend_by_{table.spend_by}"] = dg.MetadataValue.md(
            _spend_by(table, frame, periods, counted.spend if counted else None)
        )
    return metadata


def load_summary(
    team: Team, tables: Sequence[Table], frames: dict[str, pd.DataFrame], periods: list
) -> str:
    """The run log's line per team: `Example Co: loaded 3 month(s) 2024-01…2024-03: 3 invoices,
    90 items, 1.00 USD`."""
    counts = ", ".join(f"{len(frames[t.name])} {t.noun or t.name}" for t in tables)
    first = frames[tables[0].name]
    total = f", {money(first['amount'].sum() if len(first) else 0)}" if "amount" in first else ""
    return f"{team.name}: loaded {span(tables, periods)}: {counts}{total}"


def step_summary(
    tables: Sequence[Table], outcome: Outcome[TeamLoad], periods: list, swapped: bool
) -> str:
    """The step's one line for many teams: `loaded 998 of 1000 team(s), 1 month(s) 2026-06…
    2026-06: 998 invoices, 85,112 items, 1,234.00 USD; failed: team 'Acme' (uuid), …`."""
    loads = outcome.results
    total = len(loads) + len(outcome.failures)
    verb = "loaded" if swapped else "fetched"
    line = f"{verb} {len(loads)} of {total} team(s), {span(tables, periods)}"
    results = [load.result for load in loads.values() if load.result is not None]
    if results:
        counts = ", ".join(
            f"{sum(len(r.tables[t.name]) for r in results):,} {t.noun or t.name}" for t in tables
        )
        first = tables[0].name
        line += f": {counts}"
        if "amount" in results[0].tables[first]:
            amounts = [r.tables[first]["amount"].sum() for r in results if len(r.tables[first])]
            line += f", {money(sum(amounts, Decimal(0)))}"
    elif swapped is False:
        pages = sum(load.batch.pages for load in loads.values() if load.batch is not None)
        line += f": {pages:,} page(s) landed"
    if outcome.failures:
        line += "; failed: " + ", ".join(who for who, _ in outcome.failures)
    return line

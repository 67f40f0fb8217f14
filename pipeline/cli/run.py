"""`make run` and `make backfill`: load every month of every source (from the start period
through the open month), or the months FROM…TO, as one run.

The run is recorded in the Dagster instance under `DAGSTER_HOME` (the Makefile sets it to the
repository root), so `make dev` shows what it loaded. The log shows the pipeline's own lines, not
Dagster's event stream; `VERBOSE=1` (or `-v`) shows everything.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from pipeline.cli.supervise import InstanceWatch, Supervisor, database_errors, unreachable_at_start
from pipeline.dagster_storage import HOST_TAG
from pipeline.defs.logs import verbose as verbose_requested
from pipeline.settings import SAMPLE_DATA, SettingsError, load_settings
from pipeline.warehouse.connection import WarehouseMissingError
from pipeline.warehouse.publish import PublishError, unpublished_writes, working_file
from pipeline.warehouse.sample_data import mix_message, recorded_sample_data
from pipeline.warehouse.store import Warehouse

CAUSE_LINES = 6  # of an error's message, at most
MAX_LINE = 400
SUMMARY = """
    WITH months AS (SELECT unnest(CAST($periods AS VARCHAR[])) AS month),
    inv AS (
        SELECT invoice_period AS month, count(*) AS invoices, sum(items_total) AS items,
               sum(amount) AS invoiced
        FROM invoices GROUP BY ALL
    ),
    daily AS (SELECT usage_month AS month, count(*) AS points FROM daily_costs GROUP BY ALL),
    history AS (SELECT entry_month AS month, count(*) AS entries FROM billing_history GROUP BY ALL)
    SELECT left(m.month, 4) AS year,
           count(*) AS months,
           CAST(coalesce(sum(inv.invoices), 0) AS BIGINT) AS invoices,
           CAST(coalesce(sum(inv.items), 0) AS BIGINT) AS items,
           coalesce(sum(inv.invoiced), 0) AS invoiced_usd,
           CAST(coalesce(sum(daily.points), 0) AS BIGINT) AS daily_points,
           CAST(coalesce(sum(history.entries), 0) AS BIGINT) AS history_entries
    FROM months AS m
    LEFT JOIN inv USING (month) LEFT JOIN daily USING (month) LEFT JOIN history USING (month)
    GROUP BY ALL ORDER BY year
"""
BY_TEAM = """
    SELECT coalesce(t.team_name, '(before teams)') AS team, i.team_uuid,
           count(DISTINCT i.invoice_period) AS months, count(*) AS invoices,
           CAST(sum(i.items_total) AS BIGINT) AS items, sum(i.amount) AS invoiced_usd
    FROM invoices AS i LEFT JOIN teams AS t USING (team_uuid)
    WHERE list_contains(CAST($periods AS VARCHAR[]), i.invoice_period)
    GROUP BY ALL ORDER BY team
"""
# The open month per team: its invoice preview and the month to date of its latest balance.
OPEN_MONTH = """
    WITH latest AS (
        SELECT team_uuid, arg_max(month_to_date_usage, generated_at) AS usage,
               max(generated_at) AS as_of
        FROM balance GROUP BY team_uuid
    ),
    preview AS (
        SELECT team_uuid, sum(amount) AS preview FROM invoices WHERE status = 'preview'
        GROUP BY team_uuid
    )
    SELECT coalesce(t.team_name, '(before teams)') AS team, l.usage, l.as_of,
           coalesce(p.preview, 0) AS preview
    FROM latest AS l
    LEFT JOIN preview AS p ON p.team_uuid IS NOT DISTINCT FROM l.team_uuid
    LEFT JOIN teams AS t ON t.team_uuid IS NOT DISTINCT FROM l.team_uuid
    ORDER BY team
"""
# Up to this many teams, the open month gets a line per team above the total.
TEAM_LINES = 10
IDLE_CHECK = "idle_resources"  # pipeline.defs.alert_checks.idle_checks: its own summary line


def instance() -> dg.DagsterInstance:
    """The instance `make dev` reads: DAGSTER_HOME's, else this folder's when it holds the
    project's dagster.yaml (read from there, the environment left as it is), else a throwaway
    one (said so)."""
    home = os.environ.get("DAGSTER_HOME")
    if home or Path("dagster.yaml").is_file():
        Path("data/dagster").mkdir(parents=True, exist_ok=True)
        return dg.DagsterInstance.from_config(home or str(Path.cwd()))
    print("DAGSTER_HOME is not set: this run is not recorded for the UI", file=sys.stderr)
    return dg.DagsterInstance.ephemeral()


def open_month_lines(month: str, teams: pd.DataFrame) -> list[str]:
    """Where the open month stands: one team's line; or, for a few teams, a line per team and
    their total; for many, the total alone. Each figure is one team's or the sum of all."""
    if teams.empty:
        return []

    def line(preview: Decimal, usage: Decimal, as_of: str) -> str:
        return (
            f"{preview} USD so far (invoice preview); month-to-date usage {usage} USD "
            f"(balance of {as_of})"
        )

    rows = list(teams.itertuples(index=False))
    if len(rows) == 1:
        (row,) = rows
        return [f"Open month {month}: {line(row.preview, row.usage, f'{row.as_of:%Y-%m-%d}')}"]
    dates = sorted({f"{row.as_of:%Y-%m-%d}" for row in rows})
    as_of = dates[0] if len(dates) == 1 else f"{dates[0]}…{dates[-1]}"
    preview = sum((row.preview for row in rows), Decimal(0))
    usage = sum((row.usage for row in rows), Decimal(0))
    total = f"all {len(rows)} teams: {line(preview, usage, as_of)}"
    if len(rows) > TEAM_LINES:
        return [f"Open month {month}, {total}"]
    width = max(len(row.team) for row in rows)
    lines = [f"Open month {month}:"]
    lines += [
        f"  {row.team:<{width}}  {line(row.preview, row.usage, f'{row.as_of:%Y-%m-%d}')}"
        for row in rows
    ]
    return [*lines, f"  {total}"]


def alerts_line(result: dg.ExecuteInProcessResult) -> str:
    """One line on the budget and anomaly checks: what they found, or that all is quiet."""
    from pipeline.defs.alert_checks import CHECKS as ALERT_CHECK_NAMES  # after the settings

    found = [
        f"{c.check_name} {'warns' if c.severity == dg.AssetCheckSeverity.WARN else 'failed'}"
        f" ({c.metadata['anomalies'].value if 'anomalies' in c.metadata else c.description})"
        for c in result.get_asset_check_evaluations()
        if c.check_name in ALERT_CHECK_NAMES and not c.passed
    ]
    if not found:
        return "Alerts: none (budget, cost spikes, new SKUs)"
    return "Alerts: " + "; ".join(found) + " — see the checks in `make dev`"


def idle_line(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line on the idle resources check, when it ran: how many idle resources cost at least
    IDLE_MIN_USD in the latest closed month, and how much together."""
    for c in result.get_asset_check_evaluations():
        if c.check_name != IDLE_CHECK:
            continue
        count, floor = c.metadata["idle_resources"].value, c.metadata["idle_min_usd"].value
        if not count:
            return [f"What to cut: no idle resource cost {floor} USD or more last month"]
        total = Decimal(c.metadata["idle_cost_last_month"].value)
        return [
            f"What to cut: {count} idle resource(s) cost {total:,} USD last month "
            f"({floor} USD or more each; the idle_resources view lists them)"
        ]
    return []


def check_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed or warning asset check other than the alerts, by name, with its finding in
    one line: a warning check (items that do not add up to the invoice) fails no run, so the
    summary is where it shows."""
    from pipeline.defs.alert_checks import CHECKS as ALERT_CHECK_NAMES  # after the settings

    lines = []
    for c in result.get_asset_check_evaluations():
        if c.passed or c.check_name in ALERT_CHECK_NAMES or c.check_name == IDLE_CHECK:
            continue
        verdict = "warns" if c.severity == dg.AssetCheckSeverity.WARN else "failed"
        finding = c.metadata.get("finding")
        text = finding.value if finding is not None else c.description or "see its metadata"
        lines.append(f"Check {c.asset_key.to_user_string()}:{c.check_name} {verdict}: {text}")
    return lines


def cause(error: Any) -> str:  # a step failure's SerializableErrorInfo
    """The error a person can act on: the innermost one, not Dagster's wrapper around it, in
    its first lines, without the traceback."""
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    text = error.message.strip()
    prefix = f"{error.cls_name}: "
    text = text.split(prefix, 1)[1] if prefix in text.splitlines()[0] else text
    lines = [line[:MAX_LINE] for line in text.splitlines()[:CAUSE_LINES]]
    return f"{error.cls_name}: " + "\n  ".join(lines)


def failure_report(result: dg.ExecuteInProcessResult, published: Path) -> list[str]:
    """Which steps failed and why (one line per distinct cause), which committed and whether
    that reached the analysts' file `published`, which did not run: a few lines instead of the
    tracebacks. "Published" is said only when the file is as new as the working file's last
    write (`unpublished_writes`), whatever the steps claimed."""
    causes: dict[str, list[str]] = {}
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            causes.setdefault(cause(event.step_failure_data.error), []).append(event.step_key)
    done = [event.step_key for event in result.all_events if event.is_step_success]
    skipped = [event.step_key for event in result.all_events if event.is_step_skipped]
    lines = [f"Failed: {', '.join(steps)}: {why}" for why, steps in causes.items()]
    lines = lines or ["The run failed."]
    missing = unpublished_writes(published)
    if done:
        where = "are loaded and published" if missing is None else "are loaded"
        lines.append(f"Committed: {', '.join(done)} (their months {where}).")
    if skipped:
        lines.append(f"Not run, waiting on a failed step: {', '.join(skipped)}.")
    if missing is not None:
        lines.append(
            f"Not published: {missing}; analysts still read the previous data. Fix the cause, "
            "then `make migrate` publishes what is loaded."
        )
    if any(not why.startswith(f"{PublishError.__name__}: ") for why in causes) or not causes:
        lines.append("The failed steps' months keep their previous rows.")
    lines.append(
        "Fix the cause and run again (`make doctor` checks the settings, each token and the API "
        "in seconds); VERBOSE=1 shows Dagster's full log."
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="Dagster's full log")
    parser.add_argument("--from", dest="first", help="first month, YYYY-MM (default: all)")
    parser.add_argument("--to", dest="last", help="last month, YYYY-MM (default: FROM)")
    args = parser.parse_args(argv)
    verbose = args.verbose or verbose_requested()
    try:
        settings = load_settings()
        # Imported after the settings' check, so a bad setting prints one line, not a traceback.
        from pipeline.defs.partitions import chosen_months, monthly_partitions

        partitions = monthly_partitions(settings.start_period).get_partition_keys()
        keys = chosen_months(partitions, args.first, args.last)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pipeline.defs.definitions import build_defs
    from pipeline.defs.schedules import INVOICES_JOB

    published = settings.warehouse
    # Sample and real teams never share a file: said in one line before anything is written.
    held = recorded_sample_data(published, working_file(published))
    if held is not None and held != settings.sample_data:
        place = f"{settings.warehouse_env} {str(published)!r}"
        print(f"error: {mix_message(held, place)} Nothing was written.", file=sys.stderr)
        return 1
    defs = build_defs(settings)
    teams = len(settings.tokens)
    source = (
        f"the DigitalOcean API ({teams} team{'s' if teams > 1 else ''})"
        if teams
        else f"the built-in SANDBOX API: {SAMPLE_DATA}, not your bill, into {published}"
    )
    print(f"Loading {keys[0]}…{keys[-1]} ({len(keys)} months) from {source}", flush=True)
    started = time.monotonic()
    job = defs.resolve_job_def(INVOICES_JOB)
    run_id = str(uuid.uuid4())
    with InstanceWatch(verbose) as watch:
        try:
            dagster = instance()
        except database_errors() as exc:
            print("\n".join(unreachable_at_start(watch, exc)), file=sys.stderr)
            return 1
        with dagster:
            result = Supervisor(dagster, run_id, watch).run(
                lambda: job.execute_in_process(
                    instance=dagster,
                    run_config={
                        "loggers": {
                            "console": {
                                "config": {
                                    "log_level": "DEBUG" if verbose else "INFO",
                                    "full": verbose,
                                }
                            }
                        }
                    },
                    tags={
                        "dagster/asset_partition_range_start": keys[0],
                        "dagster/asset_partition_range_end": keys[-1],
                        # So `make doctor` on another machine never calls this run stuck.
                        HOST_TAG: socket.gethostname(),
                    },
                    run_id=run_id,
                    raise_on_error=False,
                )
            )
    if not result.success:
        print("\n".join(failure_report(result, published)), file=sys.stderr)
        return 1
    missing = unpublished_writes(published)
    if missing is not None:  # every step publishes what it wrote; this is the proof
        print(f"error: {missing}; `make migrate` publishes it", file=sys.stderr)
        return 1
    # What analysts see: the published file, read-only (a reader never creates it).
    warehouse = Warehouse(published)
    try:
        summary = warehouse.query(SUMMARY, {"periods": keys})
        open_month = warehouse.query(OPEN_MONTH)
        by_team = warehouse.query(BY_TEAM, {"periods": keys})
    except WarehouseMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print()
    print(summary.to_string(index=False))
    if len(by_team) > 1:
        print()
        print(by_team.to_string(index=False))
    # Where the open month stands, when this run loaded it (a backfill of past months did not).
    open_lines = open_month_lines(keys[-1], open_month) if keys[-1] == partitions[-1] else []
    if open_lines:
        print()
        print("\n".join(open_lines))
    for line in [*check_lines(result), *idle_line(result)]:
        print(line)
    print(alerts_line(result))
    what = ""
    if settings.sample_data:
        what = f" ({SAMPLE_DATA}; set DIGITALOCEAN_TOKEN to load your bill)"
    print(
        f"Done in {time.monotonic() - started:.0f} s → published {warehouse.path}{what}; "
        "`make dev` shows the run, its months and checks."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

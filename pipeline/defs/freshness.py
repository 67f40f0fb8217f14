"""Freshness: the month that just closed is loaded by the 4th, the open month within 36 hours.

Watched on `invoices`, the table every month has (final once closed, the preview while open).
Dagster's own freshness builders read the newest partition, which with the open month in the
partitions is never the closed one; these two checks read the partitions they mean.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from pipeline.months import first_day, month_of, next_month, previous_month
from pipeline.sources import INVOICES

WATCHED = dg.AssetKey(INVOICES.tables[0].name)  # the table every month has
CLOSED_MONTH_DEADLINE_DAY = 4  # the closed_month_schedule loads it on the 4th at 06:00 UTC
OPEN_MONTH_MAX_AGE = timedelta(hours=36)  # the preview is refreshed every morning


def closed_month_due(now: datetime) -> str:
    """The closed month whose deadline has passed: last month from the 4th on, else the one
    before it."""
    month = previous_month(month_of(now))
    return month if now.day >= CLOSED_MONTH_DEADLINE_DAY else previous_month(month)


def last_loaded(instance: dg.DagsterInstance, month: str) -> datetime | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=WATCHED, asset_partitions=[month]), limit=1
    ).records
    return datetime.fromtimestamp(records[0].timestamp, UTC) if records else None


def closed_month_verdict(now: datetime, loaded: datetime | None, month: str) -> tuple[bool, str]:
    """Loaded after the month closed (so from its final invoice, not the preview)."""
    closed_at = first_day(next_month(month))
    if loaded is not None and loaded >= closed_at:
        return True, f"{month} was loaded after it closed, at {loaded:%Y-%m-%d %H:%M} UTC"
    when = (
        f"last loaded {loaded:%Y-%m-%d %H:%M} UTC, before it closed" if loaded else "never loaded"
    )
    deadline = closed_at.replace(day=CLOSED_MONTH_DEADLINE_DAY)
    return (
        False,
        f"{month} is due by {deadline:%Y-%m-%d} and is {when}: run `make backfill FROM={month}`",
    )


def open_month_verdict(now: datetime, loaded: datetime | None, month: str) -> tuple[bool, str]:
    if loaded is not None and now - loaded <= OPEN_MONTH_MAX_AGE:
        hours = (now - loaded).total_seconds() / 3600
        return True, f"{month} was refreshed {hours:.0f} h ago"
    when = f"last refreshed {loaded:%Y-%m-%d %H:%M} UTC" if loaded else "never loaded"
    return False, (
        f"{month} is {when}, more than {OPEN_MONTH_MAX_AGE.total_seconds() / 3600:.0f} h ago: "
        "is preview_refresh_schedule on and the daemon (`make dev`) running?"
    )


def _result(name: str, verdict: tuple[bool, str], month: str) -> dg.AssetCheckResult:
    passed, detail = verdict
    return dg.AssetCheckResult(
        asset_key=WATCHED,
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=detail,
        metadata={"month": month, "result": detail},
    )


def closed_month_loaded_by_the_4th(
    instance: dg.DagsterInstance, now: datetime
) -> dg.AssetCheckResult:
    month = closed_month_due(now)
    verdict = closed_month_verdict(now, last_loaded(instance, month), month)
    return _result("closed_month_loaded_by_the_4th", verdict, month)


def open_month_fresh(instance: dg.DagsterInstance, now: datetime) -> dg.AssetCheckResult:
    month = month_of(now)
    verdict = open_month_verdict(now, last_loaded(instance, month), month)
    return _result("open_month_fresh", verdict, month)


FRESHNESS = {
    closed_month_loaded_by_the_4th: "The month that just closed is loaded by the 4th.",
    open_month_fresh: "The open month was refreshed in the last 36 hours.",
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(check.__name__, asset=WATCHED, description=description)
        for check, description in FRESHNESS.items()
    ],
    can_subset=True,
)
def freshness_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
    """Both freshness checks in one step; a run may select either."""
    now = datetime.now(UTC)
    for check in FRESHNESS:
        if dg.AssetCheckKey(WATCHED, check.__name__) in context.selected_asset_check_keys:
            yield check(context.instance, now)


freshness_job = dg.define_asset_job(
    "freshness_job",
    selection=dg.AssetSelection.checks(freshness_checks),
    description="Whether the closed month and the open month are as fresh as promised.",
    tags={"dagster/max_runtime": str(10 * 60)},  # it reads the instance only: seconds
)
freshness_schedule = dg.ScheduleDefinition(
    name="freshness_schedule",
    job=freshness_job,
    cron_schedule="0 9 * * *",
    execution_timezone="UTC",
    description="Every morning, after the loads: is the closed month in, is the open month fresh?",
)

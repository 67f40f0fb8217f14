"""The one partitioning every asset shares: invoice periods, `YYYY-MM`, through the open month.

Built from the settings when the definitions load (`INVOICE_START_PERIOD`), never at import.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dagster as dg

from pipeline.months import MONTH_FORMAT, is_month
from pipeline.settings import SettingsError, load_settings, validate_period

# DuckDB has one writer: every step that opens the warehouse takes a slot in this pool, and
# dagster.yaml gives the pool one slot, so overlapping runs queue instead of failing on the lock.
WAREHOUSE_POOL = "warehouse"

# One run covers a whole backfill range, so the invoice list is paged once per backfill.
# Dagster marks the parameter beta; the policy is deliberate, so its warning is noise here.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
single_run = dg.BackfillPolicy.single_run()


def monthly_partitions(start_period: str | None = None) -> dg.MonthlyPartitionsDefinition:
    """Months from `start_period` (default: INVOICE_START_PERIOD) through the open month;
    end_offset=1 adds the open month, which loads from the invoice preview."""
    start = start_period or load_settings().start_period
    return dg.MonthlyPartitionsDefinition(
        start_date=start, fmt=MONTH_FORMAT, end_offset=1, timezone="UTC"
    )


def run_periods(context: dg.AssetExecutionContext) -> list[str]:
    """The months this run covers, validated before any request or SQL uses them."""
    return validate_periods(context.partition_keys)


def validate_periods(keys: Sequence[str]) -> list[str]:
    periods = [validate_period(key, "partition key") for key in keys]
    if not periods:
        raise SettingsError("no partition selected: pick one month or a range of months")
    return periods


def chosen_months(keys: Sequence[str], first: str | None, last: str | None) -> list[str]:
    """The months FROM…TO of the partitions `keys` (all of them without FROM), or a one-line
    SettingsError that shows the valid range: checked before anything starts or is made."""
    valid = f"months run from {keys[0]} to {keys[-1]} (INVOICE_START_PERIOD through the open month)"
    given = {"FROM": first, "TO": last}
    for name, value in given.items():
        if value is not None and not is_month(value):
            raise SettingsError(f"{name}={value!r} is not a month in YYYY-MM form; {valid}")
        if value is not None and not keys[0] <= value <= keys[-1]:
            raise SettingsError(f"{name}={value} is outside the partitions: {valid}")
    if first is None:
        if last is not None:
            raise SettingsError("TO without FROM: give FROM=YYYY-MM (and TO, default FROM)")
        return list(keys)
    last = last or first
    if first > last:
        raise SettingsError(f"FROM={first} is after TO={last}: give FROM first; {valid}")
    return [key for key in keys if first <= key <= last]

"""The one partitioning every asset shares: invoice periods, `YYYY-MM`, through the open month."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import dagster as dg

from pipeline.months import MONTH_FORMAT
from pipeline.settings import SettingsError, get_settings, validate_period

# INVOICE_START_PERIOD, validated with every other setting (environment, then .env).
START_PERIOD = get_settings().start_period

# end_offset=1 adds the current (open) month, which loads from the invoice preview.
monthly_partitions = dg.MonthlyPartitionsDefinition(
    start_date=START_PERIOD, fmt=MONTH_FORMAT, end_offset=1, timezone="UTC"
)

# DuckDB has one writer: every step that opens the warehouse takes a slot in this pool, and
# dagster.yaml gives the pool one slot, so overlapping runs queue instead of failing on the lock.
WAREHOUSE_POOL = "warehouse"

# One run covers a whole backfill range, so the invoice list is paged once per backfill.
# Dagster marks the parameter beta; the policy is deliberate, so its warning is noise here.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
single_run = dg.BackfillPolicy.single_run()


def run_periods(context: dg.AssetExecutionContext) -> list[str]:
    """The months this run covers, validated before any request or SQL uses them."""
    return validate_periods(context.partition_keys)


def validate_periods(keys: Sequence[str]) -> list[str]:
    periods = [validate_period(key, "partition key") for key in keys]
    if not periods:
        raise SettingsError("no partition selected: pick one month or a range of months")
    return periods

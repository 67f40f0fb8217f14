"""Everything Dagster loads, in one place."""

from __future__ import annotations

import dagster as dg

from pipeline.assets import ASSETS
from pipeline.checks import CHECKS
from pipeline.resources import resources_for
from pipeline.schedules import closed_month_schedule, invoices_job, preview_refresh_schedule
from pipeline.settings import get_settings

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[invoices_job],
    schedules=[closed_month_schedule, preview_refresh_schedule],
    # Validated settings (environment, then .env): the real API with a token, else the sandbox.
    resources=resources_for(get_settings()),
    # One process per run: steps share the DuckDB file serially, with no per-step startup cost.
    executor=dg.in_process_executor,
)

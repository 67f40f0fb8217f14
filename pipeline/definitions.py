"""Everything Dagster loads, in one place."""

from __future__ import annotations

import dagster as dg

from pipeline.assets import invoice_tables, raw_invoice_pages
from pipeline.checks import invoice_item_checks
from pipeline.resources import resources_from_env
from pipeline.schedules import closed_month_schedule, invoices_job, preview_refresh_schedule
from pipeline.summaries import invoice_summaries, invoices_reconcile

defs = dg.Definitions(
    assets=[raw_invoice_pages, invoice_tables, invoice_summaries],
    asset_checks=[*invoice_item_checks, invoices_reconcile],
    jobs=[invoices_job],
    schedules=[closed_month_schedule, preview_refresh_schedule],
    resources=resources_from_env(),
    # One process per run: steps share the DuckDB file serially, with no per-step startup cost.
    executor=dg.in_process_executor,
)

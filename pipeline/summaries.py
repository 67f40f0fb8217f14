"""Invoice summaries: taxes, credits and charges per invoice, for reconciliation.

A separate asset so the items path keeps its minimum number of requests; it reuses the invoice
list already landed by `raw_invoice_pages` instead of listing again.
"""

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from pipeline.api import InvoiceRef
from pipeline.assets import PARTITIONED, raw_invoice_pages
from pipeline.checks import check_query
from pipeline.normalize import normalize_summaries
from pipeline.partitions import WAREHOUSE_POOL, run_periods
from pipeline.resources import DigitalOceanResource, WarehouseResource


@dg.asset(
    **PARTITIONED,
    deps=[raw_invoice_pages],
    kinds={"duckdb", "pandas"},
    description="Per invoice: product charges, overages, taxes, credits and adjustments.",
)
def invoice_summaries(
    context: dg.AssetExecutionContext,
    digitalocean: DigitalOceanResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    periods = run_periods(context)
    store = warehouse.open()
    entries = store.raw_invoices(periods)
    refs = [
        InvoiceRef.from_entry(json.loads(entry), status)
        for entry, status in zip(entries["entry"], entries["status"], strict=True)
    ]
    with digitalocean.client(context.log) as api:
        pages = api.fetch_summaries(refs)
    fetched_at = pd.Timestamp.now(tz="UTC")
    raw = pd.DataFrame(
        {
            "fetched_at": fetched_at,
            "invoice_uuid": [r.invoice_uuid for r in refs],
            "invoice_period": [r.invoice_period for r in refs],
            "status": [r.status for r in refs],
            "body": [p.body for p in pages],
        }
    )
    summaries = normalize_summaries(raw, datetime.now(UTC))
    store.replace_periods(
        periods, {"invoice_summaries": summaries}, append={"raw.invoice_summaries": raw}
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(summaries),
            "taxes": f"{summaries['taxes'].sum()} USD",
            "credits_and_adjustments": f"{summaries['credits_and_adjustments'].sum()} USD",
        }
    )


RECONCILIATION_PROBLEMS = """
    SELECT invoice_uuid, invoice_period, status, invoice_amount, summary_amount, items_sum,
           taxes, credits_and_adjustments, items_difference, problem
    FROM invoice_reconciliation
    WHERE problem IS NOT NULL
      AND invoice_period IN (SELECT invoice_period FROM invoice_summaries)
    ORDER BY invoice_period
"""


@dg.asset_check(asset=invoice_summaries, pool=WAREHOUSE_POOL, additional_deps=["invoice_items"])
def invoices_reconcile(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Invoice amount = summary amount, and items add up to it (or do with taxes and credits)."""
    return check_query(warehouse, RECONCILIATION_PROBLEMS, "every invoice reconciles")

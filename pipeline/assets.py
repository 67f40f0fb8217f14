"""The assets: raw pages from the API, then the `invoices` and `invoice_items` tables.

Data flows one way: API → `raw` schema (as received) → pandas normalization → tables. Hard
invariants are enforced before COMMIT; the asset checks below re-verify the stored tables.
"""

from decimal import Decimal

import dagster as dg
import pandas as pd

from pipeline.api import IncompleteInvoiceError
from pipeline.load import fetch_raw, normalize_raw
from pipeline.partitions import WAREHOUSE_POOL, monthly_partitions, run_periods, single_run
from pipeline.resources import DigitalOceanResource, WarehouseResource

GROUP = "digitalocean_billing"
PARTITIONED = dict(
    partitions_def=monthly_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
    group_name=GROUP,
)


@dg.asset(
    **PARTITIONED,
    kinds={"duckdb"},
    description="Every invoice-list and invoice-item page as the API returned it (schema raw).",
)
def raw_invoice_pages(
    context: dg.AssetExecutionContext,
    digitalocean: DigitalOceanResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    periods = run_periods(context)
    with digitalocean.client(context.log) as api:
        raw = fetch_raw(api, periods, context.run_id)
        stats = api.stats
    warehouse.open().land_raw(raw)
    if raw.error:
        raise IncompleteInvoiceError(
            raw.error.replace("\n", "; ")
            + f". The pages are kept in raw (fetch {raw.fetch_id}); the "
            "tables still hold the previous rows of these months. Re-run the months."
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(raw.list_pages) + len(raw.item_pages),
            "fetch_id": raw.fetch_id,
            "invoices": len(raw.invoices),
            "item_pages": len(raw.item_pages),
            "items": int(raw.invoices["items_total"].sum()),
            "requests": stats.requests,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
        }
    )


def _bars(amounts: pd.Series, width: int = 24) -> list[str]:
    """A bar per month, scaled to the largest: the spend plot the UI can show in markdown."""
    values = [Decimal(0) if pd.isna(v) else Decimal(str(v)) for v in amounts]
    top = max([v for v in values if v > 0], default=Decimal(0))
    return ["█" * int(width * v / top) if top and v > 0 else "" for v in values]


def _money(value: object) -> str:
    return f"{value:,.2f} USD" if value is not None and pd.notna(value) else "0.00 USD"


@dg.multi_asset(
    **PARTITIONED,
    specs=[
        dg.AssetSpec(
            "invoices",
            deps=[raw_invoice_pages],
            kinds={"duckdb", "pandas"},
            description="One row per invoice (final) or per month-to-date preview.",
        ),
        dg.AssetSpec(
            "invoice_items",
            deps=[raw_invoice_pages],
            kinds={"duckdb", "pandas"},
            description="Every line item of every invoice, amounts exact, durations in hours.",
        ),
    ],
)
def invoice_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Normalize the latest raw fetch of each month and swap the months in one transaction."""
    periods = run_periods(context)
    store = warehouse.open()
    normalized = normalize_raw(store, periods)
    if normalized.unknown_fields:
        context.log.warning(
            f"item fields not in the API spec (kept in raw only): {normalized.unknown_fields}"
        )
    invoices, items = normalized.invoices, normalized.items
    store.replace_periods(periods, {"invoices": invoices, "invoice_items": items})

    by_month = (
        invoices.groupby("invoice_period")
        .agg(invoices=("invoice_uuid", "size"), amount=("amount", "sum"))
        .join(items.groupby("invoice_period").size().rename("items"))
        .reindex(periods)
        .fillna({"invoices": 0, "items": 0})
    )
    preview = pd.DataFrame(
        {
            "month": by_month.index,
            "invoices": by_month["invoices"].astype(int).to_numpy(),
            "items": by_month["items"].astype(int).to_numpy(),
            "amount": [_money(v) for v in by_month["amount"]],
            "spend": _bars(by_month["amount"]),
        }
    )
    total = invoices["amount"].sum() if len(invoices) else 0
    context.log.info(
        f"loaded {len(periods)} month(s) {periods[0]}…{periods[-1]}: {len(invoices)} invoices, "
        f"{len(items)} items, {_money(total)}"
    )
    yield dg.MaterializeResult(
        asset_key="invoices",
        metadata={
            "dagster/row_count": len(invoices),
            "months": len(periods),
            "total_amount": _money(total),
            "preview": dg.MetadataValue.md(preview.tail(24).to_markdown(index=False)),
        },
    )
    by_product = (
        items.groupby(["product", "invoice_period"], dropna=False)["amount"]
        .sum()
        .unstack("invoice_period")
        .reindex(columns=periods[-6:])
    )
    by_product = by_product.loc[by_product.sum(axis=1).sort_values(ascending=False).index]
    yield dg.MaterializeResult(
        asset_key="invoice_items",
        metadata={
            "dagster/row_count": len(items),
            "total_amount": _money(items["amount"].sum() if len(items) else 0),
            "spend_by_product": dg.MetadataValue.md(
                by_product.fillna(0).map(lambda v: f"{v:,.2f}").to_markdown()
                if len(items)
                else "no items"
            ),
            "preview": dg.MetadataValue.md(
                items.head(10)[["invoice_period", "line_number", "product", "amount"]]
                .astype(str)
                .to_markdown(index=False)
            ),
        },
    )

"""The assets: raw pages from the API, then the `invoices` and `invoice_items` tables.

Data flows one way: API → `raw` schema (as received) → pandas normalization → tables. Hard
invariants are enforced before COMMIT; the asset checks below re-verify the stored tables.
"""

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd

from pipeline.api import IncompleteInvoiceError
from pipeline.normalize import normalize_invoices, normalize_items
from pipeline.partitions import WAREHOUSE_POOL, monthly_partitions, run_periods, single_run
from pipeline.resources import DigitalOceanResource, WarehouseResource
from pipeline.warehouse.store import RawFetch

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
        listing = api.list_invoices()
        refs = listing.for_periods(periods)
        context.log.info(
            f"{len(refs)} invoice(s) in {periods[0]}…{periods[-1]}; fetching their items"
        )
        fetches = api.fetch_items(refs)
        stats = api.stats
        host = urlsplit(api.base_url).netloc
    problems = [problem for fetch in fetches for problem in fetch.problems()]
    raw = RawFetch.of(
        listing,
        fetches,
        periods=periods,
        api_host=host,
        requests=stats.requests,
        problems=problems,
        run_id=context.run_id,
    )
    warehouse.open().land_raw(raw)
    if problems:
        raise IncompleteInvoiceError(
            "; ".join(problems) + f". The pages are kept in raw (fetch {raw.fetch_id}); the "
            "tables still hold the previous rows of these months. Re-run the months."
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(raw.list_pages) + len(raw.item_pages),
            "fetch_id": raw.fetch_id,
            "invoices": len(fetches),
            "item_pages": len(raw.item_pages),
            "items": sum(len(f.items) for f in fetches),
            "requests": stats.requests,
            "retries": stats.retries,
            "rate_limited": stats.rate_limited,
        }
    )


def _hard_invariants(invoices: pd.DataFrame, items: pd.DataFrame, periods: list[str]) -> list[str]:
    """What must hold before COMMIT: complete invoices, unique lines, periods in range."""
    problems = []
    counts = items.groupby("invoice_uuid").size()
    loaded = invoices["invoice_uuid"].map(counts).fillna(0).astype(int)
    for row, got in zip(invoices.itertuples(), loaded, strict=True):
        if pd.notna(row.items_total) and got != row.items_total:
            problems.append(
                f"invoice {row.invoice_uuid} ({row.invoice_period}): {got} items loaded, "
                f"meta.total is {row.items_total}"
            )
    if invoices["invoice_uuid"].duplicated().any():
        dup = invoices.loc[invoices["invoice_uuid"].duplicated(), "invoice_uuid"].tolist()
        problems.append(f"invoice(s) listed twice: {dup[:5]}")
    outside = sorted(set(invoices["invoice_period"].dropna()) - set(periods))
    if outside:
        problems.append(f"invoice periods {outside} are outside this run's months")
    return problems


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
    entries, pages, missing = store.read_raw(periods)
    if missing:
        raise dg.Failure(
            f"no successful raw fetch covers {missing}: materialize raw_invoice_pages first"
        )
    loaded_at = datetime.now(UTC)
    invoices = normalize_invoices(entries, loaded_at)
    items, unknown = normalize_items(pages, loaded_at)
    if unknown:
        context.log.warning(f"item fields not in the API spec (kept in raw only): {unknown}")
    problems = _hard_invariants(invoices, items, periods)
    if problems:
        raise IncompleteInvoiceError("; ".join(problems) + ". Nothing was written.")
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

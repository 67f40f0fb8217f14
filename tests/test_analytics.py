"""The analyst's warehouse: summaries, reconciliation, views, FOCUS, examples and export."""

import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline.assets import source_assets
from pipeline.checks import source_checks
from pipeline.export import export
from pipeline.partitions import monthly_partitions
from pipeline.sandbox import SandboxServer
from pipeline.sources import INVOICES, SUMMARIES
from pipeline.warehouse.store import Warehouse
from tests.conftest import sandbox_resources

ALL_ASSETS = [
    *source_assets(INVOICES),
    *source_assets(SUMMARIES),
    *source_checks(INVOICES),
    *source_checks(SUMMARIES),
]
EXAMPLES = Path(__file__).parents[1] / "docs" / "examples.sql"
VIEWS = [
    "monthly_spend_by_product",
    "monthly_spend_by_project",
    "monthly_spend_by_resource",
    "product_month_over_month",
    "month_to_date",
    "invoice_reconciliation",
    "focus_costs",
]


def load(server, path, first, last):
    return dg.materialize(
        ALL_ASSETS,
        resources=sandbox_resources(server, path),
        tags={
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        },
    )


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """Every month of the sandbox account, loaded once for the read-only tests below."""
    path = tmp_path_factory.mktemp("analytics") / "warehouse.duckdb"
    keys = monthly_partitions.get_partition_keys()
    with SandboxServer() as server:
        result = load(server, path, keys[0], keys[-1])
        yield server, path, result


def query(path, sql, params=None):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def test_summaries_load_and_every_invoice_reconciles(loaded):
    server, path, result = loaded
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["invoices_reconcile"] is True
    assert query(path, "SELECT count(*) FROM invoice_summaries") == [
        (len(server.data.all_invoices()),)
    ]
    assert query(path, "SELECT count(*) FROM invoice_reconciliation WHERE problem IS NULL") == [
        (len(server.data.all_invoices()),)
    ]


def test_every_view_exists_and_has_rows(loaded):
    _, path, _ = loaded
    for view in VIEWS:
        assert query(path, f"SELECT count(*) > 0 FROM {view}") == [(True,)], view  # noqa: S608


def test_month_over_month_compares_whole_months_only(loaded):
    _, path, _ = loaded
    partial = query(
        path,
        "SELECT DISTINCT invoice_period, change FROM product_month_over_month WHERE is_partial",
    )
    assert partial and all(change is None for _, change in partial)
    (open_month,) = {p for p, _ in partial}
    assert query(
        path,
        "SELECT count(*) FROM product_month_over_month WHERE previous_period = ?",
        [open_month],
    ) == [(0,)]


@pytest.mark.parametrize(
    "sql",
    [q for q in EXAMPLES.read_text().split(";") if "SELECT" in q],
    ids=lambda q: re.search(r"-- (\d+)\.", q).group(1),
)
def test_example_questions_run(loaded, sql):
    _, path, _ = loaded
    rows = query(path, sql)
    if "should be empty" in sql:
        assert rows == []
    else:
        assert rows, "an example question should have an answer on the sandbox account"


FOCUS_NOT_NULL = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingCurrency",
    "BillingAccountId",
    "BillingAccountName",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "ServiceName",
    "ServiceCategory",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
    "InvoiceId",
]


def test_focus_mandatory_columns_are_present_and_non_null(loaded):
    _, path, _ = loaded
    columns = {row[0] for row in query(path, "DESCRIBE focus_costs")}
    assert (
        set(FOCUS_NOT_NULL)
        | {
            "ChargeClass",
            "PricingQuantity",
            "PricingUnit",
            "ResourceId",
            "ResourceName",
            "ConsumedQuantity",
            "ConsumedUnit",
            "Tags",
        }
        <= columns
    )
    for column in FOCUS_NOT_NULL:
        assert query(path, f"SELECT count(*) FROM focus_costs WHERE {column} IS NULL") == [  # noqa: S608
            (0,)
        ], column


def test_focus_rules_checkable_in_sql(loaded):
    _, path, _ = loaded
    # Periods are end-exclusive: the billing period ends where the next one starts.
    assert query(
        path,
        """
        SELECT count(*) FROM focus_costs
        WHERE BillingPeriodEnd <> BillingPeriodStart + INTERVAL 1 MONTH
           OR ChargePeriodEnd < ChargePeriodStart
           OR ChargeCategory NOT IN ('Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment')
           OR (PricingQuantity IS NULL) <> (PricingUnit IS NULL)
           OR BillingCurrency <> 'USD'""",
    ) == [(0,)]
    # BilledCost per InvoiceId sums to the invoice.
    assert query(
        path,
        """
        SELECT count(*) FROM invoices AS i
        LEFT JOIN (SELECT InvoiceId, sum(BilledCost) AS billed FROM focus_costs GROUP BY 1) AS f
          ON f.InvoiceId = coalesce(i.invoice_id, i.invoice_uuid)
        WHERE coalesce(f.billed, 0) <> i.amount""",
    ) == [(0,)]
    categories = {row[0] for row in query(path, "SELECT DISTINCT ChargeCategory FROM focus_costs")}
    assert {"Usage", "Tax", "Credit"} <= categories


def test_a_summary_that_disagrees_is_reported_with_the_difference(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer() as server:
        invoice = next(i for i in server.data.invoices if i["invoice_period"] == "2024-05")
        server.data.summaries[invoice["invoice_uuid"]]["amount"] = "1.00"
        result = dg.materialize(
            ALL_ASSETS, resources=sandbox_resources(server, path), partition_key="2024-05"
        )
    (check,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "invoices_reconcile"
    ]
    assert not check.passed
    assert "invoice amount differs from the summary amount" in str(check.metadata)


def test_export_writes_a_folder_per_month_and_reexport_touches_one(loaded, tmp_path):
    _, path, _ = loaded
    out = tmp_path / "export"
    files = export(Warehouse(path), out)
    months = {row[0] for row in query(path, "SELECT invoice_period FROM invoices")}
    folders = {p.name for p in (out / "invoice_items").iterdir()}
    assert folders == {f"invoice_period={m}" for m in months}
    assert len(files) == 3 * len(months)
    exported = duckdb.execute(
        "SELECT count(*), sum(amount) FROM read_parquet(?, hive_partitioning = true)",
        [f"{out}/invoice_items/*/*.parquet"],
    ).fetchone()
    assert exported == query(path, "SELECT count(*), sum(amount) FROM invoice_items")[0]

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    month = sorted(months)[3]
    export(Warehouse(path), out, [month])
    changed = {p for p in out.rglob("*.parquet") if p.stat().st_mtime_ns != stamps.get(p)}
    assert changed and all(f"invoice_period={month}" in str(p) for p in changed)
    assert set(out.rglob("*.parquet")) == set(stamps)

"""The analyst's warehouse: summaries, reconciliation, views, FOCUS, examples and export.

Each view is compared, value by value, with what it should say about the sandbox's account,
computed here in Python with Decimal arithmetic from the data the sandbox serves.
"""

import calendar
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import median

import duckdb
import pyarrow.parquet as pq
import pytest

from pipeline.cli.export import TABLES, export
from pipeline.defs.assets import build_assets
from pipeline.defs.checks import CHECKS
from pipeline.defs.partitions import monthly_partitions
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.data import build_dataset
from pipeline.warehouse.store import Warehouse

ALL_ASSETS = [*build_assets(monthly_partitions()), *CHECKS]  # every source's assets and checks
EXAMPLES = Path(__file__).parents[1] / "docs" / "examples.sql"
VIEWS = [
    "monthly_spend_by_product",
    "monthly_spend_by_project",
    "monthly_spend_by_resource",
    "product_month_over_month",
    "month_to_date",
    "invoice_reconciliation",
    "focus_costs",
    "daily_spend_by_region",
    "daily_spend_by_sku",
    "estimate_vs_invoice",
    "payments_vs_invoices",
    "cost_anomalies",
    "month_forecast",
]
# The allocation views, checked value by value in test_allocation.py against the sandbox's
# items and inventory.
ALLOCATION_VIEWS = [
    "inventory_resources",
    "inventory_validity",
    "resource_tags",
    "allocation_snapshots",
    "item_allocation",
    "cost_by_resource",
    "cost_by_tag",
    "allocation_coverage",
    "sku_owners",
]
# The FOCUS 1.3 and 1.4 views and what they share, checked value by value in test_focus.py.
FOCUS_VIEWS = [
    "focus_accounts",
    "focus_summary_charges",
    "focus_1_3_cost_and_usage",
    "focus_1_4_cost_and_usage",
    "focus_1_4_invoice_detail",
    "focus_1_4_billing_period",
]
# What to cut, checked value by value in test_idle.py against the sandbox's inventory and items.
IDLE_VIEWS = ["idle_resources", "idle_cost_by_project"]
CENT = Decimal("0.01")
TODAY = datetime.now(UTC).date()
PLANT_DAYS = (TODAY - timedelta(days=2), TODAY - timedelta(days=3))  # the spike, the new SKU


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, materialize, plant_anomalies):
    """Every month of every source of the sandbox account, loaded once for the tests below."""
    path = tmp_path_factory.mktemp("analytics") / "warehouse.duckdb"
    keys = monthly_partitions().get_partition_keys()
    with SandboxServer() as server:
        # A spike and a new SKU, so cost_anomalies has rows to check (the sample data has none).
        plant_anomalies(server.data, *PLANT_DAYS)
        result = materialize(server, path, keys[0], keys[-1], assets=ALL_ASSETS)
        yield server, path, result


# -- what the views should say, from the sandbox's data --------------------------------------
def text_or_null(value):
    """The normalizer's rule for text: absent, None and blank strings are NULL."""
    return value if isinstance(value, str) and value.strip() else None


def loaded_invoices(server: SandboxServer, months) -> list[tuple[dict, str]]:
    """(invoice, status) for the months: each month's final invoice, else the preview."""
    chosen = [(i, "final") for i in server.data.invoices if i["invoice_period"] in months]
    closed = {i["invoice_period"] for i, _ in chosen}
    preview = server.data.preview
    if preview and preview["invoice_period"] in set(months) - closed:
        chosen.append((preview, "preview"))
    return chosen


def loaded_items(server: SandboxServer, months) -> list[tuple[dict, str, dict]]:
    """(invoice, status, item) for every line item of the months."""
    return [
        (invoice, status, item)
        for invoice, status in loaded_invoices(server, months)
        for item in server.data.items[invoice["invoice_uuid"]]
    ]


def spend_by(server: SandboxServer, months, field: str, none: str) -> dict:
    """(month, item field or `none`) → (amount, items, is_partial), as the spend views group."""
    spend: dict[tuple[str, str], tuple[Decimal, int, bool]] = {}
    for invoice, status, item in loaded_items(server, months):
        key = (invoice["invoice_period"], text_or_null(item.get(field)) or none)
        amount, count, partial = spend.get(key, (Decimal(0), 0, False))
        spend[key] = (amount + Decimal(item["amount"]), count + 1, partial or status == "preview")
    return spend


def charge_category(item: dict) -> str:
    """FOCUS ChargeCategory as docs/data-dictionary.md defines it."""
    product = (text_or_null(item.get("product")) or "").lower()
    if product.startswith("tax"):
        return "Tax"
    if Decimal(item["amount"]) < 0 or "credit" in product:
        return "Credit"
    return "Usage"


def previous_month(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year - (month == 1):04d}-{(month - 2) % 12 + 1:02d}"


def test_summaries_load_and_every_invoice_reconciles(loaded, rows):
    server, path, result = loaded
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["invoices_reconcile"] is True
    assert rows(path, "SELECT count(*) FROM invoice_summaries") == [
        (len(server.data.all_invoices()),)
    ]
    assert rows(path, "SELECT count(*) FROM invoice_reconciliation WHERE problem IS NULL") == [
        (len(server.data.all_invoices()),)
    ]


def test_every_view_exists_and_has_rows(loaded, rows):
    _, path, _ = loaded
    for view in VIEWS:
        assert rows(path, f"SELECT count(*) > 0 FROM {view}") == [(True,)], view  # noqa: S608


def test_every_view_has_a_value_test(loaded, rows):
    """VIEWS lists the views this module checks value by value; a new view must join them."""
    _, path, _ = loaded
    views = rows(path, "SELECT view_name FROM duckdb_views() WHERE NOT internal")
    untested = (
        {name for (name,) in views}
        - set(VIEWS)
        - set(ALLOCATION_VIEWS)
        - set(FOCUS_VIEWS)
        - set(IDLE_VIEWS)
    )
    assert sorted(untested) == [], "views with no value test"


def test_monthly_spend_by_product_is_exact(loaded, rows):
    server, path, _ = loaded
    months = monthly_partitions().get_partition_keys()
    stored = rows(
        path,
        "SELECT invoice_period, product, amount, items, is_partial FROM monthly_spend_by_product",
    )
    expected = spend_by(server, months, "product", "(no product)")
    assert {(p, k): (a, n, partial) for p, k, a, n, partial in stored} == expected
    assert len(stored) == len(expected)
    assert any(partial for _, _, partial in expected.values()), "the open month is loaded"


def test_monthly_spend_by_project_is_exact(loaded, rows):
    server, path, _ = loaded
    months = monthly_partitions().get_partition_keys()
    stored = rows(
        path,
        "SELECT invoice_period, project_name, amount, items, is_partial "
        "FROM monthly_spend_by_project",
    )
    expected = spend_by(server, months, "project_name", "(no project)")
    assert {(p, k): (a, n, partial) for p, k, a, n, partial in stored} == expected
    assert len(stored) == len(expected)
    # Absent and empty project names both count as no project; unicode names are kept.
    projects = {project for _, project in expected}
    assert {"(no project)", "Café ☕ 東京"} <= projects and "" not in projects


def test_monthly_spend_by_resource_is_exact(loaded, rows):
    server, path, _ = loaded
    months = monthly_partitions().get_partition_keys()
    amounts: dict[tuple[str, str], Decimal] = {}
    products: dict[tuple[str, str], set[str]] = {}
    partial: dict[tuple[str, str], bool] = {}
    names: dict[str, tuple[str, set]] = {}  # resource → (latest month, its names that month)
    for invoice, status, item in loaded_items(server, months):
        resource = text_or_null(item.get("resource_uuid"))
        if resource is None:
            continue
        period = invoice["invoice_period"]
        key = (period, resource)
        amounts[key] = amounts.get(key, Decimal(0)) + Decimal(item["amount"])
        products.setdefault(key, set()).add(item["product"])
        partial[key] = partial.get(key, False) or status == "preview"
        name = text_or_null(item.get("group_description")) or text_or_null(item.get("description"))
        latest, seen = names.get(resource, ("", set()))
        if period > latest:
            names[resource] = (period, {name})
        elif period == latest:
            seen.add(name)
    stored = rows(
        path,
        "SELECT invoice_period, resource_uuid, resource_name, product, amount, is_partial "
        "FROM monthly_spend_by_resource",
    )
    assert {(p, r): a for p, r, _, _, a, _ in stored} == amounts
    assert len(stored) == len(amounts)
    for period, resource, name, product, _, is_partial in stored:
        assert product in products[(period, resource)]
        assert is_partial == partial[(period, resource)]
        # Named by its latest month's lines (which of them is not specified: same end_time).
        assert name in names[resource][1], (resource, name)


def test_product_month_over_month_is_computed_from_whole_months(loaded, rows):
    server, path, _ = loaded
    spend = spend_by(server, monthly_partitions().get_partition_keys(), "product", "(no product)")
    closed = {key: amount for key, (amount, _, partial) in spend.items() if not partial}
    months = sorted({period for period, _ in closed})
    previous = dict(zip(months[1:], months[:-1], strict=True))
    expected = {}
    for (period, product), amount in closed.items():
        before = closed.get((previous.get(period), product), Decimal(0))
        expected[(period, product)] = (amount, previous.get(period), before, amount - before, False)
    for (period, product), (amount, _, partial) in spend.items():
        if partial:
            expected[(period, product)] = (amount, None, None, None, True)
    stored = rows(
        path,
        "SELECT invoice_period, product, amount, previous_period, previous_amount, change, "
        "change_pct, is_partial FROM product_month_over_month",
    )
    assert {(p, k): (a, pp, pa, c, partial) for p, k, a, pp, pa, c, _, partial in stored} == (
        expected
    )
    assert len(stored) == len(expected)
    for period, product, amount, _, _, _, pct, _ in stored:
        before = (
            closed.get((previous.get(period), product)) if (period, product) in closed else None
        )
        if not before:
            assert pct is None, (period, product)
            continue
        exact = 100 * (amount - before) / before
        # The exact percentage rounded to one decimal.
        assert round(pct, 1) == pct and abs(Decimal(str(pct)) - exact) <= Decimal("0.05")
    assert any(pct is not None for *_, pct, _ in stored)


def test_month_to_date_prorates_last_month_to_the_same_day(loaded, rows):
    server, path, _ = loaded
    preview = server.data.preview
    as_of = datetime.fromisoformat(preview["updated_at"])
    last_period = previous_month(preview["invoice_period"])
    last = server.data.invoice_for(last_period)
    days_in_last = calendar.monthrange(int(last_period[:4]), int(last_period[5:]))[1]
    ((period, stored_as_of, to_date, last_seen, last_total, days, prorated),) = rows(
        path, "SELECT * EXCLUDE (team_uuid, team_name) FROM month_to_date"
    )
    assert (period, stored_as_of, to_date, last_seen, last_total, days) == (
        preview["invoice_period"],
        as_of,
        Decimal(preview["amount"]),
        last_period,
        Decimal(last["amount"]),
        as_of.day,
    )
    exact = Decimal(last["amount"]) * as_of.day / days_in_last
    assert prorated == prorated.quantize(CENT) and abs(prorated - exact) <= CENT / 2


def test_invoice_reconciliation_shows_every_invoice_consistent(loaded, rows):
    server, path, _ = loaded
    expected = {}
    for invoice, status in loaded_invoices(server, monthly_partitions().get_partition_keys()):
        uuid = invoice["invoice_uuid"]
        summary = server.data.summaries[uuid]
        items_sum = sum((Decimal(it["amount"]) for it in server.data.items[uuid]), Decimal(0))
        assert items_sum == Decimal(invoice["amount"])  # the sandbox's bills are consistent
        expected[uuid] = (
            invoice["invoice_period"],
            status,
            Decimal(invoice["amount"]),
            Decimal(summary["amount"]),
            items_sum,
            Decimal(summary["taxes"]["amount"]),
            Decimal(summary["credits_and_adjustments"]["amount"]),
            Decimal(0),
            None,
            "items include taxes and credits",
        )
    stored = rows(path, "SELECT * EXCLUDE (team_uuid, team_name) FROM invoice_reconciliation")
    assert {row[0]: row[1:] for row in stored} == expected
    assert len(stored) == len(expected)
    team = server.data.team
    assert rows(path, "SELECT DISTINCT team_uuid, team_name FROM invoice_reconciliation") == [
        (team["uuid"], team["name"])
    ]


def test_focus_costs_bill_each_invoice_its_amount(loaded, rows):
    server, path, _ = loaded
    by_category: dict[tuple[str, str], Decimal] = {}
    for invoice, _, item in loaded_items(server, monthly_partitions().get_partition_keys()):
        key = (invoice["invoice_id"] or invoice["invoice_uuid"], charge_category(item))
        by_category[key] = by_category.get(key, Decimal(0)) + Decimal(item["amount"])
    stored = rows(
        path, "SELECT InvoiceId, ChargeCategory, sum(BilledCost) FROM focus_costs GROUP BY ALL"
    )
    assert {(invoice, category): billed for invoice, category, billed in stored} == by_category
    billed = rows(path, "SELECT InvoiceId, sum(BilledCost) FROM focus_costs GROUP BY ALL")
    amounts = {
        invoice["invoice_id"] or invoice["invoice_uuid"]: Decimal(invoice["amount"])
        for invoice, _ in loaded_invoices(server, monthly_partitions().get_partition_keys())
        if server.data.items[invoice["invoice_uuid"]]
    }
    assert dict(billed) == amounts
    assert {category for _, category in by_category} == {"Usage", "Tax", "Credit"}


def test_month_over_month_compares_whole_months_only(loaded, rows):
    _, path, _ = loaded
    partial = rows(
        path,
        "SELECT DISTINCT invoice_period, change FROM product_month_over_month WHERE is_partial",
    )
    assert partial and all(change is None for _, change in partial)
    (open_month,) = {p for p, _ in partial}
    assert rows(
        path,
        "SELECT count(*) FROM product_month_over_month WHERE previous_period = ?",
        [open_month],
    ) == [(0,)]


@pytest.mark.parametrize(
    "sql",
    [q for q in EXAMPLES.read_text().split(";") if "SELECT" in q],
    ids=lambda q: re.search(r"-- (\d+)\.", q).group(1),
)
def test_example_questions_run(loaded, rows, sql):
    _, path, _ = loaded
    answer = rows(path, sql)
    if "should be empty" in sql:
        assert answer == []
    else:
        assert answer, "an example question should have an answer on the sandbox account"


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


def test_focus_mandatory_columns_are_present_and_non_null(loaded, rows):
    _, path, _ = loaded
    columns = {row[0] for row in rows(path, "DESCRIBE focus_costs")}
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
        assert rows(path, f"SELECT count(*) FROM focus_costs WHERE {column} IS NULL") == [  # noqa: S608
            (0,)
        ], column


def test_focus_rules_checkable_in_sql(loaded, rows):
    _, path, _ = loaded
    # Periods are end-exclusive: the billing period ends where the next one starts.
    assert rows(
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
    assert rows(
        path,
        """
        SELECT count(*) FROM invoices AS i
        LEFT JOIN (SELECT InvoiceId, sum(BilledCost) AS billed FROM focus_costs GROUP BY 1) AS f
          ON f.InvoiceId = coalesce(i.invoice_id, i.invoice_uuid)
        WHERE coalesce(f.billed, 0) <> i.amount""",
    ) == [(0,)]
    categories = {row[0] for row in rows(path, "SELECT DISTINCT ChargeCategory FROM focus_costs")}
    assert {"Usage", "Tax", "Credit"} <= categories


def test_a_summary_that_disagrees_is_reported_with_the_difference(
    warehouse_path, materialize, rows
):
    """Two planted mismatches: a summary amount that is not the invoice's (2024-05), and an
    item 0.07 higher than the invoice accounts for (2024-06). Each is reported, exactly."""
    with SandboxServer() as server:
        may = server.data.invoice_for("2024-05")
        june = server.data.invoice_for("2024-06")
        server.data.summaries[may["invoice_uuid"]]["amount"] = "1.00"
        line = server.data.items[june["invoice_uuid"]][0]
        line["amount"] = str(Decimal(line["amount"]) + Decimal("0.07"))
        result = materialize(server, warehouse_path, "2024-05", "2024-06", assets=ALL_ASSETS)
        june_summary = server.data.summaries[june["invoice_uuid"]]
    (check,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "invoices_reconcile"
    ]
    assert not check.passed
    assert check.metadata["failing_rows"].value == 2
    assert "invoice amount differs from the summary amount" in str(check.metadata)
    assert "items do not add up to the invoice, even counting taxes and credits" in str(
        check.metadata
    )
    stored = rows(
        warehouse_path,
        "SELECT invoice_uuid, invoice_amount, summary_amount, items_sum, items_difference, "
        "problem, reconciled_by FROM invoice_reconciliation ORDER BY invoice_period",
    )
    may_amount, june_amount = Decimal(may["amount"]), Decimal(june["amount"])
    taxes_and_credits = Decimal(june_summary["taxes"]["amount"]) + Decimal(
        june_summary["credits_and_adjustments"]["amount"]
    )
    assert june_amount + Decimal("0.07") + taxes_and_credits != june_amount
    assert stored == [
        (
            may["invoice_uuid"],
            may_amount,
            Decimal("1.00"),
            may_amount,
            Decimal("0.00"),
            "invoice amount differs from the summary amount",
            "items include taxes and credits",
        ),
        (
            june["invoice_uuid"],
            june_amount,
            june_amount,
            june_amount + Decimal("0.07"),
            Decimal("0.07"),
            "items do not add up to the invoice, even counting taxes and credits",
            None,
        ),
    ]
    # The summary's side of the first mismatch, to the cent.
    assert stored[0][1] - stored[0][2] == may_amount - Decimal("1.00")


def test_export_writes_a_folder_per_month_and_reexport_touches_one(loaded, rows, tmp_path):
    _, path, _ = loaded
    out = tmp_path / "export"
    files = export(Warehouse(path), out)
    months = {row[0] for row in rows(path, "SELECT invoice_period FROM invoices")}
    with_items = {row[0] for row in rows(path, "SELECT invoice_period FROM invoice_items")}
    assert len(with_items) < len(months)  # the sample account has a month of no items
    folders = {p.name for p in (out / "invoice_items").iterdir()}
    assert folders == {f"invoice_period={m}" for m in with_items}
    # A file for each table and month that has rows, none for the others (and the teams).
    having = {
        (table, month)
        for table, column in TABLES.items()
        for (month,) in rows(path, f"SELECT DISTINCT {column} FROM {table}")  # noqa: S608
    }
    assert {(p.parent.parent.name, p.parent.name.split("=")[1]) for p in files[:-1]} == having
    assert all(pq.read_metadata(p).num_rows > 0 for p in files)
    insights = {row[0] for row in rows(path, "SELECT usage_month FROM daily_costs")}
    assert {p.name for p in (out / "daily_costs").iterdir()} == {
        f"usage_month={m}" for m in insights
    }
    team = duckdb.execute(
        "SELECT team_uuid, team_name FROM read_parquet(?)", [str(out / "teams" / "data.parquet")]
    ).fetchall()
    assert team == rows(path, "SELECT team_uuid, team_name FROM teams")
    exported = duckdb.execute(
        "SELECT count(*), sum(amount) FROM read_parquet(?, hive_partitioning = true)",
        [f"{out}/invoice_items/*/*.parquet"],
    ).fetchone()
    assert exported == rows(path, "SELECT count(*), sum(amount) FROM invoice_items")[0]

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    month = sorted(months)[3]
    export(Warehouse(path), out, [month])
    changed = {p for p in out.rglob("*.parquet") if p.stat().st_mtime_ns != stamps.get(p)}
    months_changed = {p for p in changed if p.parent.name != "teams"}
    assert len(months_changed) == len({table for table, m in having if m == month})
    assert all(str(p.parent.name).endswith(f"={month}") for p in months_changed)
    assert set(out.rglob("*.parquet")) == set(stamps)


# -- views over Billing Insights and billing history -------------------------------------------
def daily_spend(server, key):
    spend: dict = {}
    for p in server.data.insights:
        group = (p["start_date"], p[key])
        spend[group] = spend.get(group, Decimal(0)) + Decimal(p["total_amount"])
    return spend


@pytest.mark.parametrize(
    ("view", "key"), [("daily_spend_by_region", "region"), ("daily_spend_by_sku", "sku")]
)
def test_daily_spend_views_are_exact(loaded, rows, view, key):
    server, path, _ = loaded
    stored = rows(path, f"SELECT strftime(usage_date, '%Y-%m-%d'), {key}, amount FROM {view}")  # noqa: S608
    assert {(day, k): amount for day, k, amount in stored} == daily_spend(server, key)


def test_estimate_vs_invoice_is_exact(loaded, rows):
    server, path, _ = loaded
    estimates: dict = {}
    for p in server.data.insights:
        month = p["start_date"][:7]
        estimates[month] = estimates.get(month, Decimal(0)) + Decimal(p["total_amount"])
    invoiced = {
        i["invoice_period"]: (Decimal(i["amount"]), status)
        for i, status in loaded_invoices(server, list(estimates))
    }
    stored = rows(
        path,
        "SELECT month, insights_total, invoice_total, difference, is_partial "
        "FROM estimate_vs_invoice",
    )
    assert {r[0]: r[1:] for r in stored} == {
        month: (
            total,
            invoiced[month][0],
            total - invoiced[month][0],
            invoiced[month][1] == "preview",
        )
        for month, total in estimates.items()
    }


def test_payments_vs_invoices_is_exact(loaded, rows):
    server, path, _ = loaded
    paid: dict = {}
    for e in server.data.billing_history:
        if e["type"] == "Payment" and e.get("invoice_uuid"):
            paid[e["invoice_uuid"]] = paid.get(e["invoice_uuid"], Decimal(0)) - Decimal(e["amount"])
    expected = {}
    for invoice in server.data.invoices:
        amount, got = Decimal(invoice["amount"]), paid.get(invoice["invoice_uuid"], Decimal(0))
        expected[invoice["invoice_period"]] = (amount, got, amount - got)
    stored = rows(
        path, "SELECT invoice_period, invoiced, paid, outstanding FROM payments_vs_invoices"
    )
    assert {r[0]: r[1:] for r in stored} == expected
    assert sum(1 for _, got, _ in expected.values() if got) >= len(expected) - 2


# -- cost anomalies and the month's forecast --------------------------------------------------
def sku_days(server, sku: str) -> dict[str, tuple[Decimal, set[str]]]:
    """Per day: the SKU's cost (all its points) and its regions."""
    days: dict[str, tuple[Decimal, set[str]]] = {}
    for p in server.data.insights:
        if p["sku"] == sku:
            cost, regions = days.get(p["start_date"], (Decimal(0), set()))
            days[p["start_date"]] = (cost + Decimal(p["total_amount"]), regions | {p["region"]})
    return days


def test_cost_anomalies_are_exactly_the_planted_ones(loaded, rows, plant_anomalies):
    """At the default thresholds the sample account has none; the planted spike and new SKU are
    listed with the baseline (median) and MAD of the days the SKU cost in the 14 before."""
    server, path, _ = loaded
    spike, new = plant_anomalies(build_dataset(today=TODAY), *PLANT_DAYS)
    team = server.data.team
    days = sku_days(server, spike.sku)
    before = [
        days[d][0]
        for n in range(1, 15)
        if (d := (date.fromisoformat(spike.day) - timedelta(days=n)).isoformat()) in days
    ]
    baseline = median(before)
    mad = median(abs(cost - baseline) for cost in before)
    cost, regions = days[spike.day]
    stored = rows(
        path,
        "SELECT strftime(usage_date, '%Y-%m-%d'), kind, grain, sku, service, region, cost, "
        "baseline, mad, excess, alert_key, team_uuid, team_name FROM cost_anomalies",
    )
    assert stored == [
        (new.day, "new_sku", "sku", new.sku, None, "tor1", Decimal("400.00"), 0, 0,
         Decimal("400.00"), new.key, team["uuid"], team["name"]),
        (spike.day, "spike", "sku", spike.sku, spike.service,
         ", ".join(sorted(regions)), cost, baseline, mad, cost - baseline, spike.key,
         team["uuid"], team["name"]),
    ]  # fmt: skip
    assert cost == Decimal(spike.amount) and len(before) >= 7
    (why,) = rows(path, "SELECT why FROM cost_anomalies WHERE kind = 'spike'")[0]
    assert f"SKU {spike.sku} cost {cost} on {spike.day}" in why


def test_month_forecast_is_linear_on_the_last_seven_days(loaded, rows):
    server, path, _ = loaded
    by_day: dict[str, Decimal] = {}
    for p in server.data.insights:
        by_day[p["start_date"]] = by_day.get(p["start_date"], Decimal(0)) + Decimal(
            p["total_amount"]
        )
    balance = server.data.balance
    balance_month = balance["generated_at"][:7]
    expected = {}
    for month in sorted({day[:7] for day in by_day} | {balance_month}):
        days = sorted(d for d in by_day if d[:7] == month)
        insights = sum((by_day[d] for d in days), Decimal(0)) if days else None
        in_month = calendar.monthrange(int(month[:4]), int(month[5:]))[1]
        loaded_days = int(days[-1][8:]) if days else 0
        recent = days[-min(7, loaded_days) :] if days else []
        rate = (
            (sum(by_day[d] for d in recent) / len(recent)).quantize(CENT, "ROUND_HALF_UP")
            if recent
            else None
        )
        snapshot = Decimal(balance["month_to_date_usage"]) if month == balance_month else None
        to_date = snapshot if snapshot is not None else insights
        is_open = month == TODAY.strftime("%Y-%m")
        forecast = to_date + (rate or 0) * (in_month - loaded_days) if is_open else to_date
        expected[month] = (
            to_date,
            snapshot,
            insights,
            loaded_days,
            in_month,
            rate,
            forecast,
            is_open,
        )
    stored = rows(
        path,
        "SELECT month, month_to_date, balance_to_date, insights_to_date, days_loaded, "
        "days_in_month, run_rate, forecast, is_open FROM month_forecast",
    )
    assert {r[0]: r[1:] for r in stored} == expected
    assert sum(1 for r in stored if r[-1]) == 1

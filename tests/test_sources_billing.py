"""Billing Insights, billing history and balance over real HTTP: every point, entry and
snapshot exact, the minimum requests, the API's quirks handled."""

import math
from collections import Counter
from decimal import Decimal

import dagster as dg
import duckdb
import pytest

from pipeline.defs.definitions import source_defs
from pipeline.sandbox import SandboxServer
from pipeline.sources import BALANCE, HISTORY, INSIGHTS, INVOICES
from pipeline.sources.insights import FIRST_DAY

# Billing history entry types the API's spec lists.
SPEC_TYPES = {
    "ACHFailure", "Adjustment", "AttemptFailed", "Chargeback", "Credit",
    "CreditExpiration", "Invoice", "Payment", "Refund", "Reversal",
}  # fmt: skip
MONTHS = ["2025-11", "2025-12", "2026-01", "2026-02"]  # 2025-11 is before the API's data begins
INSIGHTS_PATH = "/v2/billing/"


def load(server, path, resources, sources, months=MONTHS, **kwargs):
    assets = [a for s in sources for a in source_defs(s)]
    return dg.materialize(
        assets,
        resources=resources(server, path),
        tags={
            "dagster/asset_partition_range_start": months[0],
            "dagster/asset_partition_range_end": months[-1],
        },
        raise_on_error=kwargs.pop("raise_on_error", True),
    )


def query(path, sql, params=None):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def failures(result):
    """Each step failure's message and the errors it wraps."""
    for event in result.all_events:
        error = event.step_failure_data.error if event.is_step_failure else None
        while error is not None:
            yield error.message
            error = error.cause


def points_of(server, months):
    return [p for p in server.data.insights if p["start_date"][:7] in months]


def as_row(point):
    return (
        point["start_date"],
        point["region"],
        point["sku"],
        point["description"],
        point["group_description"] or None,
        Decimal(point["total_amount"]),
    )


@pytest.mark.parametrize("string_counters", [True, False])
def test_every_point_is_loaded_exactly_with_the_minimum_requests(
    warehouse_path, pipeline_resources, string_counters
):
    with SandboxServer(string_counters=string_counters) as server:
        assert load(server, warehouse_path, pipeline_resources, [INSIGHTS]).success
        requests = [r for r in server.requests if r["path"].startswith(INSIGHTS_PATH)]
        account = [r for r in server.requests if r["path"] == "/v2/account"]
        expected = points_of(server, MONTHS)
        by_month = Counter(p["start_date"][:7] for p in expected)
    stored = query(
        warehouse_path,
        "SELECT strftime(usage_date, '%Y-%m-%d'), region, sku, description, group_description,"
        " amount FROM daily_costs",
    )
    assert Counter(stored) == Counter(as_row(p) for p in expected)
    ((total,),) = query(warehouse_path, "SELECT sum(amount) FROM daily_costs")
    assert total == sum(Decimal(p["total_amount"]) for p in expected)
    # One window per month from 2025-12, ⌈points/200⌉ pages each, and the account once.
    assert len(account) == 1
    assert len(requests) == sum(math.ceil(n / 200) for n in by_month.values())
    assert max(by_month.values()) > 200, "a month should need two pages"
    starts = {r["path"].split("/")[-2] for r in requests}
    assert starts == {"2025-12-01", "2026-01-01", "2026-02-01"}
    assert all(start >= FIRST_DAY.isoformat() for start in starts)


def test_daily_views_add_up_by_region_and_by_sku(sandbox, warehouse_path, pipeline_resources):
    months = ["2026-01"]
    assert load(sandbox, warehouse_path, pipeline_resources, [INSIGHTS], months).success
    by_region: Counter = Counter()
    by_sku: Counter = Counter()
    for p in points_of(sandbox, months):
        by_region[(p["start_date"], p["region"])] += Decimal(p["total_amount"])
        by_sku[(p["start_date"], p["sku"])] += Decimal(p["total_amount"])
    regions = query(
        warehouse_path,
        "SELECT strftime(usage_date, '%Y-%m-%d'), region, amount FROM daily_spend_by_region",
    )
    skus = query(
        warehouse_path,
        "SELECT strftime(usage_date, '%Y-%m-%d'), sku, amount FROM daily_spend_by_sku",
    )
    assert {(d, r): a for d, r, a in regions} == dict(by_region)
    assert {(d, k): a for d, k, a in skus} == dict(by_sku)


def test_identical_points_on_one_day_are_both_kept(sandbox, warehouse_path, pipeline_resources):
    assert load(sandbox, warehouse_path, pipeline_resources, [INSIGHTS]).success
    twins = [
        row
        for row, count in Counter(as_row(p) for p in points_of(sandbox, MONTHS)).items()
        if count == 2
    ]
    assert twins, "the sandbox plants two identical points on one day"
    day, region, sku, *_ = twins[0]
    (stored,) = query(
        warehouse_path,
        "SELECT count(*) FROM daily_costs WHERE usage_date = ? AND region = ? AND sku = ? "
        "GROUP BY ALL HAVING count(*) > 1",
        [day, region, sku],
    )
    assert stored == (2,)


def test_a_token_without_account_read_is_told_which_scope_it_lacks(
    warehouse_path, pipeline_resources
):
    with SandboxServer(scopes=frozenset({"billing:read"})) as server:
        result = load(server, warehouse_path, pipeline_resources, [INSIGHTS], raise_on_error=False)
        paths = [r["path"] for r in server.requests]
    assert not result.success
    message = "\n".join(failures(result))
    assert "GET /v2/account: HTTP 403" in message and "lacks account:read" in message
    assert paths == ["/v2/account"]


@pytest.mark.parametrize("history_total", [True, False])
def test_billing_history_keeps_every_entry_of_the_months_and_unknown_types(
    warehouse_path, pipeline_resources, history_total
):
    months = ["2024-01", "2024-02", "2024-03"]
    with SandboxServer(history_total=history_total) as server:
        assert load(server, warehouse_path, pipeline_resources, [HISTORY], months).success
        entries = [e for e in server.data.billing_history if e["date"][:7] in months]
        every_type = {e["type"] for e in server.data.billing_history}
    stored = query(
        warehouse_path,
        "SELECT strftime(date AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), type, description, "
        "amount, invoice_uuid, invoice_id FROM billing_history",
    )
    assert Counter(stored) == Counter(
        (
            e["date"],
            e["type"],
            e["description"],
            Decimal(e["amount"]),
            e.get("invoice_uuid"),
            e.get("invoice_id"),
        )
        for e in entries
    )
    unknown = every_type - SPEC_TYPES
    assert unknown, "the sandbox lists an entry of a type the spec does not know"


def test_unknown_history_types_are_loaded(sandbox, warehouse_path, pipeline_resources):
    unknown = next(
        e
        for e in sandbox.data.billing_history
        if e["type"] not in ("Invoice", "Payment", "Credit", "Refund", "AttemptFailed")
    )
    month = unknown["date"][:7]
    assert load(sandbox, warehouse_path, pipeline_resources, [HISTORY], [month]).success
    assert (unknown["type"], Decimal(unknown["amount"])) in query(
        warehouse_path, "SELECT type, amount FROM billing_history"
    )


def test_balance_keeps_one_snapshot_per_generated_at(sandbox, warehouse_path, pipeline_resources):
    month = sandbox.data.preview["invoice_period"]
    assert load(sandbox, warehouse_path, pipeline_resources, [BALANCE], [month]).success
    assert load(sandbox, warehouse_path, pipeline_resources, [BALANCE], [month]).success
    balance = sandbox.data.balance
    assert query(
        warehouse_path,
        "SELECT month_to_date_balance, account_balance, month_to_date_usage, balance_month "
        "FROM balance",
    ) == [
        (
            Decimal(balance["month_to_date_balance"]),
            Decimal(balance["account_balance"]),
            Decimal(balance["month_to_date_usage"]),
            balance["generated_at"][:7],
        )
    ]
    later = sandbox.data.copy()
    # A later snapshot of the same day (the sandbox's is at midnight or 06:31:50).
    later.balance = {**balance, "generated_at": f"{balance['generated_at'][:10]}T09:00:00Z",
                     "month_to_date_usage": "1.00"}  # fmt: skip
    sandbox.data = later
    assert load(sandbox, warehouse_path, pipeline_resources, [BALANCE], [month]).success
    assert query(warehouse_path, "SELECT count(*), min(month_to_date_usage) FROM balance") == [
        (2, Decimal("1.00"))
    ]


def test_estimates_against_invoices_and_payments_against_invoices(
    sandbox, warehouse_path, pipeline_resources
):
    months = ["2025-12", "2026-01", "2026-02"]
    result = load(
        sandbox, warehouse_path, pipeline_resources, [INVOICES, INSIGHTS, HISTORY], months
    )
    assert result.success
    invoices = {
        i["invoice_period"]: i for i in sandbox.data.invoices if i["invoice_period"] in months
    }
    estimates = {
        m: sum(Decimal(p["total_amount"]) for p in points_of(sandbox, [m])) for m in months
    }
    stored = query(
        warehouse_path,
        "SELECT month, insights_total, invoice_total, difference, is_partial "
        "FROM estimate_vs_invoice ORDER BY month",
    )
    assert stored == [
        (
            m,
            estimates[m],
            Decimal(invoices[m]["amount"]),
            estimates[m] - Decimal(invoices[m]["amount"]),
            False,
        )
        for m in months
    ]
    differing = [m for m in months if estimates[m] != Decimal(invoices[m]["amount"])]
    assert differing and len(differing) < len(months), "some months differ, one matches"
    # Within the documented tolerance (1 % of the invoice, at least 1.00 USD): a normal load
    # is green.
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["insights_match_total_items"].passed
    assert checks["every_day_of_closed_months"].passed
    assert checks["estimates_match_invoices"].passed
    paid = {
        i["invoice_uuid"]: -sum(
            (Decimal(e["amount"]) for e in sandbox.data.billing_history
             if e["type"] == "Payment" and e.get("invoice_uuid") == i["invoice_uuid"]),
            Decimal(0),
        )
        for i in invoices.values()
    }  # fmt: skip
    history_months = {e["date"][:7] for e in sandbox.data.billing_history}
    assert history_months  # payments for these invoices are dated in the following month
    rows = query(
        warehouse_path,
        "SELECT invoice_period, invoiced, paid, outstanding FROM payments_vs_invoices "
        "ORDER BY invoice_period",
    )
    loaded_history = {
        r[0] for r in query(warehouse_path, "SELECT DISTINCT invoice_uuid FROM billing_history")
    }
    assert rows == [
        (
            m,
            Decimal(invoices[m]["amount"]),
            paid[invoices[m]["invoice_uuid"]] if invoices[m]["invoice_uuid"] in loaded_history
            else Decimal(0),
            Decimal(invoices[m]["amount"])
            - (paid[invoices[m]["invoice_uuid"]] if invoices[m]["invoice_uuid"] in loaded_history
               else Decimal(0)),
        )
        for m in months
    ]  # fmt: skip


def test_estimates_far_from_their_invoice_warn_naming_the_month(
    sandbox, warehouse_path, pipeline_resources
):
    months = ["2025-12", "2026-01"]
    invoice = sandbox.data.invoice_for("2026-01")
    tolerance = max(Decimal("1.00"), (Decimal(invoice["amount"]) / 100).quantize(Decimal("0.01")))
    point = next(p for p in sandbox.data.insights if p["start_date"].startswith("2026-01"))
    point["total_amount"] = str(Decimal(point["total_amount"]) + 2 * tolerance)
    result = load(sandbox, warehouse_path, pipeline_resources, [INVOICES, INSIGHTS], months)
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    found = checks["estimates_match_invoices"]
    assert not found.passed
    assert found.severity == dg.AssetCheckSeverity.WARN
    assert found.metadata["failing_rows"].value == 1
    assert "| 2026-01 |" in found.metadata["examples"].value

"""Budget and anomaly alerts as asset checks: tell a team before the bill does.

Three checks in one step, run after every load:

- `budget` (on `balance`): each team's open month, to date and forecast (`month_forecast`),
  against its budget (`BUDGET_USD`, or its entry in `BUDGETS`); warn from `BUDGET_WARN_SHARE`
  of it, fail past it. Projects and tag values with a budget in `OWNER_BUDGETS` are judged
  the same way, in every team that has them.
- `cost_spikes` and `new_skus` (on `daily_costs`): the anomalies of the last
  `ALERT_LOOKBACK_DAYS` loaded days, from `cost_anomalies_at(...)` called with the thresholds
  (the `cost_anomalies` view shows the whole history at the defaults).

And one more step, `idle_checks`: `idle_resources` (on `droplets`, after every inventory list
it reads and `invoice_items`): every idle resource (`idle_resources_at(SNAPSHOT_MAX_AGE_DAYS)`)
that cost at least `IDLE_MIN_USD` in the latest closed month, each alerted once per stretch of
idleness.

The rules are `pipeline.alerts.rules`; each alert goes once to every URL of `ALERT_URLS`
(`pipeline.alerts.delivery`). The thresholds come through the `alerts` resource, so they are
bound parameters of the checks' queries rather than constants of a view.
"""

from collections.abc import Iterator, Sequence
from decimal import Decimal

import dagster as dg
import pandas as pd

from pipeline.alerts.delivery import DeliveryReport, already_sent, deliver, record_sent
from pipeline.alerts.rules import (
    BALANCE_ASSET,
    DAILY_COSTS_ASSET,
    FAIL,
    IDLE_ASSET,
    IDLE_RESOURCES,
    OPEN_MONTHS,
    OWNER_SPEND,
    RECENT_ANOMALIES,
    SKU_OWNERS,
    TEAMS,
    Alert,
    BudgetVerdict,
    Thresholds,
    anomaly_alerts,
    evaluate_budgets,
    evaluate_owner_budgets,
    idle_alerts,
)
from pipeline.defs.partitions import WAREHOUSE_POOL
from pipeline.defs.resources import AlertsResource, WarehouseResource
from pipeline.sources import INVOICES
from pipeline.sources.inventory import (
    DROPLETS,
    LOAD_BALANCERS,
    PROJECTS,
    RESERVED_IPS,
    SNAPSHOTS,
    VOLUMES,
)
from pipeline.warehouse.store import Warehouse

BALANCE = dg.AssetKey(BALANCE_ASSET)
DAILY_COSTS = dg.AssetKey(DAILY_COSTS_ASSET)
INVOICE_ITEMS = dg.AssetKey(INVOICES.tables[1].name)
SHOWN_ROWS = 20


# -- the checks ------------------------------------------------------------------------------
CHECKS = {
    "budget": (BALANCE, "Each team's open month, to date and forecast, within its budget."),
    "cost_spikes": (DAILY_COSTS, "No SKU or service cost a day far above its 14-day baseline."),
    "new_skus": (DAILY_COSTS, "No SKU never seen before started costing above NEW_SKU_MIN_USD."),
}
# The idle resources check sits on the droplets and waits for the run's snapshot of every other
# list it reads, and for the invoice items it costs them from.
IDLE = dg.AssetKey(IDLE_ASSET)
IDLE_DEPS = [
    INVOICE_ITEMS,
    *(
        dg.AssetKey(t.name)
        for source in (PROJECTS, DROPLETS, VOLUMES, LOAD_BALANCERS, RESERVED_IPS, SNAPSHOTS)
        for t in source.tables
        if t.name != IDLE_ASSET
    ),
]
IDLE_COLUMNS = [
    "team_name",
    "kind",
    "resource_id",
    "resource_name",
    "region",
    "cost_last_month",
    "month_to_date",
    "idle_since",
]
ANOMALY_COLUMNS = ["usage_date", "team_name", "sku", "service", "region", "cost", "baseline"]


def _table(frame: pd.DataFrame) -> dg.MetadataValue:
    shown = frame.head(SHOWN_ROWS).astype(object)
    shown = shown.where(shown.notna(), "")  # an absent service shows blank, not `nan`
    return dg.MetadataValue.md(shown.astype(str).to_markdown(index=False))


def _delivery_metadata(report: DeliveryReport, alerts: Sequence[Alert]) -> dict[str, object]:
    keys = {alert.key for alert in alerts}
    return {
        "notifications_sent": sum(1 for key, _ in report.sent if key in keys),
        "notifications_already_sent": sum(1 for key, _ in report.skipped if key in keys),
        "notifications_failed": sum(1 for key, _ in report.failed if key in keys),
    }


def budget_result(
    verdict: BudgetVerdict, report: DeliveryReport, owners: BudgetVerdict | None = None
) -> dg.AssetCheckResult:
    alerts = [*verdict.alerts, *(owners.alerts if owners else [])]
    levels = {alert.level for alert in alerts}
    metadata: dict[str, object] = {
        "teams_over_warning": len(verdict.alerts),
        **_delivery_metadata(report, alerts),
    }
    if not verdict.rows.empty:
        metadata["budgets"] = _table(verdict.rows)
    if verdict.unknown_keys:
        metadata["budgets_naming_no_team"] = ", ".join(verdict.unknown_keys)
    if owners is not None:
        metadata["owners_over_warning"] = len(owners.alerts)
        if not owners.rows.empty:
            metadata["owner_budgets"] = _table(owners.rows)
        if owners.unknown_keys:
            metadata["owner_budgets_with_no_spend"] = ", ".join(owners.unknown_keys)
    return dg.AssetCheckResult(
        asset_key=BALANCE,
        check_name="budget",
        passed=not alerts,
        severity=dg.AssetCheckSeverity.ERROR if FAIL in levels else dg.AssetCheckSeverity.WARN,
        description="; ".join(alert.title for alert in alerts) or None,
        metadata=metadata,
    )


def owner_verdict(store: Warehouse, thresholds: Thresholds) -> BudgetVerdict | None:
    """The open months per project and tag value against OWNER_BUDGETS, if any are set."""
    if not thresholds.owner_budgets:
        return None
    spend = store.query(OWNER_SPEND, {"owners": list(thresholds.owner_budgets)})
    return evaluate_owner_budgets(spend, thresholds)


def sku_owners(store: Warehouse, anomalies: pd.DataFrame) -> pd.DataFrame | None:
    """The projects and tag values behind the anomalies' SKUs (rows of SKU_OWNERS)."""
    if anomalies.empty:
        return None
    return store.query(SKU_OWNERS, {"teams": sorted(set(anomalies["team_uuid"].astype(str)))})


def anomaly_result(
    name: str, found: pd.DataFrame, alerts: Sequence[Alert], report: DeliveryReport
) -> dg.AssetCheckResult:
    mine = [alert for alert in alerts if alert.check == name]
    metadata: dict[str, object] = {"anomalies": len(found), **_delivery_metadata(report, mine)}
    if len(found):
        metadata["found"] = _table(found[[*ANOMALY_COLUMNS, "why"]])
    return dg.AssetCheckResult(
        asset_key=DAILY_COSTS,
        check_name=name,
        passed=found.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def deliver_once(
    context: dg.AssetCheckExecutionContext,
    store: Warehouse,
    alerts: AlertsResource,
    found: Sequence[Alert],
) -> DeliveryReport:
    """Send each alert not yet delivered to every ALERT_URLS entry, and record what went."""
    urls = alerts.destinations()
    if not found or not urls:
        return DeliveryReport()
    done = already_sent(store, [alert.key for alert in found])
    report = deliver(found, urls, alerts.ui_url, context.log, run_id=context.run.run_id, done=done)
    record_sent(store, found, report)
    return report


@dg.multi_asset_check(
    name="alerts_checks",
    specs=[
        dg.AssetCheckSpec(
            name,
            asset=asset,
            description=description,
            # The budget reads the run rate; spikes read invoice lines for each SKU's service.
            additional_deps=[DAILY_COSTS] if asset == BALANCE else [INVOICE_ITEMS],
        )
        for name, (asset, description) in CHECKS.items()
    ],
    can_subset=True,
    pool=WAREHOUSE_POOL,
)
def alerts_checks(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> Iterator[dg.AssetCheckResult]:
    """Budgets and anomalies in one step; their alerts go out once each (never failing the
    step: a delivery that fails is logged and retried on the next run). The warehouse is read
    before and written after the deliveries, never held while a webhook answers."""
    with warehouse.publishing(context.log) as store:  # what record_sent wrote, published
        results = list(_alerts(context, store, alerts))
    yield from results


def _alerts(
    context: dg.AssetCheckExecutionContext, store: Warehouse, alerts: AlertsResource
) -> Iterator[dg.AssetCheckResult]:
    thresholds = alerts.thresholds()
    selected = {key.name for key in context.selected_asset_check_keys}
    verdict = owners = None
    if "budget" in selected:
        verdict = evaluate_budgets(store.query(OPEN_MONTHS), store.query(TEAMS), thresholds)
        owners = owner_verdict(store, thresholds)
    spikes = news = behind = None
    if selected & {"cost_spikes", "new_skus"}:
        anomalies = store.query(RECENT_ANOMALIES, thresholds.anomaly_params())
        behind = sku_owners(store, anomalies)
        if "cost_spikes" in selected:
            spikes = anomalies[anomalies["kind"] == "spike"]
        if "new_skus" in selected:
            news = anomalies[anomalies["kind"] == "new_sku"]
    found = [*(verdict.alerts if verdict else []), *(owners.alerts if owners else [])]
    for frame in (spikes, news):
        if frame is not None:
            found += anomaly_alerts(frame, behind)
    report = deliver_once(context, store, alerts, found)
    if verdict is not None:
        yield budget_result(verdict, report, owners)
    if spikes is not None:
        yield anomaly_result("cost_spikes", spikes, found, report)
    if news is not None:
        yield anomaly_result("new_skus", news, found, report)


# -- idle resources --------------------------------------------------------------------------
@dg.multi_asset_check(
    name="idle_checks",
    specs=[
        dg.AssetCheckSpec(
            "idle_resources",
            asset=IDLE,
            description="No resource idle (SNAPSHOT_MAX_AGE_DAYS for snapshots) that cost at "
            "least IDLE_MIN_USD last month.",
            additional_deps=IDLE_DEPS,
        )
    ],
    pool=WAREHOUSE_POOL,
)
def idle_checks(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, alerts: AlertsResource
) -> Iterator[dg.AssetCheckResult]:
    """Idle resources worth a message, each sent once (`alerts_sent`), never failing the step."""
    with warehouse.publishing(context.log) as store:
        thresholds = alerts.thresholds()
        found = store.query(
            IDLE_RESOURCES,
            {
                "max_age_days": thresholds.snapshot_max_age_days,
                "min_usd": thresholds.idle_min_usd,
            },
        )
        raised = idle_alerts(found)
        report = deliver_once(context, store, alerts, raised)
    metadata: dict[str, object] = {
        "idle_resources": len(found),
        # Exact, as text: what they cost together in their teams' latest closed months.
        "idle_cost_last_month": str(sum(found["cost_last_month"], Decimal("0.00"))),
        "idle_min_usd": str(thresholds.idle_min_usd),
        **_delivery_metadata(report, raised),
    }
    if len(found):
        metadata["found"] = _table(found[IDLE_COLUMNS])
    yield dg.AssetCheckResult(
        asset_key=IDLE,
        check_name="idle_resources",
        passed=found.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )

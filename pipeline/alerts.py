"""Budget and anomaly alerts: tell a team before the bill does.

Three asset checks in one step, run after every load:

- `budget` (on `balance`): each team's open month, to date and forecast (`month_forecast`),
  against its budget (`BUDGET_USD`, or its entry in `BUDGETS`); warn from `BUDGET_WARN_SHARE`
  of it, fail past it.
- `cost_spikes` and `new_skus` (on `daily_costs`): the anomalies of the last
  `ALERT_LOOKBACK_DAYS` loaded days, from `cost_anomalies_at(...)` called with the settings'
  thresholds (the `cost_anomalies` view shows the whole history at the defaults).

Each alert has a stable key; `pipeline.notify` sends it once to every URL of `ALERT_URLS`.
Thresholds come from the settings at run time, so they are bound parameters of the checks'
queries rather than constants of a view.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import dagster as dg
import pandas as pd

from pipeline.notify import DeliveryReport, deliver
from pipeline.partitions import WAREHOUSE_POOL
from pipeline.resources import WarehouseResource
from pipeline.settings import Settings, get_settings
from pipeline.warehouse.store import Warehouse

BALANCE = dg.AssetKey("balance")
DAILY_COSTS = dg.AssetKey("daily_costs")
INVOICE_ITEMS = dg.AssetKey("invoice_items")
WARN, FAIL = "warn", "fail"
SHOWN_ROWS = 20
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Alert:
    """One thing worth a message: its stable key (the dedup key), who, what and the numbers."""

    key: str
    check: str  # the asset check that raised it
    asset: str  # the asset the check watches (for the link into the UI)
    kind: str  # budget, spike, new_sku
    level: str  # warn or fail
    team_uuid: str
    team_name: str
    title: str
    lines: tuple[str, ...] = field(default=())

    def body(self, ui_url: str, run_id: str | None) -> str:
        """The message's text: the facts, then links into the Dagster UI."""
        links = [f"Check: {ui_url}/assets/{self.asset}?view=checks"]
        if run_id:
            links.insert(0, f"Run: {ui_url}/runs/{run_id}")
        return "\n".join([*self.lines, f"Alert: {self.key}", *links])


def money(value: Decimal | None) -> str:
    return "n/a" if value is None else f"${Decimal(value).quantize(CENT):,}"


# -- budget ----------------------------------------------------------------------------------
def budget_of(settings: Settings, team_uuid: str, team_name: str) -> Decimal | None:
    """The team's budget: its entry in BUDGETS by uuid, else by name, else BUDGET_USD."""
    budgets = settings.budgets
    if team_uuid in budgets:
        return budgets[team_uuid]
    return budgets.get(team_name, settings.budget_usd)


def budget_level(
    month_to_date: Decimal, forecast: Decimal | None, budget: Decimal, warn_share: Decimal
) -> str | None:
    """Fail when month to date or the forecast is past the budget; warn from the share on."""
    amount = max(month_to_date, forecast if forecast is not None else month_to_date)
    if amount > budget:
        return FAIL
    if amount >= warn_share * budget:
        return WARN
    return None


@dataclass(frozen=True)
class BudgetVerdict:
    rows: pd.DataFrame  # one row per team and open month, with budget, share and level
    alerts: list[Alert]
    unknown_keys: list[str]  # BUDGETS entries naming no team in the warehouse


def evaluate_budgets(store: Warehouse, settings: Settings) -> BudgetVerdict:
    """Every team's open month against its budget (teams without a budget are listed, not
    judged)."""
    months = store.query(
        "SELECT month, month_to_date, forecast, run_rate, days_loaded, days_in_month, "
        "team_uuid, team_name FROM month_forecast WHERE is_open ORDER BY team_name, team_uuid"
    )
    teams = store.query("SELECT team_uuid, team_name FROM teams")
    known = set(teams["team_uuid"]) | set(teams["team_name"])
    records, alerts = [], []
    for row in months.itertuples(index=False):
        team_uuid, team_name = str(row.team_uuid), str(row.team_name)
        mtd = Decimal(row.month_to_date)
        forecast = None if pd.isna(row.forecast) else Decimal(row.forecast)
        run_rate = None if pd.isna(row.run_rate) else Decimal(row.run_rate)
        budget = budget_of(settings, team_uuid, team_name)
        level = None
        if budget is not None:
            level = budget_level(mtd, forecast, budget, settings.budget_warn_share)
        share = (
            f"{(max(mtd, forecast or mtd) / budget * 100).quantize(Decimal('0.1'))} %"
            if budget
            else "n/a"
        )
        records.append(
            {
                "team": team_name,
                "month": row.month,
                "month_to_date": money(mtd),
                "forecast": money(forecast),
                "budget": money(budget) if budget is not None else "no budget",
                "share_of_budget": share,
                "level": level or "ok",
            }
        )
        if level is None or budget is None:
            continue
        verb = "is forecast past" if level == FAIL else "is forecast to reach"
        if level == FAIL and mtd > budget:
            verb = "is past"
        alerts.append(
            Alert(
                key=f"budget:{team_uuid}:{row.month}:{level}",
                check="budget",
                asset=BALANCE.to_user_string(),
                kind="budget",
                level=level,
                team_uuid=team_uuid,
                team_name=team_name,
                title=f"Budget {'exceeded' if level == FAIL else 'warning'}: {team_name}, "
                f"{row.month}",
                lines=(
                    f"Team {team_name} ({team_uuid}) {verb} its budget for {row.month}.",
                    f"Month to date: {money(mtd)}; forecast for the month: {money(forecast)} "
                    f"({share} of the budget of {money(budget)}).",
                    f"Run rate: {money(run_rate)} a day over the last "
                    f"{min(7, int(row.days_loaded))} loaded days ({row.days_loaded} of "
                    f"{row.days_in_month} days loaded); the forecast adds it for each day left."
                    if run_rate is not None
                    else "No Billing Insights day of the month is loaded yet: the forecast is "
                    "the month to date.",
                ),
            )
        )
    unknown = sorted(key for key in settings.budgets if key not in known)
    return BudgetVerdict(pd.DataFrame.from_records(records), alerts, unknown)


# -- anomalies -------------------------------------------------------------------------------
RECENT_ANOMALIES = """
    WITH newest AS (SELECT team_uuid, max(usage_date) AS last_day FROM daily_costs GROUP BY ALL)
    SELECT a.*
    FROM cost_anomalies_at($mads, $min_usd, $min_ratio, $new_sku_min) AS a
    JOIN newest AS n ON n.team_uuid IS NOT DISTINCT FROM a.team_uuid
    WHERE a.usage_date > n.last_day - CAST($lookback AS INTEGER)
    ORDER BY a.usage_date, a.team_name, a.kind, a.grain, a.sku, a.service
"""


def recent_anomalies(store: Warehouse, settings: Settings) -> pd.DataFrame:
    """The anomalies of each team's last ALERT_LOOKBACK_DAYS loaded days, at the settings'
    thresholds."""
    return store.query(
        RECENT_ANOMALIES,
        {
            "mads": settings.spike_mads,
            "min_usd": settings.spike_min_usd,
            "min_ratio": settings.spike_min_ratio,
            "new_sku_min": settings.new_sku_min_usd,
            "lookback": settings.alert_lookback_days,
        },
    )


def anomaly_alert(row: pd.Series) -> Alert:
    """A cost_anomalies row as an alert (a warning: a signal to look, not a failed load)."""
    team_uuid, team_name = str(row["team_uuid"]), str(row["team_name"])
    day = pd.Timestamp(row["usage_date"]).date().isoformat()
    cost, baseline = Decimal(row["cost"]), Decimal(row["baseline"])
    if row["kind"] == "new_sku":
        subject = f"new SKU {row['sku']}"
        facts = f"costs {money(cost)} on {day}; it had cost nothing before."
        check = "new_skus"
    else:
        subject = f"SKU {row['sku']}" if row["grain"] == "sku" else f"service {row['service']}"
        facts = (
            f"cost {money(cost)} on {day}, {money(Decimal(row['excess']))} above its baseline "
            f"of {money(baseline)} a day (its median over the days it cost in the 14 before; "
            f"MAD {money(Decimal(row['mad']))})."
        )
        check = "cost_spikes"
    where = [f"Region: {row['region']}."]
    if row["grain"] == "sku" and not pd.isna(row["service"]):
        where.append(f"Service: {row['service']}.")
    return Alert(
        key=str(row["alert_key"]),
        check=check,
        asset=DAILY_COSTS.to_user_string(),
        kind=str(row["kind"]),
        level=WARN,
        team_uuid=team_uuid,
        team_name=team_name,
        title=f"Cost {'anomaly' if row['kind'] == 'spike' else 'from a new SKU'}: "
        f"{team_name}, {subject}, {day}",
        lines=(f"Team {team_name} ({team_uuid}): {subject} {facts}", " ".join(where)),
    )


# -- the checks ------------------------------------------------------------------------------
CHECKS = {
    "budget": (BALANCE, "Each team's open month, to date and forecast, within its budget."),
    "cost_spikes": (DAILY_COSTS, "No SKU or service cost a day far above its 14-day baseline."),
    "new_skus": (DAILY_COSTS, "No SKU never seen before started costing above NEW_SKU_MIN_USD."),
}
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


def budget_result(verdict: BudgetVerdict, report: DeliveryReport) -> dg.AssetCheckResult:
    levels = {alert.level for alert in verdict.alerts}
    metadata: dict[str, object] = {
        "teams_over_warning": len(verdict.alerts),
        **_delivery_metadata(report, verdict.alerts),
    }
    if not verdict.rows.empty:
        metadata["budgets"] = _table(verdict.rows)
    if verdict.unknown_keys:
        metadata["budgets_naming_no_team"] = ", ".join(verdict.unknown_keys)
    return dg.AssetCheckResult(
        asset_key=BALANCE,
        check_name="budget",
        passed=not verdict.alerts,
        severity=dg.AssetCheckSeverity.ERROR if FAIL in levels else dg.AssetCheckSeverity.WARN,
        description="; ".join(alert.title for alert in verdict.alerts) or None,
        metadata=metadata,
    )


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
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.AssetCheckResult]:
    """Budgets and anomalies in one step; their alerts go out once each (never failing the
    step: a delivery that fails is logged and retried on the next run)."""
    settings = get_settings()
    with warehouse.session() as store:
        selected = {key.name for key in context.selected_asset_check_keys}
        verdict = evaluate_budgets(store, settings) if "budget" in selected else None
        spikes = news = None
        if selected & {"cost_spikes", "new_skus"}:
            anomalies = recent_anomalies(store, settings)
            if "cost_spikes" in selected:
                spikes = anomalies[anomalies["kind"] == "spike"]
            if "new_skus" in selected:
                news = anomalies[anomalies["kind"] == "new_sku"]
        alerts = list(verdict.alerts) if verdict else []
        for found in (spikes, news):
            if found is not None:
                alerts += [anomaly_alert(row) for _, row in found.iterrows()]
        report = deliver(alerts, settings, store, context.log, run_id=context.run.run_id)
        if verdict is not None:
            yield budget_result(verdict, report)
        if spikes is not None:
            yield anomaly_result("cost_spikes", spikes, alerts, report)
        if news is not None:
            yield anomaly_result("new_skus", news, alerts, report)


ALERT_CHECKS = [alerts_checks]

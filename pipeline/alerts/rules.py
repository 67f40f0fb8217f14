"""The budget and anomaly rules: which figures are worth a message, and what it says.

Pure functions over frames and decimals, so a rule can be tested on a hand-made table and the
Dagster checks (`pipeline.defs.alert_checks`) only read the views, call these and report. The
queries the rules read are here too, beside the rules that interpret them; the thresholds come
in as a `Thresholds`, built from the settings by the alerts resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from pipeline.alerts.keys import budget_key, idle_key
from pipeline.settings.fields import AlertFields
from pipeline.sources import BALANCE, INSIGHTS
from pipeline.sources.inventory import DROPLETS

# The assets the checks watch, for the links in a message: the sources' own tables.
BALANCE_ASSET = BALANCE.tables[0].name
DAILY_COSTS_ASSET = INSIGHTS.tables[0].name
# The idle resources check sits on the droplets (it reads every list and the invoice items).
IDLE_ASSET = DROPLETS.tables[0].name
WARN, FAIL = "warn", "fail"
CENT = Decimal("0.01")
RUN_RATE_DAYS = 7  # month_forecast's run rate: the mean of the month's last 7 loaded days

OPEN_MONTHS = """
    SELECT month, month_to_date, forecast, run_rate, days_loaded, days_in_month,
           team_uuid, team_name
    FROM month_forecast WHERE is_open ORDER BY team_name, team_uuid
"""
TEAMS = "SELECT team_uuid, team_name FROM teams"
# Each owner's spend in every team's open month (the month of its preview: its items), beside
# the team's month to date and forecast, when loaded: an owner's forecast grows its month to
# date as the team's does.
OWNER_SPEND = """
    WITH open_months AS (
        SELECT team_uuid, invoice_period AS month FROM invoices WHERE status = 'preview'
    ), owners AS (
        SELECT team_uuid, invoice_period, 'project:' || project_name AS owner, amount
        FROM monthly_spend_by_project WHERE project_name <> '(no project)'
        UNION ALL
        SELECT team_uuid, invoice_period, 'tag:' || tag_key || ':' || tag_value, amount
        FROM cost_by_tag WHERE tag_value IS NOT NULL
    )
    SELECT m.month, o.owner, o.amount AS month_to_date,
           f.month_to_date AS team_month_to_date, f.forecast AS team_forecast,
           m.team_uuid, coalesce(t.team_name, m.team_uuid) AS team_name
    FROM open_months AS m
    JOIN owners AS o ON o.team_uuid = m.team_uuid AND o.invoice_period = m.month
    LEFT JOIN month_forecast AS f ON f.team_uuid = m.team_uuid AND f.month = m.month
    LEFT JOIN teams AS t ON t.team_uuid = m.team_uuid
    WHERE list_contains(CAST($owners AS VARCHAR[]), o.owner)
    ORDER BY team_name, m.team_uuid, o.owner
"""
# The projects and tag values behind each SKU's cost in a month: the invoice lines the SKU's
# Insights points describe (the Insights tie), allocated to their resources.
SKU_OWNERS = """
    SELECT team_uuid, invoice_period, sku, owner, amount
    FROM sku_owners
    WHERE list_contains(CAST($teams AS VARCHAR[]), team_uuid)
    ORDER BY team_uuid, invoice_period, sku, amount DESC, owner
"""
RECENT_ANOMALIES = """
    WITH newest AS (SELECT team_uuid, max(usage_date) AS last_day FROM daily_costs GROUP BY ALL)
    SELECT a.*
    FROM cost_anomalies_at($mads, $min_usd, $min_ratio, $new_sku_min) AS a
    JOIN newest AS n ON n.team_uuid IS NOT DISTINCT FROM a.team_uuid
    WHERE a.usage_date > n.last_day - CAST($lookback AS INTEGER)
    ORDER BY a.usage_date, a.team_name, a.kind, a.grain, a.sku, a.service
"""


# The thresholds' defaults, written once: on the alerts resource's own fields.
_DEFAULT = AlertFields()


@dataclass(frozen=True)
class Thresholds:
    """What the rules are judged against (BUDGET_USD, BUDGETS, ANOMALY_*, …), as decimals.
    `Thresholds.of(fields)` reads them from the alerts resource's fields."""

    budget_usd: Decimal | None = None
    budgets: Mapping[str, Decimal] = field(default_factory=dict)  # by team uuid or name
    # By owner, in every team: `project:<name>` or `tag:<key>:<value>` (OWNER_BUDGETS).
    owner_budgets: Mapping[str, Decimal] = field(default_factory=dict)
    budget_warn_share: Decimal = Decimal(_DEFAULT.budget_warn_share)
    spike_mads: Decimal = Decimal(_DEFAULT.spike_mads)
    spike_min_usd: Decimal = Decimal(_DEFAULT.spike_min_usd)
    spike_min_ratio: Decimal = Decimal(_DEFAULT.spike_min_ratio)
    new_sku_min_usd: Decimal = Decimal(_DEFAULT.new_sku_min_usd)
    alert_lookback_days: int = _DEFAULT.alert_lookback_days
    idle_min_usd: Decimal = Decimal(_DEFAULT.idle_min_usd)
    snapshot_max_age_days: int = _DEFAULT.snapshot_max_age_days

    @classmethod
    def of(cls, fields: AlertFields) -> Thresholds:
        """The alerts resource's fields (decimal strings, as Dagster's config holds them), read
        exactly."""
        return cls(
            budget_usd=None if fields.budget_usd is None else Decimal(fields.budget_usd),
            budgets={key: Decimal(amount) for key, amount in fields.budgets.items()},
            owner_budgets={key: Decimal(amount) for key, amount in fields.owner_budgets.items()},
            budget_warn_share=Decimal(fields.budget_warn_share),
            spike_mads=Decimal(fields.spike_mads),
            spike_min_usd=Decimal(fields.spike_min_usd),
            spike_min_ratio=Decimal(fields.spike_min_ratio),
            new_sku_min_usd=Decimal(fields.new_sku_min_usd),
            alert_lookback_days=fields.alert_lookback_days,
            idle_min_usd=Decimal(fields.idle_min_usd),
            snapshot_max_age_days=fields.snapshot_max_age_days,
        )

    def anomaly_params(self) -> dict[str, object]:
        """RECENT_ANOMALIES' bound parameters."""
        return {
            "mads": self.spike_mads,
            "min_usd": self.spike_min_usd,
            "min_ratio": self.spike_min_ratio,
            "new_sku_min": self.new_sku_min_usd,
            "lookback": self.alert_lookback_days,
        }


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
def budget_of(thresholds: Thresholds, team_uuid: str, team_name: str) -> Decimal | None:
    """The team's budget: its entry in BUDGETS by uuid, else by name, else BUDGET_USD."""
    budgets = thresholds.budgets
    if team_uuid in budgets:
        return budgets[team_uuid]
    return budgets.get(team_name, thresholds.budget_usd)


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


def _decimal(value: object) -> Decimal | None:
    return None if pd.isna(value) else Decimal(value)


@dataclass(frozen=True)
class Judged:
    """One open month of one team, or of one owner in a team, against its budget."""

    team_uuid: str
    team_name: str
    month: str
    month_to_date: Decimal
    forecast: Decimal | None
    budget: Decimal | None
    warn_share: Decimal
    owner: str | None = None  # `project:<name>` or `tag:<key>:<value>`; None: the team itself

    @property
    def level(self) -> str | None:
        if self.budget is None:
            return None
        return budget_level(self.month_to_date, self.forecast, self.budget, self.warn_share)

    @property
    def share(self) -> str:
        if not self.budget:
            return "n/a"
        reached = max(self.month_to_date, self.forecast or self.month_to_date)
        return f"{(reached / self.budget * 100).quantize(Decimal('0.1'))} %"

    def record(self) -> dict[str, str]:
        """The check's metadata row."""
        return {
            "team": self.team_name,
            **({"owner": self.owner} if self.owner else {}),
            "month": self.month,
            "month_to_date": money(self.month_to_date),
            "forecast": money(self.forecast),
            "budget": money(self.budget) if self.budget is not None else "no budget",
            "share_of_budget": self.share,
            "level": self.level or "ok",
        }

    def alert(self, more: tuple[str, ...] = ()) -> Alert | None:
        """The alert, when the level calls for one; `more`: lines after the figures."""
        level, budget = self.level, self.budget
        if level is None or budget is None:
            return None
        mtd, team = self.month_to_date, f"{self.team_name} ({self.team_uuid})"
        verb = "is forecast past" if level == FAIL else "is forecast to reach"
        if level == FAIL and mtd > budget:
            verb = "is past"
        who = f"{self.owner} in team {team}" if self.owner else f"Team {team}"
        title_who = f"{self.owner} in {self.team_name}" if self.owner else self.team_name
        return Alert(
            key=budget_key(self.team_uuid, self.month, level, self.owner),
            check="budget",
            asset=BALANCE_ASSET,
            kind="budget",
            level=level,
            team_uuid=self.team_uuid,
            team_name=self.team_name,
            title=f"Budget {'exceeded' if level == FAIL else 'warning'}: {title_who}, {self.month}",
            lines=(
                f"{who} {verb} its budget for {self.month}.",
                f"Month to date: {money(mtd)}; forecast for the month: {money(self.forecast)} "
                f"({self.share} of the budget of {money(budget)}).",
                *more,
            ),
        )


def _run_rate_line(row: object) -> str:
    run_rate = _decimal(row.run_rate)
    if run_rate is None:
        return (
            "No Billing Insights day of the month is loaded yet: the forecast is the month to date."
        )
    return (
        f"Run rate: {money(run_rate)} a day over the last "
        f"{min(RUN_RATE_DAYS, int(row.days_loaded))} loaded days ({row.days_loaded} of "
        f"{row.days_in_month} days loaded); the forecast adds it for each day left."
    )


def verdict_of(judged: list[tuple[Judged, tuple[str, ...]]], unknown: list[str]) -> BudgetVerdict:
    alerts = [a for j, more in judged if (a := j.alert(more)) is not None]
    return BudgetVerdict(
        pd.DataFrame.from_records([j.record() for j, _ in judged]), alerts, unknown
    )


def evaluate_budgets(
    months: pd.DataFrame, teams: pd.DataFrame, thresholds: Thresholds
) -> BudgetVerdict:
    """Every team's open month (rows of OPEN_MONTHS) against its budget; teams without a budget
    are listed, not judged. `teams` (rows of TEAMS) tells which BUDGETS keys name no team."""
    known = set(teams["team_uuid"]) | set(teams["team_name"])
    judged = []
    for row in months.itertuples(index=False):
        team_uuid, team_name = str(row.team_uuid), str(row.team_name)
        judged.append(
            (
                Judged(
                    team_uuid,
                    team_name,
                    row.month,
                    Decimal(row.month_to_date),
                    _decimal(row.forecast),
                    budget_of(thresholds, team_uuid, team_name),
                    thresholds.budget_warn_share,
                ),
                (_run_rate_line(row),),
            )
        )
    return verdict_of(judged, sorted(key for key in thresholds.budgets if key not in known))


def owner_forecast(row: object) -> Decimal | None:
    """The owner's month to date grown as the team's: × (team forecast / team month to date)."""
    team_mtd, team_forecast = _decimal(row.team_month_to_date), _decimal(row.team_forecast)
    if team_mtd is None or team_forecast is None or team_mtd <= 0:
        return None
    return (Decimal(row.month_to_date) * team_forecast / team_mtd).quantize(CENT)


def evaluate_owner_budgets(spend: pd.DataFrame, thresholds: Thresholds) -> BudgetVerdict:
    """Every team's open month per project and tag value (rows of OWNER_SPEND) against the
    owner's budget in OWNER_BUDGETS, judged like a team's budget."""
    judged = [
        (
            Judged(
                str(row.team_uuid),
                str(row.team_name),
                row.month,
                Decimal(row.month_to_date),
                owner_forecast(row),
                thresholds.owner_budgets[str(row.owner)],
                thresholds.budget_warn_share,
                owner=str(row.owner),
            ),
            (),
        )
        for row in spend.itertuples(index=False)
    ]
    seen = {j.owner for j, _ in judged}
    return verdict_of(judged, sorted(k for k in thresholds.owner_budgets if k not in seen))


# -- idle resources --------------------------------------------------------------------------
# Every team's idle resources (SNAPSHOT_MAX_AGE_DAYS for snapshots) that cost at least
# IDLE_MIN_USD in the latest closed month, largest first.
IDLE_RESOURCES = """
    SELECT team_uuid, team_name, kind, resource_id, resource_name, region, invoice_period,
           cost_last_month, month_to_date, idle_since, project_name
    FROM idle_resources_at(CAST($max_age_days AS INTEGER))
    WHERE cost_last_month >= CAST($min_usd AS DECIMAL(18, 2))
    ORDER BY cost_last_month DESC, team_name, kind, resource_id
"""
IDLE_NOUNS = {
    "unattached_volume": "volume attached to no droplet",
    "load_balancer_without_targets": "load balancer with no droplets and no tag",
    "powered_off_droplet": "powered-off droplet (billed in full)",
    "unassigned_reserved_ip": "reserved IP assigned to no droplet",
    "old_snapshot": "snapshot",
}


def idle_alert(row: pd.Series) -> Alert:
    """An idle_resources row as an alert (a warning): what it is, since when, what it cost."""
    team_uuid, team_name = str(row["team_uuid"]), str(row["team_name"])
    since = pd.Timestamp(row["idle_since"]).tz_convert("UTC").date().isoformat()
    kind, resource_id = str(row["kind"]), str(row["resource_id"])
    name = "" if pd.isna(row["resource_name"]) else f" {row['resource_name']}"
    what = f"{IDLE_NOUNS.get(kind, kind)}{name} ({resource_id})"
    project = "" if pd.isna(row["project_name"]) else f" Project: {row['project_name']}."
    return Alert(
        key=idle_key(team_uuid, kind, resource_id, since),
        check="idle_resources",
        asset=IDLE_ASSET,
        kind="idle",
        level=WARN,
        team_uuid=team_uuid,
        team_name=team_name,
        title=f"Idle resource: {team_name}, {what}, {money(Decimal(row['cost_last_month']))} "
        f"in {row['invoice_period']}",
        lines=(
            f"Team {team_name} ({team_uuid}): {what} is idle since {since}; it cost "
            f"{money(Decimal(row['cost_last_month']))} in {row['invoice_period']} and "
            f"{money(Decimal(row['month_to_date']))} so far this month.",
            f"Region: {row['region']}.{project}",
        ),
    )


def idle_alerts(found: pd.DataFrame) -> list[Alert]:
    return [idle_alert(row) for _, row in found.iterrows()]


# -- anomalies -------------------------------------------------------------------------------
def anomaly_alert(row: pd.Series, owners: pd.DataFrame | None = None) -> Alert:
    """A cost_anomalies row as an alert (a warning: a signal to look, not a failed load); with
    `owners` (rows of SKU_OWNERS), it names the projects and tag values behind the SKU."""
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
    behind = _owners_of(row, owners)
    return Alert(
        key=str(row["alert_key"]),
        check=check,
        asset=DAILY_COSTS_ASSET,
        kind=str(row["kind"]),
        level=WARN,
        team_uuid=team_uuid,
        team_name=team_name,
        title=f"Cost {'anomaly' if row['kind'] == 'spike' else 'from a new SKU'}: "
        f"{team_name}, {subject}, {day}",
        lines=(f"Team {team_name} ({team_uuid}): {subject} {facts}", " ".join(where), *behind),
    )


def _owners_of(row: pd.Series, owners: pd.DataFrame | None) -> tuple[str, ...]:
    """'Projects: web ($1.00), …' and 'Tags: env:prod ($1.00), …' for the anomaly's SKU and
    month, when its invoice lines tie to resources; nothing when they do not."""
    if owners is None or owners.empty or row["grain"] != "sku" or pd.isna(row["sku"]):
        return ()
    month = pd.Timestamp(row["usage_date"]).strftime("%Y-%m")
    mine = owners[
        (owners["team_uuid"] == row["team_uuid"])
        & (owners["invoice_period"] == month)
        & (owners["sku"] == row["sku"])
    ]
    lines = []
    for kind, label in (("project:", "Projects"), ("tag:", "Tags")):
        found = mine[mine["owner"].str.startswith(kind)]
        if not found.empty:
            named = ", ".join(
                f"{o.removeprefix(kind)} ({money(Decimal(a))})"
                for o, a in zip(found["owner"], found["amount"], strict=True)
            )
            lines.append(f"{label} behind it this month: {named}.")
    return tuple(lines)


def anomaly_alerts(found: pd.DataFrame, owners: pd.DataFrame | None = None) -> list[Alert]:
    return [anomaly_alert(row, owners) for _, row in found.iterrows()]

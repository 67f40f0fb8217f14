"""Every query the dashboard runs, by name, over the documented views only.

The dashboard and an analyst's SQL never disagree because they are the same SQL: the app reads
nothing but these, and the tests run the same text against the same file. Each query takes named
parameters: `$teams` (a list of team uuids), `$first` / `$last` (`YYYY-MM`, the months filter),
and where said, `$project`, `$tag_key`, `$tag_value`, `$days`, `$max_age_days`
(SNAPSHOT_MAX_AGE_DAYS).

`Reader` opens the published warehouse read-only for one query at a time and closes it at once:
a held connection would keep the old file's inode alive and, on an older single-file warehouse,
block the loader's open. The loader never opens the published file, it replaces it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipeline.warehouse.sample_data import holds_sample_data

# The views the allocation work (cost by tag and resource, coverage) adds; an older warehouse
# lacks them and the dashboard says so in that panel.
ALLOCATION_VIEWS = ("cost_by_tag", "cost_by_resource", "allocation_coverage")

TEAMS = "(SELECT unnest(CAST($teams AS VARCHAR[])))"
MONTHS = "BETWEEN $first AND $last"

QUERIES: dict[str, str] = {
    # Every team any view knows, named as GET /v2/account last named it.
    "teams": """
        SELECT team_uuid, any_value(team_name) AS team_name FROM (
            SELECT team_uuid, team_name FROM monthly_spend_by_product
            UNION ALL SELECT team_uuid, team_name FROM invoice_reconciliation
            UNION ALL SELECT team_uuid, team_name FROM month_forecast
        ) WHERE team_uuid IS NOT NULL
        GROUP BY team_uuid ORDER BY team_name, team_uuid
    """,
    "months": """
        SELECT DISTINCT invoice_period FROM monthly_spend_by_product ORDER BY invoice_period
    """,
    "projects": """
        SELECT DISTINCT project_name FROM monthly_spend_by_project
        WHERE team_uuid IN {teams} ORDER BY project_name
    """,
    # Landing page: the newest month whose invoices are final, and their total.
    "last_closed_month": """
        SELECT team_uuid, invoice_period, sum(invoice_amount) AS invoice_total
        FROM invoice_reconciliation
        WHERE status = 'final' AND team_uuid IN {teams}
        GROUP BY team_uuid, invoice_period
        QUALIFY row_number() OVER (PARTITION BY team_uuid ORDER BY invoice_period DESC) = 1
    """,
    # Landing page: the open month so far, as the preview invoice says.
    "open_month_to_date": """
        SELECT team_uuid, invoice_period, month_to_date, as_of,
               last_period, last_month_same_day_prorated
        FROM month_to_date WHERE team_uuid IN {teams}
        QUALIFY row_number() OVER (PARTITION BY team_uuid ORDER BY invoice_period DESC) = 1
    """,
    # Landing page: the open month's month-end forecast (what the budget check judges).
    "forecast": """
        SELECT team_uuid, month, month_to_date AS forecast_basis, run_rate, forecast,
               days_loaded, days_in_month
        FROM month_forecast WHERE is_open AND team_uuid IN {teams}
    """,
    # Monthly spend by product, narrowed to one project when $project is set.
    "monthly_by_product": """
        SELECT x_InvoicePeriod AS invoice_period, ServiceName AS product,
               sum(BilledCost) AS amount, BillingAccountName AS team_name
        FROM focus_costs
        WHERE BillingAccountId IN {teams} AND x_InvoicePeriod {months}
          AND ($project IS NULL OR x_ProjectName = $project)
        GROUP BY ALL ORDER BY invoice_period, product
    """,
    "monthly_by_project": """
        SELECT invoice_period, project_name, amount, is_partial, team_name
        FROM monthly_spend_by_project
        WHERE team_uuid IN {teams} AND invoice_period {months}
        ORDER BY invoice_period, project_name
    """,
    # Daily cost, the last $days loaded days of each team (Billing Insights estimates).
    "daily_by_sku": """
        WITH newest AS (
            SELECT team_uuid, max(usage_date) AS last_day FROM daily_spend_by_sku GROUP BY ALL
        )
        SELECT d.usage_date, coalesce(d.description, d.sku) AS product, sum(d.amount) AS amount,
               any_value(d.team_name) AS team_name
        FROM daily_spend_by_sku AS d JOIN newest AS n USING (team_uuid)
        WHERE d.team_uuid IN {teams} AND d.usage_date > n.last_day - CAST($days AS INTEGER)
        GROUP BY d.usage_date, coalesce(d.description, d.sku), d.team_uuid
        ORDER BY d.usage_date, product
    """,
    "daily_by_region": """
        WITH newest AS (
            SELECT team_uuid, max(usage_date) AS last_day FROM daily_spend_by_region GROUP BY ALL
        )
        SELECT d.usage_date, d.region, d.amount, d.team_name
        FROM daily_spend_by_region AS d JOIN newest AS n USING (team_uuid)
        WHERE d.team_uuid IN {teams} AND d.usage_date > n.last_day - CAST($days AS INTEGER)
        ORDER BY d.usage_date, d.region
    """,
    # Top movers: whole months only, the newest closed month in the range against its previous.
    "top_movers": """
        WITH latest AS (
            SELECT team_uuid, max(invoice_period) AS invoice_period
            FROM product_month_over_month
            WHERE NOT is_partial AND invoice_period {months} AND team_uuid IN {teams}
            GROUP BY team_uuid
        )
        SELECT m.team_name, m.invoice_period, m.product, m.previous_amount, m.amount, m.change,
               m.change_pct
        FROM product_month_over_month AS m JOIN latest AS l USING (team_uuid, invoice_period)
        WHERE m.previous_period IS NOT NULL AND m.change <> 0
        ORDER BY abs(m.change) DESC, m.team_name, m.product
        LIMIT 10
    """,
    # Every tag key of the teams, the one covering the most spend in the months first (the
    # default): its tagged spend is what resources with that key cost, the rest is untagged.
    "tag_keys": """
        SELECT tag_key,
               coalesce(sum(amount) FILTER (
                   WHERE tag_value IS NOT NULL AND invoice_period {months}), 0) AS tagged_amount
        FROM cost_by_tag WHERE team_uuid IN {teams}
        GROUP BY tag_key ORDER BY tagged_amount DESC, tag_key
    """,
    "tag_values": """
        SELECT DISTINCT tag_value FROM cost_by_tag
        WHERE team_uuid IN {teams} AND tag_key = $tag_key AND tag_value IS NOT NULL
        ORDER BY tag_value
    """,
    # Spend by one tag key; tag_value NULL is the untagged rest of the month.
    "spend_by_tag": """
        SELECT invoice_period, coalesce(tag_value, '(untagged)') AS tag_value,
               tag_value IS NULL AS untagged, sum(amount) AS amount, team_name
        FROM cost_by_tag
        WHERE team_uuid IN {teams} AND invoice_period {months} AND tag_key = $tag_key
        GROUP BY ALL ORDER BY invoice_period, tag_value
    """,
    "untagged_share": """
        SELECT sum(amount) FILTER (WHERE tag_value IS NULL) AS untagged,
               sum(amount) AS total
        FROM cost_by_tag
        WHERE team_uuid IN {teams} AND invoice_period {months} AND tag_key = $tag_key
    """,
    "allocation_coverage": """
        SELECT invoice_period, amount, allocated_amount, tagged_amount, share, team_name
        FROM allocation_coverage
        WHERE team_uuid IN {teams} AND invoice_period {months}
        ORDER BY invoice_period, team_name
    """,
    # The resources behind the spend, narrowed by project and by one tag's value. The tag's
    # key is a bound map key, never spliced into a JSON path: any character may be in it.
    "resources": """
        SELECT invoice_period, resource_kind, resource_id, resource_name, project_name, tags,
               amount
        FROM cost_by_resource
        WHERE team_uuid IN {teams} AND invoice_period {months}
          AND ($project IS NULL OR project_name = $project)
          AND ($tag_value IS NULL
               OR json_transform(tags, '"MAP(VARCHAR, VARCHAR)"')[$tag_key] = $tag_value)
        ORDER BY amount DESC LIMIT 50
    """,
    "anomalies": """
        SELECT usage_date, team_name, kind, grain, coalesce(sku, service) AS subject, region,
               cost, baseline, excess, why, alert_key, team_uuid
        FROM cost_anomalies
        WHERE team_uuid IN {teams} AND strftime(usage_date, '%Y-%m') {months}
        ORDER BY usage_date DESC, team_name
    """,
    # What to cut: each team's idle resources in its latest inventory, narrowed by project and
    # by one tag (`key:value`, or a plain `key` for the value 'true'), the largest cost first.
    "idle_resources": """
        {idle}
        ORDER BY cost_last_month DESC, team_name, kind, resource_id
    """,
    # …and their total per team: the latest closed month, and so far this month.
    "idle_total": """
        SELECT team_uuid, team_name, invoice_period, count(*) AS resources,
               sum(cost_last_month) AS idle_amount, sum(month_to_date) AS idle_month_to_date
        FROM ({idle})
        GROUP BY team_uuid, team_name, invoice_period ORDER BY team_name, team_uuid
    """,
    # Credits, taxes and whether each invoice's items add up to it.
    "reconciliation": """
        SELECT invoice_period, team_name, status, invoice_amount, items_sum, taxes,
               credits_and_adjustments, coalesce(problem, 'reconciled') AS reconciliation,
               reconciled_by
        FROM invoice_reconciliation
        WHERE team_uuid IN {teams} AND invoice_period {months}
        ORDER BY invoice_period DESC, team_name
    """,
    "payments": """
        SELECT invoice_period, team_name, invoices, invoiced, paid, outstanding,
               invoices_with_payments
        FROM payments_vs_invoices
        WHERE team_uuid IN {teams} AND invoice_period {months}
        ORDER BY invoice_period DESC, team_name
    """,
}
IDLE = """
        SELECT kind, resource_name, resource_id, region, project_name,
               array_to_string(tags, ', ') AS resource_tags, idle_since, cost_last_month,
               month_to_date, invoice_period, team_name, team_uuid
        FROM idle_resources_at(CAST($max_age_days AS INTEGER))
        WHERE team_uuid IN {teams}
          AND ($project IS NULL OR project_name = $project)
          AND ($tag_value IS NULL OR list_contains(tags, $tag_key || ':' || $tag_value)
               OR ($tag_value = 'true' AND list_contains(tags, $tag_key)))
"""
QUERIES = {
    name: sql.format(teams=TEAMS, months=MONTHS, idle=IDLE.format(teams=TEAMS)).strip()
    for name, sql in QUERIES.items()
}


class WarehouseUnavailable(RuntimeError):
    """The published file is missing, not a DuckDB file, or holds no loaded data yet."""


@dataclass(frozen=True)
class Reader:
    """Runs the named queries on the published file, opening it read-only for each one."""

    path: Path

    def version(self) -> int:
        """The file's modification time: changes whenever a load publishes (a cache key)."""
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if not self.path.is_file():
            raise WarehouseUnavailable(f"no warehouse file at {self.path}")
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except (duckdb.IOException, duckdb.InvalidInputException) as exc:
            raise WarehouseUnavailable(f"cannot open {self.path}: {exc}") from None

    def sample_data(self) -> bool:
        """Whether the file records the built-in sandbox's sample data (a run marks it), so a
        page of it says so whatever the settings are now."""
        try:
            with self._connect() as con:
                return holds_sample_data(con) is True
        except WarehouseUnavailable:
            return False

    def views(self) -> set[str]:
        """The views the file has (an older warehouse lacks the newer ones), and the tables
        that stand for views in the published file (a view on a table macro is published as
        its rows)."""
        with self._connect() as con:
            found = con.execute(
                "SELECT view_name FROM duckdb_views() UNION SELECT table_name FROM duckdb_tables()"
            ).fetchall()
        return {name for (name,) in found}

    def read(self, name: str, **params: Any) -> pd.DataFrame:
        """Query `name` with its parameters; amounts stay Decimal (never through a float)."""
        sql = QUERIES[name]
        used = {key: value for key, value in params.items() if f"${key}" in sql}
        with self._connect() as con:
            cursor = con.execute(sql, used)
            columns = [d[0] for d in cursor.description]
            return pd.DataFrame(cursor.fetchall(), columns=columns, dtype=object)


def params(
    teams: Iterable[str],
    first: str,
    last: str,
    *,
    project: str | None = None,
    tag_key: str | None = None,
    tag_value: str | None = None,
    days: int = 30,
) -> Mapping[str, Any]:
    """The filters as the queries' parameters."""
    return {
        "teams": list(teams),
        "first": first,
        "last": last,
        "project": project,
        "tag_key": tag_key,
        "tag_value": tag_value,
        "days": days,
    }

"""Billing Insights: day-by-day costs with region and SKU, one window per month.

The team the step read from `GET /v2/account` (once per step, for every source) names the
window's URN. Pages carry
their own counters (`total_items`, `total_pages`, `current_page`, strings on the live API), no
links. Points have no id: two identical points on one day are two charges, and both are kept.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime

import pandas as pd

from pipeline.api import COUNTERS
from pipeline.sources.base import (
    FETCH,
    Check,
    Endpoint,
    Normalized,
    RawData,
    Source,
    Table,
    Target,
    Targets,
)
from pipeline.sources.fields import (
    MONEY,
    MONEY_PATTERN,
    PLACE,
    InvalidPayloadError,
    decimal,
    records,
    text,
    where,
)
from pipeline.sources.fields import date as date_column

# The API has Billing Insights from this day on; no window is asked for before it.
FIRST_DAY = date(2025, 12, 1)
COLUMNS = [
    "team_urn",
    "usage_month",
    "point_number",
    "usage_date",
    "region",
    "sku",
    "description",
    "group_description",
    "amount",
    "loaded_at",
]


def team_urn(found: Targets) -> str:
    """`do:team:<uuid>` of the team whose token fetches (read once per step by the engine)."""
    if not found.team_uuid:
        raise InvalidPayloadError(["Billing Insights needs the team's uuid (GET /v2/account)"])
    return f"do:team:{found.team_uuid}"


def month_windows(found: Targets) -> list[Target]:
    """One window per month, from its first day (or FIRST_DAY) to its last."""
    urn = team_urn(found)
    windows = []
    for period in found.periods:
        year, month = int(period[:4]), int(period[5:])
        end = date(year, month, calendar.monthrange(year, month)[1])
        if end < FIRST_DAY:
            continue
        start = max(date(year, month, 1), FIRST_DAY)
        windows.append(
            Target(
                key=urn,
                partition=period,
                label=f"insights {urn} {period}",
                path_args={"urn": urn, "start": start.isoformat(), "end": end.isoformat()},
            )
        )
    return windows


def normalize(raw: RawData, loaded_at: datetime) -> Normalized:
    """Every data point of the windows → `daily_costs`, numbered in the API's order."""
    points = records(raw.pages_of("insights"), "data_points")
    if points.empty:
        return Normalized({"daily_costs": pd.DataFrame(columns=[*COLUMNS, FETCH])})
    points["usage_month"] = points["partition_key"]
    # Numbered per fetch and month: several teams' fetches may be normalized in one call.
    numbered = points.groupby(["fetch_id", "usage_month"], sort=False)
    points["point_number"] = numbered.cumcount().add(1).astype("int32")
    points[PLACE] = (
        "insights " + points["usage_month"] + ", point " + points["point_number"].astype(str)
    )
    problems: list[str] = []
    out = pd.DataFrame(index=points.index)
    out["team_urn"] = text(points, "usage_team_urn", problems)
    out["usage_month"] = points["usage_month"].astype("string")
    out["point_number"] = points["point_number"]
    out["usage_date"] = date_column(points, "start_date", problems)
    for field in ("region", "sku", "description", "group_description"):
        out[field] = text(points, field, problems)
    out["amount"] = decimal(points, "total_amount", MONEY_PATTERN, MONEY, problems, required=True)
    missing = out["usage_date"].isna()
    problems += where(points, missing & points["start_date"].isna(), "start_date", "is missing")
    out["loaded_at"] = pd.Timestamp(loaded_at)
    out[FETCH] = points["fetch_id"]
    if problems:
        raise InvalidPayloadError(problems)
    return Normalized({"daily_costs": out[[*COLUMNS, FETCH]].reset_index(drop=True)})


def invariants(raw: RawData, tables: dict[str, pd.DataFrame], periods: Sequence[str]) -> list:
    """Every point lies in the month of the window that returned it."""
    costs = tables["daily_costs"]
    if costs.empty:
        return []
    month = pd.to_datetime(costs["usage_date"]).dt.strftime("%Y-%m")
    stray = costs.loc[month != costs["usage_month"]]
    return [
        f"insights {row.usage_month}, point {row.point_number}: dated {row.usage_date}, "
        "outside the window that returned it"
        for row in stray.head(20).itertuples()
    ]


INSIGHTS_TOTALS = """
    WITH announced AS (
        SELECT f.team_uuid, p.partition_key AS usage_month,
               arg_max(TRY_CAST(json_extract_string(p.body, '$.total_items') AS BIGINT),
                       f.fetched_at) AS total_items
        FROM raw.pages AS p JOIN raw.fetches AS f USING (fetch_id)
        WHERE f.source = 'daily_costs' AND f.status = 'ok' AND p.endpoint = 'insights'
          AND p.page = 1
        GROUP BY ALL
    ), loaded AS (
        SELECT team_uuid, usage_month, count(*) AS points FROM daily_costs GROUP BY ALL
    )
    SELECT a.team_uuid, a.usage_month, a.total_items, coalesce(l.points, 0) AS loaded
    FROM announced AS a
    LEFT JOIN loaded AS l
      ON l.usage_month = a.usage_month AND l.team_uuid IS NOT DISTINCT FROM a.team_uuid
    WHERE coalesce(l.points, 0) <> a.total_items
    ORDER BY a.usage_month, a.team_uuid
"""
MISSING_DAYS = """
    SELECT team_uuid, usage_month, count(DISTINCT usage_date) AS days_present,
           day(last_day(CAST(usage_month || '-01' AS DATE))) AS days_in_month
    FROM daily_costs
    WHERE usage_month < strftime(current_date, '%Y-%m')
    GROUP BY ALL
    HAVING days_present < days_in_month
    ORDER BY usage_month, team_uuid
"""
# Nightly estimates land near their invoice, not on it: a closed month is listed when its
# estimates miss the invoice by more than TOLERANCE (1 % of the invoice, at least 1.00 USD), or
# when either side is missing.
TOLERANCE = "greatest(1.00, round(abs(invoice_total) * 0.01, 2))"
ESTIMATES_DIFFER = f"""
    SELECT team_name, month, insights_total, invoice_total, difference, {TOLERANCE} AS tolerance
    FROM estimate_vs_invoice
    WHERE NOT is_partial AND (difference IS NULL OR abs(difference) > {TOLERANCE})
    ORDER BY month, team_name
"""  # noqa: S608 (a constant, no input)

INSIGHTS = Source(
    name="daily_costs",
    description="Day-by-day costs by SKU and region (Billing Insights), one window per month.",
    endpoint=Endpoint(
        "insights",
        "/v2/billing/{urn}/insights/{start}/{end}",
        COUNTERS,
        records="data_points",
        noun="points",
    ),
    targets=month_windows,
    normalize=normalize,
    invariants=invariants,
    many_fetches=True,
    tables=(
        Table(
            "daily_costs",
            ("team_urn", "usage_month", "point_number"),
            "One row per Billing Insights data point: a day's cost of one SKU in one region.",
            noun="points",
            partition_column="usage_month",
            plot=True,
            spend_by="region",
        ),
    ),
    checks=(
        Check(
            "insights_match_total_items",
            "daily_costs",
            INSIGHTS_TOTALS,
            "Per month, the loaded points equal the count the API announced (total_items).",
            "every month's points are complete",
            blocking=True,
        ),
        Check(
            "every_day_of_closed_months",
            "daily_costs",
            MISSING_DAYS,
            "Every day of a closed month has at least one data point.",
            "every closed month has every day",
            warn_only=True,
        ),
        Check(
            "estimates_match_invoices",
            "daily_costs",
            ESTIMATES_DIFFER,
            "Per closed month, the insights total against the invoice total. The API warns "
            "nightly estimates may differ: a month is listed (a warning) when they miss by more "
            "than 1 % of the invoice, at least 1.00 USD.",
            "every closed month's estimates are within 1 % (at least 1.00 USD) of its invoices",
            warn_only=True,
            also_reads=("invoices",),
        ),
    ),
    target_noun="month window",
    progress_name="insights",
)

"""Billing Insights: the daily cost points of `GET /v2/billing/<urn>/insights/…`.

The API's data starts on INSIGHTS_START; nothing earlier exists. Points are nightly estimates:
a closed month's points add up to its invoice give or take a few dollars, as the API warns.
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from pipeline.sandbox.amounts import add_months, cents, cents_text, month_bounds, split

INSIGHTS_START = "2025-12-01"
# A month whose points add up to its invoice to the cent (the others differ by 0.03–4.50), a
# month with ~10 points a day (over 200 points: several pages at per_page=200; the others have
# 3–6 a day, under 200), and a day with two identical points (both real charges).
INSIGHTS_EXACT_MONTH = "2025-12"
INSIGHTS_LARGE_MONTH = "2026-01"
INSIGHTS_DUPLICATE_DAY = "2026-01-15"
# (sku, description, group_description, weight): what the nightly estimates are made of.
INSIGHT_SKUS = [
    ("1-DO-DROP-0109", "web-01 (s-2vcpu-4gb)", "", 6),
    ("1-DO-DROP-0042", "worker-café (c-2-4GiB)", "", 4),
    ("1-KS-K8SWN-00109", "3 nodes - 4 GB / 2 vCPU / 80 GB SSD", "my-doks-cluster", 8),
    ("1-DB-PG-0204", "db-main (db-s-2vcpu-4gb)", "db-main", 5),
    ("1-LB-SMALL-0001", "Load Balancer (lb-small)", "", 2),
    ("1-VOL-GB-0100", "Volume data-vol (100 GiB)", "", 1),
    ("1-SPACES-0250", "Spaces Subscription (250 GiB)", "", 1),
    ("1-BKP-DROP-0109", "Backups web-01", "", 1),
    ("1-SNAP-GB-0001", "Snapshots (40 GiB)", "", 1),
    ("1-APP-PRO-0012", "App Platform api (professional-xs)", "prod-ü", 3),
    ("1-BW-OVER-0001", "Bandwidth overage", "", 1),
    ("1-CR-BASIC-0005", "Container Registry (basic)", "", 1),
]
INSIGHT_REGIONS = ["nyc3", "fra1", "sgp1", "ams3", "sfo3", "lon1"]
# Each SKU's product on the invoice, and the regions its points come from: one region for a
# resource that lives in one (a Droplet, a cluster), every region for bandwidth and the registry.
INSIGHT_SKU_PLACES: dict[str, tuple[str, list[str]]] = {
    "1-DO-DROP-0109": ("Droplets", ["nyc3"]),
    "1-DO-DROP-0042": ("Droplets", ["fra1"]),
    "1-KS-K8SWN-00109": ("Kubernetes Clusters", ["sgp1"]),
    "1-DB-PG-0204": ("Managed Databases", ["ams3"]),
    "1-LB-SMALL-0001": ("Load Balancers", ["sfo3"]),
    "1-VOL-GB-0100": ("Volumes", ["lon1"]),
    "1-SPACES-0250": ("Spaces Subscription", ["nyc3"]),
    "1-BKP-DROP-0109": ("Backups", ["nyc3"]),
    "1-SNAP-GB-0001": ("Snapshots", ["fra1"]),
    "1-APP-PRO-0012": ("App Platform", ["ams3"]),
    "1-BW-OVER-0001": ("Bandwidth", INSIGHT_REGIONS),
    "1-CR-BASIC-0005": ("Container Registry", INSIGHT_REGIONS),
}


def insight_points(
    seed: int,
    urn: str,
    invoices: list[dict[str, Any]],
    preview: dict[str, Any],
    today: date,
) -> list[dict[str, Any]]:
    """Daily points from INSIGHTS_START through yesterday: each closed month's points add up to
    its invoice give or take a few dollars (nightly estimates), the open month's to a share of
    the preview."""
    by_period = {i["invoice_period"]: i for i in invoices}
    current = preview["invoice_period"]
    points: list[dict[str, Any]] = []
    period = INSIGHTS_START[:7]
    while period <= current:
        rng = random.Random(f"{seed}:{period}:insights:gap")
        if period == current:
            days = today.day - 1
            target = cents(preview["amount"]) * days // max(today.day, 1)
        elif period in by_period:
            days = month_bounds(period)[2]
            target = cents(by_period[period]["amount"])
        else:
            days = 0
        if days:
            if period != INSIGHTS_EXACT_MONTH:
                target += rng.choice((-1, 1)) * rng.randint(3, 450)
            points += _insight_month(seed, urn, period, days, target)
        period = add_months(period, 1)
    return points


def _insight_month(
    seed: int, urn: str, period: str, days: int, target: int
) -> list[dict[str, Any]]:
    """The month's points for its first `days` days, adding up to `target` cents."""
    rng = random.Random(f"{seed}:{period}:insights")
    low, high = (9, 11) if period == INSIGHTS_LARGE_MONTH else (3, 6)
    combos = [
        (s, r)
        for s, (sku, *_) in enumerate(INSIGHT_SKUS)
        for r, region in enumerate(INSIGHT_REGIONS)
        if region in INSIGHT_SKU_PLACES[sku][1]
    ]
    points: list[dict[str, Any]] = []
    weights: list[float] = []
    for day in range(1, days + 1):
        start_date = f"{period}-{day:02d}"
        for s, r in sorted(rng.sample(combos, rng.randint(low, high)), key=lambda c: (c[1], c[0])):
            sku, description, group, weight = INSIGHT_SKUS[s]
            points.append(
                {
                    "usage_team_urn": urn,
                    "start_date": start_date,
                    "total_amount": "",
                    "region": INSIGHT_REGIONS[r],
                    "sku": sku,
                    "description": description,
                    "group_description": group,
                }
            )
            weights.append(weight * rng.uniform(0.5, 1.5))
    parts = split(rng, max(target, 0), weights)
    same_day = [n for n, p in enumerate(points) if p["start_date"] == INSIGHTS_DUPLICATE_DAY]
    if len(same_day) >= 3:
        # Two identical points on one day, both real charges; the odd cent goes to a third.
        first, second, other = same_day[:3]
        pair = parts[first] + parts[second]
        parts[first] = parts[second] = pair // 2
        parts[other] += pair % 2
        points[second] = dict(points[first])
    for point, amount in zip(points, parts, strict=True):
        point["total_amount"] = cents_text(amount)
    return points

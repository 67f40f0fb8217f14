"""Test scenarios planted in a sandbox account: edits no served account has, for the checks
to find. Imported only by conftest.py, which hands them to the tests as fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pipeline.alerts.keys import new_sku_key, spike_key
from pipeline.sandbox.amounts import cents, cents_text
from pipeline.sandbox.data import SandboxData
from pipeline.sandbox.insights import INSIGHT_SKU_PLACES, INSIGHT_SKUS

# A SKU no sample account has: what `plant_anomalies` starts charging for.
NEW_SKU = ("1-GPU-H100-0001", "gpu-train-01 (gpu-h100x1-80gb)", "", "tor1")


@dataclass(frozen=True)
class PlantedAnomaly:
    """What `plant_anomalies` planted: the alert the checks should raise for it."""

    kind: str  # spike or new_sku
    sku: str
    day: str  # YYYY-MM-DD
    region: str
    amount: str  # the day's cost of the SKU, dollars as the API writes them
    key: str  # the alert key (pipeline.alerts.keys)
    service: str | None  # the SKU's product on the invoice; None for NEW_SKU


def _day_costs(data: SandboxData, sku: str) -> dict[str, int]:
    costs: dict[str, int] = {}
    for point in data.insights:
        if point["sku"] == sku:
            day = point["start_date"]
            costs[day] = costs.get(day, 0) + cents(point["total_amount"])
    return costs


def plant_anomalies(
    data: SandboxData,
    spike_day: date,
    new_sku_from: date,
    *,
    spike_usd: str = "5000.00",
    new_sku_usd: str = "400.00",
) -> list[PlantedAnomaly]:
    """Plant a spike and a new SKU in the account's Billing Insights points, in place:

    - on `spike_day`, one more point of the SKU that cost on the most of the 14 days before
      (at least 7, so the detector has a baseline; ties go to the first SKU by name), of
      `spike_usd`: far above its daily cost (tens of dollars);
    - from `new_sku_from` through the last day with points, a point a day of NEW_SKU, which
      no account had, of `new_sku_usd`.

    Returns the two, with the alert keys the checks raise for them."""
    team = data.team["uuid"]
    days = [(spike_day.toordinal() - n) for n in range(1, 15)]
    window = {date.fromordinal(d).isoformat() for d in days}
    counts = {sku: len(window & set(_day_costs(data, sku))) for sku, *_ in sorted(INSIGHT_SKUS)}
    sku = min(counts, key=lambda s: (-counts[s], s))
    if counts[sku] < 7:
        raise ValueError(f"no SKU cost on 7 of the 14 days before {spike_day}: no baseline")
    _, description, group, _ = next(s for s in INSIGHT_SKUS if s[0] == sku)
    service, regions = INSIGHT_SKU_PLACES[sku]
    spike = spike_day.isoformat()
    base = {"usage_team_urn": data.team_urn, "description": description}
    points = [{**base, "start_date": spike, "total_amount": spike_usd, "region": regions[0],
               "sku": sku, "group_description": group}]  # fmt: skip
    spike_total = cents_text(_day_costs(data, sku).get(spike, 0) + cents(spike_usd))
    last = max(p["start_date"] for p in data.insights)
    new_sku, new_description, new_group, new_region = NEW_SKU
    day = new_sku_from
    while day.isoformat() <= last:
        points.append(
            {
                "usage_team_urn": data.team_urn,
                "start_date": day.isoformat(),
                "total_amount": new_sku_usd,
                "region": new_region,
                "sku": new_sku,
                "description": new_description,
                "group_description": new_group,
            }
        )
        day = date.fromordinal(day.toordinal() + 1)
    data.insights = sorted(data.insights + points, key=lambda p: p["start_date"])
    return [
        PlantedAnomaly("spike", sku, spike, regions[0], spike_total,
                       spike_key(team, "sku", sku, spike), service),
        PlantedAnomaly("new_sku", new_sku, new_sku_from.isoformat(), new_region, new_sku_usd,
                       new_sku_key(team, new_sku), None),
    ]  # fmt: skip


# Products whose items name no listed resource: what `bill_to` takes lines from.
UNLISTED_PRODUCTS = ("Bandwidth", "Spaces Subscription", "Container Registry", "App Platform")


def bill_to(data: SandboxData, resource_uuid: str, lines: int = 2) -> dict[str, str]:
    """Attribute `lines` lines of the latest closed month and of the open month's preview to
    `resource_uuid` (a reserved IP's address, say), in place: lines of products that name no
    listed resource get it as their `resource_uuid` (and lose any `resource_id`), so no total
    changes. Returns each month's planted amount, dollars as the API writes them."""
    planted: dict[str, str] = {}
    for bill in (data.invoices[0], data.preview):
        chosen = [
            line
            for line in data.items[bill["invoice_uuid"]]
            if line["product"] in UNLISTED_PRODUCTS
        ][:lines]
        for line in chosen:
            line["resource_uuid"] = resource_uuid
            line.pop("resource_id", None)
        planted[bill["invoice_period"]] = cents_text(sum(cents(li["amount"]) for li in chosen))
    return planted

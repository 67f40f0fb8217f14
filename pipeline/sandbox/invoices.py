"""Invoices, their items and their summaries, as `GET /v2/customers/my/invoices/…` serves them.

Each month is generated from its own seed, so adding a month never changes earlier ones. Every
invoice's amount is the exact sum of its items, and its summary's parts add up to it.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from pipeline.sandbox.amounts import cents, cents_text, month_bounds
from pipeline.sandbox.insights import INSIGHT_SKU_PLACES, INSIGHT_SKUS, INSIGHTS_START
from pipeline.sandbox.teams import NAMESPACE

PRODUCTS = [
    ("Droplets", "iaas"),
    ("Kubernetes Clusters", "paas"),
    ("Spaces Subscription", "iaas"),
    ("Managed Databases", "paas"),
    ("Load Balancers", "iaas"),
    ("Volumes", "iaas"),
    ("Snapshots", "iaas"),
    ("Backups", "iaas"),
    ("App Platform", "paas"),
    ("Container Registry", "paas"),
    ("Bandwidth", "iaas"),
]
PROJECTS = ["web", "data-platform", "Café ☕ 東京", "staging", "", None]
# Each seed's resource ids live in their own block of ten million, so teams never share one.
RESOURCE_ID_BLOCK = 10_000_000
# Share of a month's invoice lines (from INSIGHTS_START on) described as Billing Insights
# describes their SKU, so FOCUS can tie them to the points; the others keep a generic text.
INSIGHT_DESCRIBED_SHARE = 0.75


def item(
    rng: random.Random, period: str, n: int, days: int, seed: int
) -> tuple[dict[str, Any], int]:
    """One random line of the month, and its amount in cents."""
    product, category = PRODUCTS[rng.randrange(len(PRODUCTS))]
    start, end, _ = month_bounds(period)
    amount = rng.randint(1, 40_000)
    line: dict[str, Any] = {"product": product, "amount": cents_text(amount)}
    if rng.random() < 0.8:
        # A team's resources are its own: the seed is in the name, so no two teams share one.
        name = f"{seed}:{product}:{rng.randrange(60)}"
        line["resource_uuid"] = str(uuid.uuid5(NAMESPACE, name))
    if rng.random() < 0.6:
        block = seed * RESOURCE_ID_BLOCK
        line["resource_id"] = str(block + rng.randrange(1_000_000, 9_999_999))
    if product in ("Kubernetes Clusters", "Managed Databases") or rng.random() < 0.2:
        line["group_description"] = rng.choice(["my-doks-cluster", "db-main", "", "prod-ü"])
    line["description"] = f"{product} {rng.choice(['s-1vcpu-1gb', 'nyc3', 'fra1', 'sgp1 東'])}"
    if rng.random() < 0.05:
        line["duration"], line["duration_unit"] = str(rng.randint(1, 600)), "Minutes"
    else:
        line["duration"], line["duration_unit"] = str(rng.randint(1, days * 24)), "Hours"
    line["start_time"], line["end_time"] = start, end
    project = PROJECTS[n % len(PROJECTS)] if rng.random() < 0.9 else "default"
    if project is not None:
        line["project_name"] = project
    if rng.random() < 0.95:
        line["category"] = category
    return line, amount


def month_items(seed: int, period: str, count: int) -> list[dict[str, Any]]:
    """`count` lines of the month, then maybe a credit and a tax line on top."""
    rng = random.Random(f"{seed}:{period}")
    _, _, days = month_bounds(period)
    items, total = [], 0
    for n in range(count):
        line, amount = item(rng, period, n, days, seed)
        items.append(line)
        total += amount
    if count and rng.random() < 0.35:
        credit = -min(total // 4, rng.randint(500, 5_000))
        items.append(
            {
                "product": "Credits",
                "description": "Promotional credit ✓",
                "amount": cents_text(credit),
                "category": "",
            }
        )
    if count and rng.random() < 0.5:
        tax = total * 8 // 100
        items.append({"product": "Taxes", "description": "VAT 8%", "amount": cents_text(tax)})
    return items


def describe_as_insights(seed: int, period: str, items: list[dict[str, Any]]) -> None:
    """From INSIGHTS_START on, give a share of the lines the description and group of one of
    their product's Insights SKUs, as the real invoice and Insights describe one resource alike.
    Own seed: amounts and every other field stay as generated."""
    if period < INSIGHTS_START[:7]:
        return
    rng = random.Random(f"{seed}:{period}:described")
    for line in items:
        skus = [
            (description, group)
            for sku, description, group, _ in INSIGHT_SKUS
            if INSIGHT_SKU_PLACES[sku][0] == line["product"]
        ]
        if skus and rng.random() < INSIGHT_DESCRIBED_SHARE:
            line["description"], line["group_description"] = rng.choice(skus)


def invoice(seed: int, period: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The invoice as the list shows it: its own uuid and id, the exact sum of its items."""
    rng = random.Random(f"{seed}:{period}:id")
    return {
        "invoice_uuid": str(uuid.uuid5(NAMESPACE, f"{seed}:{period}")),
        "invoice_id": str(rng.randrange(10_000_000, 99_999_999)),
        "amount": cents_text(sum(cents(i["amount"]) for i in items)),
        "invoice_period": period,
    }


def summary(bill: dict[str, Any], items: list[dict[str, Any]], company: str) -> dict[str, Any]:
    """Summary whose parts add up to the invoice amount, like the API's `/summary`."""
    taxes = sum(cents(i["amount"]) for i in items if i["product"] == "Taxes")
    credits = sum(cents(i["amount"]) for i in items if i["product"] == "Credits")
    usage: dict[str, list[int]] = {}
    for line in items:
        if line["product"] not in ("Taxes", "Credits"):
            usage.setdefault(line["product"], []).append(cents(line["amount"]))
    return {
        "invoice_uuid": bill["invoice_uuid"],
        "invoice_id": bill["invoice_id"],
        "billing_period": bill["invoice_period"],
        "amount": bill["amount"],
        "user_name": "Sammy Shark",
        "user_company": company,
        "user_email": "billing@example.com",
        "user_billing_address": {
            "address_line1": "101 Shark Row",
            "city": "Atlantis",
            "region": "OC",
            "postal_code": "12345",
            "country_iso2_code": "US",
        },
        "product_charges": {
            "name": "Product usage charges",
            "amount": cents_text(sum(sum(v) for v in usage.values())),
            "items": [
                {"name": name, "amount": cents_text(sum(v)), "count": str(len(v))}
                for name, v in sorted(usage.items())
            ],
        },
        "overages": {"name": "Overages", "amount": "0.00"},
        "taxes": {"name": "Taxes", "amount": cents_text(taxes)},
        "credits_and_adjustments": {
            "name": "Credits and adjustments",
            "amount": cents_text(credits),
        },
    }

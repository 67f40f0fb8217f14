"""Deterministic sample accounts, shaped like real DigitalOcean bills.

Each month is generated from its own seed, so adding a month never changes earlier ones. Amounts
are integer cents rendered as strings, and every invoice's amount is the exact sum of its items.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

NAMESPACE = uuid.UUID("6f1c2d4e-8a7b-4c3d-9e0f-112233445566")
FIRST_PERIOD = "2023-01"
# Months of the default profile with hundreds of items (several pages of 200) or none at all.
LARGE_MONTHS = {"2024-03": 250, "2025-01": 480, "2025-09": 730}
EMPTY_MONTH = "2023-04"
# Bench profile: 41 final invoices, 18,306 items, Σ ceil(items/200) = 112 item pages,
# so a complete load needs 1 list request + 112 item requests = 113.
BENCH_INVOICES, BENCH_ITEMS, BENCH_PAGES = 41, 18_306, 112
# Rate-limit profile: three bench accounts' worth of months back to back (123 invoices, 337
# requests), so one backfill needs more than the 250 requests a minute allows.
PROFILES = {"default": 0, "bench": 1, "bench-x3": 3}

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


def cents_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def month_bounds(period: str) -> tuple[str, str, int]:
    year, month = int(period[:4]), int(period[5:])
    nxt = (year + (month == 12), month % 12 + 1)
    days = (date(*nxt, 1) - date(year, month, 1)).days
    return f"{period}-01T00:00:00Z", f"{nxt[0]:04d}-{nxt[1]:02d}-01T00:00:00Z", days


def add_months(period: str, n: int) -> str:
    index = int(period[:4]) * 12 + int(period[5:]) - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@dataclass
class SandboxData:
    """What the sandbox serves. Mutable, and cheap to copy, so tests can change the account."""

    invoices: list[dict[str, Any]]
    preview: dict[str, Any] | None
    items: dict[str, list[dict[str, Any]]]
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def all_invoices(self) -> list[dict[str, Any]]:
        return self.invoices + ([self.preview] if self.preview else [])

    def copy(self) -> SandboxData:
        return copy.deepcopy(self)


def _item(rng: random.Random, period: str, n: int, days: int) -> tuple[dict[str, Any], int]:
    product, category = PRODUCTS[rng.randrange(len(PRODUCTS))]
    start, end, _ = month_bounds(period)
    cents = rng.randint(1, 40_000)
    item: dict[str, Any] = {"product": product, "amount": cents_text(cents)}
    if rng.random() < 0.8:
        item["resource_uuid"] = str(uuid.uuid5(NAMESPACE, f"{product}:{rng.randrange(60)}"))
    if rng.random() < 0.6:
        item["resource_id"] = str(rng.randrange(1_000_000, 9_999_999))
    if product in ("Kubernetes Clusters", "Managed Databases") or rng.random() < 0.2:
        item["group_description"] = rng.choice(["my-doks-cluster", "db-main", "", "prod-ü"])
    item["description"] = f"{product} {rng.choice(['s-1vcpu-1gb', 'nyc3', 'fra1', 'sgp1 東'])}"
    if rng.random() < 0.05:
        item["duration"], item["duration_unit"] = str(rng.randint(1, 600)), "Minutes"
    else:
        item["duration"], item["duration_unit"] = str(rng.randint(1, days * 24)), "Hours"
    item["start_time"], item["end_time"] = start, end
    project = PROJECTS[n % len(PROJECTS)] if rng.random() < 0.9 else "default"
    if project is not None:
        item["project_name"] = project
    if rng.random() < 0.95:
        item["category"] = category
    return item, cents


def _month_items(seed: int, period: str, count: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:{period}")
    _, _, days = month_bounds(period)
    items, total = [], 0
    for n in range(count):
        item, cents = _item(rng, period, n, days)
        items.append(item)
        total += cents
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


def _cents(amount: str) -> int:
    sign = -1 if amount.startswith("-") else 1
    whole, _, frac = amount.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int((frac + "00")[:2]))


def _summary(invoice: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary whose parts add up to the invoice amount, like the API's `/summary`."""
    taxes = sum(_cents(i["amount"]) for i in items if i["product"] == "Taxes")
    credits = sum(_cents(i["amount"]) for i in items if i["product"] == "Credits")
    usage: dict[str, list[int]] = {}
    for item in items:
        if item["product"] not in ("Taxes", "Credits"):
            usage.setdefault(item["product"], []).append(_cents(item["amount"]))
    return {
        "invoice_uuid": invoice["invoice_uuid"],
        "invoice_id": invoice["invoice_id"],
        "billing_period": invoice["invoice_period"],
        "amount": invoice["amount"],
        "user_name": "Sammy Shark",
        "user_company": "Example Co",
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


def _invoice(seed: int, period: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    rng = random.Random(f"{seed}:{period}:id")
    return {
        "invoice_uuid": str(uuid.uuid5(NAMESPACE, f"{seed}:{period}")),
        "invoice_id": str(rng.randrange(10_000_000, 99_999_999)),
        "amount": cents_text(sum(_cents(i["amount"]) for i in items)),
        "invoice_period": period,
    }


def _bench_counts(seed: int) -> list[int]:
    """41 item counts: 30 invoices of 3 pages and 11 of 2, summing to 18,306 items."""
    rng = random.Random(f"{seed}:bench")
    ranges = [(401, 600)] * 30 + [(201, 400)] * 11
    counts = [rng.randint(lo, hi) for lo, hi in ranges]
    gap = BENCH_ITEMS - sum(counts)
    i = 0
    while gap:
        lo, hi = ranges[i % len(ranges)]
        step = max(lo - counts[i % len(ranges)], min(hi - counts[i % len(ranges)], gap))
        counts[i % len(ranges)] += step
        gap -= step
        i += 1
    rng.shuffle(counts)
    return counts


def build_dataset(
    profile: str = "default", today: date | None = None, seed: int = 7
) -> SandboxData:
    """Final invoices for every closed month plus the open month's preview, newest first."""
    today = today or datetime.now(UTC).date()
    current = f"{today.year:04d}-{today.month:02d}"
    if profile == "default":
        first = FIRST_PERIOD
        months = []
        period = first
        while period < current:
            months.append(period)
            period = add_months(period, 1)
        counts = {
            p: 0
            if p == EMPTY_MONTH
            else LARGE_MONTHS.get(p, random.Random(f"{seed}:{p}:n").randint(15, 80))
            for p in months
        }
    elif profile in PROFILES:
        copies = PROFILES[profile]
        months = [add_months(current, -n) for n in range(BENCH_INVOICES * copies, 0, -1)]
        bench_counts = [c for k in range(copies) for c in _bench_counts(seed + k)]
        counts = dict(zip(months, bench_counts, strict=True))
    else:
        raise ValueError(f"unknown sandbox profile {profile!r} ({', '.join(PROFILES)})")
    items: dict[str, list[dict[str, Any]]] = {}
    invoices, summaries = [], {}
    for period in months:
        month_items = _month_items(seed, period, counts[period])
        if profile != "default":
            month_items = month_items[: counts[period]]
            month_items += [
                _item(random.Random(f"{seed}:{period}:pad:{k}"), period, k, 28)[0]
                for k in range(counts[period] - len(month_items))
            ]
        invoice = _invoice(seed, period, month_items)
        items[invoice["invoice_uuid"]] = month_items
        summaries[invoice["invoice_uuid"]] = _summary(invoice, month_items)
        invoices.append(invoice)
    invoices.reverse()
    preview_items = _month_items(seed, current, max(1, today.day * 2))
    preview = _invoice(seed, current, preview_items)
    preview["updated_at"] = f"{today.isoformat()}T06:31:50Z"
    items[preview["invoice_uuid"]] = preview_items
    summaries[preview["invoice_uuid"]] = _summary(preview, preview_items)
    return SandboxData(invoices=invoices, preview=preview, items=items, summaries=summaries)

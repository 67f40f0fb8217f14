"""Deterministic sample accounts, shaped like real DigitalOcean bills.

Each month is generated from its own seed, so adding a month never changes earlier ones. Amounts
are integer cents rendered as strings, and every invoice's amount is the exact sum of its items.

Besides the invoices: the account's team (`GET /v2/account`), Billing Insights' daily points
(from 2025-12-01, when the API's data starts; nightly estimates whose month sums differ from the
invoices by a little, as the API warns), the billing history (invoices, payments, credits, and a
type outside the spec's enum) and the balance.

Each seed is its own team: its own team uuid and name, invoice uuids, resource uuids and ids, so
several accounts can share one warehouse without a key in common. `build_teams(n)` gives n of
them keyed by token, seeds 7, 8, 9, …; seed 7 is the default account, "Example Co".
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pipeline.sandbox.inventory import Inventory, build_inventory

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
PROFILES = {"default": 0, "bench": 1, "bench-x3": 3, "recent": 0}
# Recent profile: only the last few closed months (and the open one), so a sandbox can serve a
# thousand teams in little memory: what the daily refresh of many teams reads.
RECENT_MONTHS = 3

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

# Team names by seed, from seed 7 (the default account) on; later rounds get a number.
TEAM_NAMES = [
    "Example Co",
    "Équipe Données",
    "Northwind Analytics",
    "Blue Harbor Labs",
    "Kōbe Robotics 株式会社",
    "Sørensen & Dahl",
    "Acme Research",
    "Nova Logistics",
]
FIRST_TEAM_SEED = 7
# Each seed's resource ids live in their own block of ten million, so teams never share one.
RESOURCE_ID_BLOCK = 10_000_000

# The account behind the token (`GET /v2/account`), less its team, which lives in `SandboxData`.
ACCOUNT_USER = {
    "droplet_limit": 25,
    "floating_ip_limit": 5,
    "email": "billing@example.com",
    "name": "Sammy Shark",
    "uuid": "b6f289dbf6d9156cace5f3c78dc9851d957381ef",
    "email_verified": True,
    "status": "active",
    "status_message": "",
}

# Billing Insights: the API's data begins on this day; nothing earlier exists.
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
# Share of a month's invoice lines (from INSIGHTS_START on) described as Billing Insights
# describes their SKU, so FOCUS can tie them to the points; the others keep a generic text.
INSIGHT_DESCRIBED_SHARE = 0.75

# Billing history besides each invoice and its payment: (day of the month, type, description,
# cents). Payments and credits are negative. "Promotion" is not in the spec's enum of types: the
# API may add types, and a loader must keep them.
HISTORY_EXTRAS: dict[str, list[tuple[int, str, str, int]]] = {
    "2023-06": [(14, "Credit", "Referral credit", -2_500)],
    "2024-02": [(9, "Credit", "Service credit: nyc3 network incident", -1_520)],
    "2024-09": [(20, "Refund", "Refund of overpayment (Visa 4242)", 4_250)],
    "2025-05": [(3, "Credit", "Credit: Droplet downtime (SLA)", -713)],
    "2025-10": [(17, "Promotion", "Hacktoberfest promotional credit ✓", -5_000)],
}
# The month whose payment first fails (an AttemptFailed entry the day before it succeeds).
HISTORY_ATTEMPT_FAILED = "2025-02"
MONTH_NAMES = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip


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
    # The token's team (`GET /v2/account` → `account.team`): {"uuid", "name"}. Its URN
    # `do:team:<uuid>` is the only `account_urn` Billing Insights answers for.
    team: dict[str, str] = field(default_factory=lambda: team_of(7))
    # Every Billing Insights point, all dates, ordered by `start_date`.
    insights: list[dict[str, Any]] = field(default_factory=list)
    # Billing history entries, newest first, as the API lists them.
    billing_history: list[dict[str, Any]] = field(default_factory=list)
    # `GET /v2/customers/my/balance`.
    balance: dict[str, str] = field(default_factory=dict)
    # The resources the items point at, as they are now (some deleted since), and the projects.
    inventory: Inventory = field(default_factory=Inventory)

    def all_invoices(self) -> list[dict[str, Any]]:
        return self.invoices + ([self.preview] if self.preview else [])

    @property
    def team_urn(self) -> str:
        return f"do:team:{self.team['uuid']}"

    def copy(self) -> SandboxData:
        return copy.deepcopy(self)


def _item(
    rng: random.Random, period: str, n: int, days: int, seed: int
) -> tuple[dict[str, Any], int]:
    product, category = PRODUCTS[rng.randrange(len(PRODUCTS))]
    start, end, _ = month_bounds(period)
    cents = rng.randint(1, 40_000)
    item: dict[str, Any] = {"product": product, "amount": cents_text(cents)}
    if rng.random() < 0.8:
        # A team's resources are its own: the seed is in the name, so no two teams share one.
        name = f"{seed}:{product}:{rng.randrange(60)}"
        item["resource_uuid"] = str(uuid.uuid5(NAMESPACE, name))
    if rng.random() < 0.6:
        block = seed * RESOURCE_ID_BLOCK
        item["resource_id"] = str(block + rng.randrange(1_000_000, 9_999_999))
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
        item, cents = _item(rng, period, n, days, seed)
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


def _summary(invoice: dict[str, Any], items: list[dict[str, Any]], company: str) -> dict[str, Any]:
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


def as_of(now: datetime | None = None, today: date | None = None) -> datetime:
    """The moment an account is generated at: `now` (aware), else noon UTC of `today`, else
    the clock. Everything calendar-dependent in the data follows from it, so a caller that
    passes it gets the same account whatever the day it runs on."""
    if now is not None:
        if now.tzinfo is None:
            raise ValueError("the sandbox's now must be timezone-aware (UTC)")
        return now.astimezone(UTC)
    if today is not None:
        return datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    return datetime.now(UTC)


def snapshot_time(now: datetime) -> str:
    """The balance's `generated_at`: the day's snapshot at 06:31:50 UTC once that time has
    passed, else midnight, so it is never after `now` and the same for every build of a day's
    half (re-runs see one snapshot)."""
    today = now.date()
    stamp = datetime(today.year, today.month, today.day, 6, 31, 50, tzinfo=UTC)
    if now < stamp:
        stamp = datetime(today.year, today.month, today.day, tzinfo=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_dataset(
    profile: str = "default",
    today: date | None = None,
    seed: int = 7,
    *,
    now: datetime | None = None,
) -> SandboxData:
    """Final invoices for every closed month plus the open month's preview, newest first, as
    the account stands at `now` (or noon of `today`; the clock when neither is given)."""
    moment = as_of(now, today)
    today = moment.date()
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
    elif profile == "recent":
        months = [add_months(current, -n) for n in range(RECENT_MONTHS, 0, -1)]
        counts = {p: random.Random(f"{seed}:{p}:n").randint(15, 80) for p in months}
    elif profile in PROFILES:
        copies = PROFILES[profile]
        months = [add_months(current, -n) for n in range(BENCH_INVOICES * copies, 0, -1)]
        bench_counts = [c for k in range(copies) for c in _bench_counts(seed + k)]
        counts = dict(zip(months, bench_counts, strict=True))
    else:
        raise ValueError(f"unknown sandbox profile {profile!r} ({', '.join(PROFILES)})")
    team = team_of(seed)
    items: dict[str, list[dict[str, Any]]] = {}
    invoices, summaries = [], {}
    for period in months:
        month_items = _month_items(seed, period, counts[period])
        if profile not in ("default", "recent"):
            month_items = month_items[: counts[period]]
            month_items += [
                _item(random.Random(f"{seed}:{period}:pad:{k}"), period, k, 28, seed)[0]
                for k in range(counts[period] - len(month_items))
            ]
        _describe_as_insights(seed, period, month_items)
        invoice = _invoice(seed, period, month_items)
        items[invoice["invoice_uuid"]] = month_items
        summaries[invoice["invoice_uuid"]] = _summary(invoice, month_items, team["name"])
        invoices.append(invoice)
    invoices.reverse()
    preview_items = _month_items(seed, current, max(1, today.day * 2))
    _describe_as_insights(seed, current, preview_items)
    preview = _invoice(seed, current, preview_items)
    generated_at = snapshot_time(moment)
    preview["updated_at"] = generated_at
    items[preview["invoice_uuid"]] = preview_items
    summaries[preview["invoice_uuid"]] = _summary(preview, preview_items, team["name"])
    history = _billing_history(seed, invoices, generated_at)
    account_balance = sum(_cents(entry["amount"]) for entry in history)
    return SandboxData(
        invoices=invoices,
        preview=preview,
        items=items,
        summaries=summaries,
        team=team,
        insights=_insights(seed, f"do:team:{team['uuid']}", invoices, preview, today),
        billing_history=history,
        balance={
            "month_to_date_balance": cents_text(account_balance + _cents(preview["amount"])),
            "account_balance": cents_text(account_balance),
            "month_to_date_usage": preview["amount"],
            "generated_at": generated_at,
        },
        inventory=build_inventory(seed, items, f"{months[0] if months else current}-01T00:00:00Z"),
    )


def _describe_as_insights(seed: int, period: str, items: list[dict[str, Any]]) -> None:
    """From INSIGHTS_START on, give a share of the lines the description and group of one of
    their product's Insights SKUs, as the real invoice and Insights describe one resource alike.
    Own seed: amounts and every other field stay as generated."""
    if period < INSIGHTS_START[:7]:
        return
    rng = random.Random(f"{seed}:{period}:described")
    for item in items:
        skus = [
            (description, group)
            for sku, description, group, _ in INSIGHT_SKUS
            if INSIGHT_SKU_PLACES[sku][0] == item["product"]
        ]
        if skus and rng.random() < INSIGHT_DESCRIBED_SHARE:
            item["description"], item["group_description"] = rng.choice(skus)


def team_of(seed: int) -> dict[str, str]:
    """The seed's team: a uuid of its own and a name no other seed has."""
    index = seed - FIRST_TEAM_SEED
    name = TEAM_NAMES[index % len(TEAM_NAMES)]
    if not 0 <= index < len(TEAM_NAMES):
        name = f"{name} {seed}"
    return {"uuid": str(uuid.uuid5(NAMESPACE, f"{seed}:team")), "name": name}


def team_token(n: int) -> str:
    """The n-th sample team's token (from 1): `sandbox-token`, `sandbox-token-2`, …"""
    return "sandbox-token" if n == 1 else f"sandbox-token-{n}"


def build_teams(
    n: int,
    profile: str = "default",
    today: date | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, SandboxData]:
    """n distinct sample accounts by token, in order: `sandbox-token` (seed 7, "Example Co"),
    `sandbox-token-2` (seed 8), …, for `SandboxServer.with_teams`; all as of one moment."""
    if n < 1:
        raise ValueError("build_teams needs n >= 1")
    moment = as_of(now, today)
    return {
        team_token(k + 1): build_dataset(profile, seed=FIRST_TEAM_SEED + k, now=moment)
        for k in range(n)
    }


def _split(rng: random.Random, total: int, weights: list[float]) -> list[int]:
    """`total` cents in parts proportional to `weights`, summing to `total` exactly."""
    whole = sum(weights)
    parts = [int(total * w // whole) for w in weights]
    for n in rng.sample(range(len(parts)), total - sum(parts)):
        parts[n] += 1
    return parts


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
    cents = _split(rng, max(target, 0), weights)
    same_day = [n for n, p in enumerate(points) if p["start_date"] == INSIGHTS_DUPLICATE_DAY]
    if len(same_day) >= 3:
        # Two identical points on one day, both real charges; the odd cent goes to a third.
        first, second, other = same_day[:3]
        pair = cents[first] + cents[second]
        cents[first] = cents[second] = pair // 2
        cents[other] += pair % 2
        points[second] = dict(points[first])
    for point, amount in zip(points, cents, strict=True):
        point["total_amount"] = cents_text(amount)
    return points


def _insights(
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
            target = _cents(preview["amount"]) * days // max(today.day, 1)
        elif period in by_period:
            days = month_bounds(period)[2]
            target = _cents(by_period[period]["amount"])
        else:
            days = 0
        if days:
            if period != INSIGHTS_EXACT_MONTH:
                target += rng.choice((-1, 1)) * rng.randint(3, 450)
            points += _insight_month(seed, urn, period, days, target)
        period = add_months(period, 1)
    return points


def _stamp(rng: random.Random, month: str, day: int) -> str:
    """An ISO 8601 UTC time on that day of `month`, at a random second."""
    hms = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    return f"{month}-{day:02d}T{hms}Z"


def _billing_history(
    seed: int, invoices: list[dict[str, Any]], generated_at: str
) -> list[dict[str, Any]]:
    """An Invoice entry early in the month after each invoice's period and its Payment a few
    days later (both with the invoice's ids), plus HISTORY_EXTRAS; newest first, none after
    `generated_at`. Every final invoice has its Invoice entry: one listed before its random
    time on the 1st or 2nd (the month just closed, seen early on the 1st) is billed at
    `generated_at`; its payment and the rest wait for their day."""
    entries: list[dict[str, Any]] = []
    for invoice in invoices:
        period = invoice["invoice_period"]
        rng = random.Random(f"{seed}:{period}:history")
        billed = add_months(period, 1)
        day = rng.randint(1, 2)

        ids = {"invoice_id": invoice["invoice_id"], "invoice_uuid": invoice["invoice_uuid"]}
        month_name = MONTH_NAMES[int(period[5:]) - 1]
        entries.append(
            {
                "description": f"Invoice for {month_name} {period[:4]}",
                "amount": invoice["amount"],
                **ids,
                "date": min(_stamp(rng, billed, day), generated_at),
                "type": "Invoice",
            }
        )
        cents = _cents(invoice["amount"])
        card = rng.choice(["Visa 4242", "MC 5454"])
        paid = day + rng.randint(2, 5)
        if cents and period == HISTORY_ATTEMPT_FAILED:
            entries.append(
                {
                    "description": f"Payment attempt failed ({card}): card declined",
                    "amount": "0.00",
                    "date": _stamp(rng, billed, paid - 1),
                    "type": "AttemptFailed",
                }
            )
        if cents:
            entries.append(
                {
                    "description": f"Payment ({card})",
                    "amount": cents_text(-cents),
                    **ids,
                    "date": _stamp(rng, billed, paid),
                    "type": "Payment",
                }
            )
        for extra_day, kind, description, amount in HISTORY_EXTRAS.get(period, []):
            entries.append(
                {
                    "description": description,
                    "amount": cents_text(amount),
                    "date": _stamp(rng, period, extra_day),
                    "type": kind,
                }
            )
    entries = [e for e in entries if e["date"] <= generated_at]
    entries.sort(key=lambda e: e["date"], reverse=True)
    return entries


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
    key: str  # the alert key (pipeline.defs.alert_checks)


def _day_costs(data: SandboxData, sku: str) -> dict[str, int]:
    costs: dict[str, int] = {}
    for point in data.insights:
        if point["sku"] == sku:
            costs[point["start_date"]] = costs.get(point["start_date"], 0) + _cents(
                point["total_amount"]
            )
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
    region = INSIGHT_SKU_PLACES[sku][1][0]
    spike = spike_day.isoformat()
    base = {"usage_team_urn": data.team_urn, "description": description}
    points = [{**base, "start_date": spike, "total_amount": spike_usd, "region": region,
               "sku": sku, "group_description": group}]  # fmt: skip
    spike_total = cents_text(_day_costs(data, sku).get(spike, 0) + _cents(spike_usd))
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
        PlantedAnomaly("spike", sku, spike, region, spike_total, f"spike:{team}:sku:{sku}:{spike}"),
        PlantedAnomaly(
            "new_sku",
            new_sku,
            new_sku_from.isoformat(),
            new_region,
            new_sku_usd,
            f"new_sku:{team}:{new_sku}",
        ),
    ]

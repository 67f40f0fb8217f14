"""Account profiles: which months an account has, and how many items each month bills.

`default` runs from FIRST_PERIOD with a few large and one empty month; `bench` is a fixed load
for timing; `bench-x3` three of those back to back (past the rate limit); `recent` only the last
few closed months, so a sandbox can serve a thousand teams in little memory.
"""

from __future__ import annotations

import random

from pipeline.sandbox.amounts import add_months

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


def padded(profile: str) -> bool:
    """Whether the profile's months hold exactly their count of items (bench profiles), with
    no credit or tax line on top, so the page count is fixed."""
    return profile not in ("default", "recent")


def month_counts(profile: str, seed: int, current: str) -> dict[str, int]:
    """Each closed month before `current` the profile bills, oldest first, with its item count."""
    if profile == "default":
        months = []
        period = FIRST_PERIOD
        while period < current:
            months.append(period)
            period = add_months(period, 1)
        return {
            p: 0
            if p == EMPTY_MONTH
            else LARGE_MONTHS.get(p, random.Random(f"{seed}:{p}:n").randint(15, 80))
            for p in months
        }
    if profile == "recent":
        months = [add_months(current, -n) for n in range(RECENT_MONTHS, 0, -1)]
        return {p: random.Random(f"{seed}:{p}:n").randint(15, 80) for p in months}
    if profile in PROFILES:
        copies = PROFILES[profile]
        months = [add_months(current, -n) for n in range(BENCH_INVOICES * copies, 0, -1)]
        bench_counts = [c for k in range(copies) for c in _bench_counts(seed + k)]
        return dict(zip(months, bench_counts, strict=True))
    raise ValueError(f"unknown sandbox profile {profile!r} ({', '.join(PROFILES)})")


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

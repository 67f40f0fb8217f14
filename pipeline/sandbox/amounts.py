"""Money and months as the sandbox's generators share them.

Amounts are integer cents while generated and strings of dollars once served, as the API writes
them; months are `YYYY-MM` strings, the API's `invoice_period`.
"""

from __future__ import annotations

import random
from datetime import date

MONTH_NAMES = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip


def cents_text(cents: int) -> str:
    """Cents as the API writes dollars: `-12.05`, `0.00`."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def cents(amount: str) -> int:
    """The API's dollars back to cents, exactly (no float on the way)."""
    sign = -1 if amount.startswith("-") else 1
    whole, _, frac = amount.lstrip("-").partition(".")
    return sign * (int(whole) * 100 + int((frac + "00")[:2]))


def split(rng: random.Random, total: int, weights: list[float]) -> list[int]:
    """`total` cents in parts proportional to `weights`, summing to `total` exactly."""
    whole = sum(weights)
    parts = [int(total * w // whole) for w in weights]
    for n in rng.sample(range(len(parts)), total - sum(parts)):
        parts[n] += 1
    return parts


def month_bounds(period: str) -> tuple[str, str, int]:
    """The month's first instant, the next month's first instant, and its number of days."""
    year, month = int(period[:4]), int(period[5:])
    nxt = (year + (month == 12), month % 12 + 1)
    days = (date(*nxt, 1) - date(year, month, 1)).days
    return f"{period}-01T00:00:00Z", f"{nxt[0]:04d}-{nxt[1]:02d}-01T00:00:00Z", days


def add_months(period: str, n: int) -> str:
    """The month `n` months after `period` (before it when negative)."""
    index = int(period[:4]) * 12 + int(period[5:]) - 1 + n
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def stamp(rng: random.Random, month: str, day: int) -> str:
    """An ISO 8601 UTC time on that day of `month`, at a random second."""
    hms = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
    return f"{month}-{day:02d}T{hms}Z"

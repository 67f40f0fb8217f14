"""The grain of every partition: a month, written `YYYY-MM`. Its pattern and format, once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

MONTH_FORMAT = "%Y-%m"
# A month as DigitalOcean writes `invoice_period`; RE2 (DuckDB) and Python read it alike.
MONTH_PATTERN = r"\d{4}-(?:0[1-9]|1[0-2])"
FIRST_YEAR = 2000
_MONTH = re.compile(MONTH_PATTERN)


def is_month(value: object) -> bool:
    """A real `YYYY-MM` month from FIRST_YEAR on."""
    return (
        isinstance(value, str)
        and _MONTH.fullmatch(value) is not None
        and int(value[:4]) >= FIRST_YEAR
    )


def month_of(when: datetime) -> str:
    return when.strftime(MONTH_FORMAT)


def first_day(month: str) -> datetime:
    """Midnight UTC on the month's first day."""
    return datetime(int(month[:4]), int(month[5:]), 1, tzinfo=UTC)


def previous_month(month: str) -> str:
    return month_of(first_day(month) - timedelta(days=1))


def next_month(month: str) -> str:
    return month_of(first_day(month) + timedelta(days=32))

"""Values a user types: numbers, dollar amounts, budgets and months, each read exactly or
refused with a message that names the setting (`what`) and the rule it breaks."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, DecimalException
from typing import Any

from pipeline.months import FIRST_YEAR, MONTH_PATTERN, month_of

# Amounts are compared with DECIMAL(18,2) columns: anything larger cannot be a bill.
MAX_USD = Decimal(10) ** 16 - Decimal("0.01")
OWNER_KINDS = ("project", "tag")


class SettingsError(ValueError):
    """A setting or partition key is malformed; the message names which one."""


def clip(value: str, limit: int = 40) -> str:
    """A value as messages quote it: repr, cut short, so a pasted blob keeps them a line long."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def number(text: str, what: str, noun: str = "a number") -> Decimal:
    """A finite decimal read exactly, or a SettingsError naming `what`."""
    try:
        value = Decimal(text)
    except DecimalException:
        raise SettingsError(f"{what} {clip(text)} is not {noun}") from None
    if not value.is_finite():
        raise SettingsError(f"{what} {clip(text)} is not {noun}")
    return value


def usd(text: str, what: str) -> Decimal:
    """A non-negative amount in dollars with at most two decimals, exactly (never a float), and
    no larger than a DECIMAL(18,2) column holds."""
    shown = text.strip()
    value = number(shown.removeprefix("$").replace("_", ""), what, "an amount in dollars")
    # Range first: quantizing 1e400 would raise decimal.InvalidOperation.
    if not 0 <= value <= MAX_USD:
        raise SettingsError(
            f"{what} {clip(shown)} is out of range: an amount from 0 to {MAX_USD:,} dollars"
        )
    if value != value.quantize(Decimal("0.01")):
        raise SettingsError(f"{what} {clip(shown)} must have at most two decimals")
    return value.quantize(Decimal("0.01"))


def whole_number(value: Any, what: str, low: int, high: int, noun: str) -> int:
    """A whole number from `low` to `high`, in ASCII digits (int() would take other scripts')."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) < 10) or not low <= int(text) <= high:
        raise SettingsError(f"{what} {clip(text)} must be {noun}, from {low} to {high}")
    return int(text)


def share(value: Any, what: str) -> Decimal:
    """A share above 0 and at most 1, written as such (0.8) or as a percentage (80%)."""
    text = str(value).strip()
    amount = number(text.removesuffix("%"), what)
    percent = text.endswith("%")
    # Range first, then the division: 1e999999% would overflow it.
    if not 0 < amount <= (100 if percent else 1):
        raise SettingsError(
            f"{what} {clip(text)} must be a share between 0 and 1 (e.g. 0.8 or 80%)"
        )
    return amount / 100 if percent else amount


def positive(value: Any, what: str, ceiling: Decimal) -> Decimal:
    """A number above 0 and at most `ceiling` (beyond which the setting can only be a typo)."""
    text = str(value).strip()
    amount = number(text, what)
    if not 0 < amount <= ceiling:
        raise SettingsError(f"{what} {clip(text)} must be a number above 0 and at most {ceiling:,}")
    return amount


def _amounts(
    given: str | Mapping[str, Any], variable: str, form: str, valid: Callable[[str], bool]
) -> dict[str, Decimal]:
    """`key=amount, key=amount` (split at each key's last `=`), or a mapping of the same (a
    run's config), each key `valid` and named once, each amount in dollars; an error names the
    variable, the entry and the `form` it must have."""
    if isinstance(given, str):
        parts = (part.strip() for part in given.split(","))
        entries = [(entry, *entry.rpartition("=")) for entry in parts if entry]
    else:
        entries = [(f"{key}={amount}", str(key), "=", str(amount)) for key, amount in given.items()]
    budgets: dict[str, Decimal] = {}
    for entry, raw_key, sep, amount in entries:
        key = raw_key.strip()
        if not sep or not key or not valid(key):
            raise SettingsError(f"{variable} entry {entry!r} is not {form}")
        if key in budgets:
            raise SettingsError(f"{variable} names {key!r} twice")
        budgets[key] = usd(amount, f"{variable} entry for {key!r}:")
    return budgets


def parse_budgets(text: str | Mapping[str, Any]) -> dict[str, Decimal]:
    """`BUDGETS`: `Team A=5000, <team uuid>=1200`, keyed by team name or uuid."""
    return _amounts(
        text, "BUDGETS", "`team name or uuid=amount` (e.g. Team A=5000)", lambda key: True
    )


def is_owner(key: str) -> bool:
    """`project:<name>`, or `tag:<key>:<value>` with both parts."""
    kind, _, name = key.partition(":")
    if kind == "tag":
        tag_key, colon, value = name.partition(":")
        return bool(tag_key and colon and value)
    return kind in OWNER_KINDS and bool(name)


def parse_owner_budgets(text: str | Mapping[str, Any]) -> dict[str, Decimal]:
    """`OWNER_BUDGETS`: `project:web=2000, tag:env:prod=1500`, a monthly budget for a project
    (by name) or a tag value (`tag:<key>:<value>`; a plain tag's value is `true`), in every
    team that has it."""
    return _amounts(
        text,
        "OWNER_BUDGETS",
        "`project:<name>=amount` or `tag:<key>:<value>=amount` "
        "(e.g. project:web=2000, tag:env:prod=1500)",
        is_owner,
    )


def validate_period(value: str, what: str = "invoice period") -> str:
    """Return `value` if it is a real `YYYY-MM` month from FIRST_YEAR on, else raise naming
    `what` and the rule it breaks (the form, or the year)."""
    if not isinstance(value, str) or not re.fullmatch(MONTH_PATTERN, value):
        raise SettingsError(f"{what} {value!r} is not a month in YYYY-MM form (e.g. 2024-05)")
    if int(value[:4]) < FIRST_YEAR:
        raise SettingsError(
            f"{what} {value!r} is out of range: the year must be {FIRST_YEAR} or later"
        )
    return value


def validate_start_period(value: str, now: datetime) -> str:
    """`INVOICE_START_PERIOD`: a month (see `validate_period`) no later than `now`'s (UTC), as
    partitions run from it through the current month."""
    validate_period(value, "INVOICE_START_PERIOD")
    current = month_of(now.astimezone(UTC))
    if value > current:
        raise SettingsError(
            f"INVOICE_START_PERIOD {value!r} is out of range: it must not be after the current "
            f"month ({current}), as partitions run from it through the current month"
        )
    return value

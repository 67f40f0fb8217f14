"""Deterministic sample accounts, shaped like real DigitalOcean bills: what the sandbox serves.

One account is a team's invoices with their items and summaries (`invoices`), its Billing
Insights points (`insights`), its billing history and balance (`history`) and its resources
(`inventory`), all as of one moment; the profile (`profiles`) decides which months it has and
the seed (`teams`) whose team it is. `build_teams(n)` gives n of them keyed by token, seeds 7,
8, 9, …; seed 7 is the default account, "Example Co".
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pipeline.sandbox import invoices as bills
from pipeline.sandbox.amounts import cents, cents_text
from pipeline.sandbox.history import balance, billing_history, snapshot_time
from pipeline.sandbox.insights import insight_points
from pipeline.sandbox.inventory import Inventory, build_inventory
from pipeline.sandbox.profiles import month_counts, padded
from pipeline.sandbox.teams import FIRST_TEAM_SEED, team_of, team_token


@dataclass
class SandboxData:
    """What the sandbox serves. Mutable, and cheap to copy, so tests can change the account."""

    invoices: list[dict[str, Any]]
    preview: dict[str, Any] | None
    items: dict[str, list[dict[str, Any]]]
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The token's team (`GET /v2/account` → `account.team`): {"uuid", "name"}. Its URN
    # `do:team:<uuid>` is the only `account_urn` Billing Insights answers for.
    team: dict[str, str] = field(default_factory=lambda: team_of(FIRST_TEAM_SEED))
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

    def invoice_for(self, period: str) -> dict[str, Any]:
        """The month's one final invoice, the very dict the sandbox lists (edits show)."""
        (found,) = [i for i in self.invoices if i["invoice_period"] == period]
        return found

    def reissued(
        self, period: str, new_uuid: str, items: list[dict[str, Any]] | None = None
    ) -> SandboxData:
        """A copy where the month's bill (its final invoice, else the open month's preview) is
        a final invoice under `new_uuid`, with `items` (else the old lines) and their sum: how
        DigitalOcean closes a month or reissues an invoice, for tests of the loader's replace.
        The old uuid's lines and summary stay reachable, as they do at the API."""
        changed = self.copy()
        preview = changed.preview
        closing = preview is not None and preview["invoice_period"] == period
        old = preview if closing and preview is not None else changed.invoice_for(period)
        lines = changed.items[old["invoice_uuid"]] if items is None else items
        total = cents_text(sum(cents(line["amount"]) for line in lines))
        new = {k: v for k, v in old.items() if k != "updated_at"}
        new |= {"invoice_uuid": new_uuid, "amount": total}
        changed.items[new_uuid] = lines
        if closing:
            changed.preview = None
            changed.invoices.insert(0, new)
        else:
            changed.invoices[changed.invoices.index(old)] = new
        return changed

    @property
    def team_urn(self) -> str:
        return f"do:team:{self.team['uuid']}"

    def copy(self) -> SandboxData:
        return copy.deepcopy(self)


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


def build_dataset(
    profile: str = "default",
    today: date | None = None,
    seed: int = FIRST_TEAM_SEED,
    *,
    now: datetime | None = None,
) -> SandboxData:
    """Final invoices for every closed month plus the open month's preview, newest first, as
    the account stands at `now` (or noon of `today`; the clock when neither is given)."""
    moment = as_of(now, today)
    today = moment.date()
    current = f"{today.year:04d}-{today.month:02d}"
    counts = month_counts(profile, seed, current)
    team = team_of(seed)
    items: dict[str, list[dict[str, Any]]] = {}
    invoices, summaries = [], {}
    for period, count in counts.items():
        month_items = bills.month_items(seed, period, count)
        if padded(profile):
            month_items = month_items[:count]
            month_items += [
                bills.item(random.Random(f"{seed}:{period}:pad:{k}"), period, k, 28, seed)[0]
                for k in range(count - len(month_items))
            ]
        bills.describe_as_insights(seed, period, month_items)
        invoice = bills.invoice(seed, period, month_items)
        items[invoice["invoice_uuid"]] = month_items
        summaries[invoice["invoice_uuid"]] = bills.summary(invoice, month_items, team["name"])
        invoices.append(invoice)
    invoices.reverse()
    preview_items = bills.month_items(seed, current, max(1, today.day * 2))
    bills.describe_as_insights(seed, current, preview_items)
    preview = bills.invoice(seed, current, preview_items)
    generated_at = snapshot_time(moment)
    preview["updated_at"] = generated_at
    items[preview["invoice_uuid"]] = preview_items
    summaries[preview["invoice_uuid"]] = bills.summary(preview, preview_items, team["name"])
    history = billing_history(seed, invoices, generated_at)
    first = next(iter(counts), current)
    return SandboxData(
        invoices=invoices,
        preview=preview,
        items=items,
        summaries=summaries,
        team=team,
        insights=insight_points(seed, f"do:team:{team['uuid']}", invoices, preview, today),
        billing_history=history,
        balance=balance(history, preview, generated_at),
        inventory=build_inventory(seed, items, f"{first}-01T00:00:00Z", moment),
    )


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

"""The billing history (`GET /v2/customers/my/billing_history`) and the balance.

Besides each invoice and its payment: credits, a refund, a failed payment attempt, and a type
outside the spec's enum ("Promotion"): the API may add types, and a loader must keep them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from pipeline.sandbox.amounts import MONTH_NAMES, add_months, cents, cents_text, stamp

# Billing history besides each invoice and its payment: (day of the month, type, description,
# cents). Payments and credits are negative.
HISTORY_EXTRAS: dict[str, list[tuple[int, str, str, int]]] = {
    "2023-06": [(14, "Credit", "Referral credit", -2_500)],
    "2024-02": [(9, "Credit", "Service credit: nyc3 network incident", -1_520)],
    "2024-09": [(20, "Refund", "Refund of overpayment (Visa 4242)", 4_250)],
    "2025-05": [(3, "Credit", "Credit: Droplet downtime (SLA)", -713)],
    "2025-10": [(17, "Promotion", "Hacktoberfest promotional credit ✓", -5_000)],
}
# The month whose payment first fails (an AttemptFailed entry the day before it succeeds).
HISTORY_ATTEMPT_FAILED = "2025-02"


def snapshot_time(now: datetime) -> str:
    """The balance's `generated_at`: the day's snapshot at 06:31:50 UTC once that time has
    passed, else midnight, so it is never after `now` and the same for every build of a day's
    half (re-runs see one snapshot)."""
    today = now.date()
    taken = datetime(today.year, today.month, today.day, 6, 31, 50, tzinfo=UTC)
    if now < taken:
        taken = datetime(today.year, today.month, today.day, tzinfo=UTC)
    return taken.strftime("%Y-%m-%dT%H:%M:%SZ")


def balance(
    history: list[dict[str, Any]], preview: dict[str, Any], generated_at: str
) -> dict[str, str]:
    """`GET /v2/customers/my/balance`: what the history leaves owing, plus the open month."""
    account_balance = sum(cents(entry["amount"]) for entry in history)
    return {
        "month_to_date_balance": cents_text(account_balance + cents(preview["amount"])),
        "account_balance": cents_text(account_balance),
        "month_to_date_usage": preview["amount"],
        "generated_at": generated_at,
    }


def billing_history(
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
                "date": min(stamp(rng, billed, day), generated_at),
                "type": "Invoice",
            }
        )
        owed = cents(invoice["amount"])
        card = rng.choice(["Visa 4242", "MC 5454"])
        paid = day + rng.randint(2, 5)
        if owed and period == HISTORY_ATTEMPT_FAILED:
            entries.append(
                {
                    "description": f"Payment attempt failed ({card}): card declined",
                    "amount": "0.00",
                    "date": stamp(rng, billed, paid - 1),
                    "type": "AttemptFailed",
                }
            )
        if owed:
            entries.append(
                {
                    "description": f"Payment ({card})",
                    "amount": cents_text(-owed),
                    **ids,
                    "date": stamp(rng, billed, paid),
                    "type": "Payment",
                }
            )
        for extra_day, kind, description, amount in HISTORY_EXTRAS.get(period, []):
            entries.append(
                {
                    "description": description,
                    "amount": cents_text(amount),
                    "date": stamp(rng, period, extra_day),
                    "type": kind,
                }
            )
    entries = [e for e in entries if e["date"] <= generated_at]
    entries.sort(key=lambda e: e["date"], reverse=True)
    return entries

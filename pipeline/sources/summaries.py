"""Invoice summaries: taxes, credits and charges per invoice, for reconciliation.

A child of the invoices source: its targets are the invoices of the latest good invoice fetch of
each month, so the invoice list is not paged again and the items path keeps its minimum requests.
"""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd

from pipeline.api import SINGLE
from pipeline.sources.base import (
    FETCH,
    Check,
    Endpoint,
    Normalized,
    RawData,
    Source,
    Table,
    Target,
    Targets,
)
from pipeline.sources.fields import MONEY, MONEY_PATTERN, InvalidPayloadError, decimal, text, where
from pipeline.sources.invoices import FINAL, INVOICE_PATH, INVOICES, invoice_pages, landed_invoices

SUMMARY_COLUMNS = [
    "invoice_uuid",
    "invoice_id",
    "invoice_period",
    "status",
    "amount",
    "product_charges",
    "overages",
    "taxes",
    "credits_and_adjustments",
    "user_name",
    "user_company",
    "user_email",
    "loaded_at",
]
SUMMARY_PARTS = ("product_charges", "overages", "taxes", "credits_and_adjustments")


def normalize_summaries(raw: pd.DataFrame, loaded_at: datetime) -> pd.DataFrame:
    """Summary bodies (invoice_uuid, invoice_period, status, body, FETCH) → `invoice_summaries`
    rows, each marked with its fetch.

    The summary names its month `billing_period`; it must agree with the invoice list.
    """
    problems: list[str] = []
    bodies = [json.loads(body) for body in raw["body"]]
    flat = pd.DataFrame(
        {
            "invoice_uuid": raw["invoice_uuid"].to_numpy(),
            "invoice_period": raw["invoice_period"].to_numpy(),
            "invoice_id": [b.get("invoice_id") for b in bodies],
            "billing_period": [b.get("billing_period") for b in bodies],
            "amount": [b.get("amount") for b in bodies],
            **{
                part: [
                    (b.get(part) or {}).get("amount") if isinstance(b.get(part), dict) else None
                    for b in bodies
                ]
                for part in SUMMARY_PARTS
            },
            **{f: [b.get(f) for b in bodies] for f in ("user_name", "user_company", "user_email")},
        },
        index=raw.index,
    )
    billing = text(flat, "billing_period", problems)
    problems += where(
        flat.assign(billing_period=billing),
        billing.notna() & (billing != flat["invoice_period"]),
        "billing_period",
        "differs from the invoice's period",
    )
    out = pd.DataFrame(index=flat.index)
    out["invoice_uuid"] = flat["invoice_uuid"].astype("string")
    out["invoice_id"] = text(flat, "invoice_id", problems)
    out["invoice_period"] = flat["invoice_period"].astype("string")
    out["status"] = raw["status"].astype("string")
    out["amount"] = decimal(flat, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    for part in SUMMARY_PARTS:
        out[part] = decimal(flat, part, MONEY_PATTERN, MONEY, problems, required=False)
    for field in ("user_name", "user_company", "user_email"):
        out[field] = text(flat, field, problems)
    out["loaded_at"] = pd.Timestamp(loaded_at)
    out[FETCH] = raw[FETCH].to_numpy()
    if problems:
        raise InvalidPayloadError(problems)
    return out[[*SUMMARY_COLUMNS, FETCH]].reset_index(drop=True)


# -- the declaration ------------------------------------------------------------------------
RECONCILIATION_PROBLEMS = """
    SELECT team_name, invoice_uuid, invoice_period, status, invoice_amount, summary_amount,
           items_sum, taxes, credits_and_adjustments, items_difference, problem
    FROM invoice_reconciliation
    WHERE problem IS NOT NULL
      AND invoice_period IN (SELECT invoice_period FROM invoice_summaries)
    ORDER BY invoice_period
"""


def invoices_of_the_months(found: Targets) -> list[Target]:
    """The invoices the latest good invoice fetch loaded for each month."""
    assert found.parent is not None
    return landed_invoices(found.parent)


def normalize(raw: RawData, loaded_at: datetime) -> Normalized:
    """The summaries, each marked with its fetch (the engine splits several teams' by it;
    their invoices' uuids are the API's, never shared between teams)."""
    bodies = invoice_pages(raw, "invoice_summary")
    return Normalized({"invoice_summaries": normalize_summaries(bodies, loaded_at)})


SUMMARIES = Source(
    name="invoice_summaries",
    description="Per invoice: product charges, overages, taxes, credits and adjustments.",
    parent=INVOICES,
    endpoint=Endpoint("invoice_summary", INVOICE_PATH + "/summary", SINGLE, noun="summary"),
    targets=invoices_of_the_months,
    normalize=normalize,
    many_fetches=True,
    tables=(
        Table(
            "invoice_summaries",
            ("invoice_uuid",),
            "Per invoice: product charges, overages, taxes, credits and adjustments.",
            totals=("taxes", "credits_and_adjustments"),
            noun="summaries",
            closed=FINAL,
        ),
    ),
    checks=(
        Check(
            "invoices_reconcile",
            "invoice_summaries",
            RECONCILIATION_PROBLEMS,
            "Invoice amount = summary amount, and items add up to it (or do with taxes and "
            "credits).",
            "every invoice reconciles",
            also_reads=("invoice_items",),
        ),
    ),
    target_noun="invoice",
    progress_name="summaries",
    missing="is in the invoice list but its summary answers 404",
)

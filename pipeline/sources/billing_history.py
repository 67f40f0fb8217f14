"""Billing history: invoices, payments, credits and refunds, one list across all months.

The list is paged like the invoice list, `meta.total` optional. Each entry belongs to the month
of its `date`; a run keeps the entries of its months. An entry type the spec does not list is
kept as it is.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from pipeline.api import LINKS
from pipeline.sources.base import FETCH, Endpoint, Normalized, RawData, Source, Table
from pipeline.sources.fields import (
    MONEY,
    MONEY_PATTERN,
    PLACE,
    InvalidPayloadError,
    decimal,
    records,
    text,
    timestamp,
    where,
)

COLUMNS = [
    "entry_month",
    "entry_number",
    "date",
    "type",
    "description",
    "amount",
    "invoice_uuid",
    "invoice_id",
    "loaded_at",
]


def normalize(raw: RawData, loaded_at: datetime) -> Normalized:
    """The entries of each run month, from the fetch that month is read from (each team's own,
    when several teams' fetches are normalized in one call)."""
    entries = records(raw.pages_of("billing_history"), "billing_history")
    if entries.empty:
        return Normalized({"billing_history": pd.DataFrame(columns=[*COLUMNS, FETCH])})
    entries["entry_number"] = entries.groupby("fetch_id").cumcount().add(1).astype("int32")
    entries[PLACE] = "billing history entry " + entries["entry_number"].astype(str)
    problems: list[str] = []
    out = pd.DataFrame(index=entries.index)
    out["date"] = timestamp(entries, "date", problems)
    problems += where(entries, out["date"].isna(), "date", "is missing")
    out["entry_month"] = out["date"].dt.strftime("%Y-%m").astype("string")
    out["entry_number"] = entries["entry_number"]
    out["type"] = text(entries, "type", problems)
    problems += where(entries, out["type"].isna(), "type", "is missing")
    out["description"] = text(entries, "description", problems)
    out["amount"] = decimal(entries, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    for field in ("invoice_uuid", "invoice_id"):
        out[field] = text(entries, field, problems)
    out["loaded_at"] = pd.Timestamp(loaded_at)
    out[FETCH] = entries["fetch_id"]
    if problems:
        raise InvalidPayloadError(problems)
    mine = raw.read_from(out["entry_month"], entries["fetch_id"])
    return Normalized({"billing_history": out.loc[mine, [*COLUMNS, FETCH]].reset_index(drop=True)})


HISTORY = Source(
    name="billing_history",
    description="Invoices, payments, credits and refunds as the account's billing history lists.",
    index=Endpoint(
        "billing_history",
        "/v2/customers/my/billing_history",
        LINKS,
        records="billing_history",
        noun="entries",
    ),
    normalize=normalize,
    many_fetches=True,
    tables=(
        Table(
            "billing_history",
            ("entry_month", "entry_number"),
            "One row per billing history entry: invoices, payments, credits, refunds.",
            noun="entries",
            partition_column="entry_month",
            spend_by="type",
        ),
    ),
)

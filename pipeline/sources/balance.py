"""The balance: where the month stands today. One snapshot per fetch, kept as history."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd

from pipeline.api import SINGLE
from pipeline.sources.base import FETCH, Endpoint, Normalized, RawData, Source, Table
from pipeline.sources.fields import (
    MONEY,
    MONEY_PATTERN,
    PLACE,
    InvalidPayloadError,
    decimal,
    timestamp,
    where,
)

AMOUNTS = ("month_to_date_balance", "account_balance", "month_to_date_usage")
COLUMNS = ["generated_at", "balance_month", *AMOUNTS, "loaded_at"]


def normalize(raw: RawData, loaded_at: datetime) -> Normalized:
    pages = raw.pages_of("balance").drop_duplicates("fetch_id")
    bodies = [json.loads(body) for body in pages["body"]]
    snapshots = pd.DataFrame(
        {field: [body.get(field) for body in bodies] for field in ("generated_at", *AMOUNTS)}
    )
    snapshots[PLACE] = [f"balance of fetch {fetch_id}" for fetch_id in pages["fetch_id"]]
    problems: list[str] = []
    out = pd.DataFrame(index=snapshots.index)
    out["generated_at"] = timestamp(snapshots, "generated_at", problems)
    problems += where(snapshots, out["generated_at"].isna(), "generated_at", "is missing")
    out["balance_month"] = out["generated_at"].dt.strftime("%Y-%m").astype("string")
    for field in AMOUNTS:
        out[field] = decimal(snapshots, field, MONEY_PATTERN, MONEY, problems, required=True)
    out["loaded_at"] = pd.Timestamp(loaded_at)
    out[FETCH] = pages["fetch_id"].to_numpy()
    if problems:
        raise InvalidPayloadError(problems)
    out = out.drop_duplicates([FETCH, "generated_at"])
    return Normalized({"balance": out[[*COLUMNS, FETCH]].reset_index(drop=True)})


BALANCE = Source(
    name="balance",
    description="Month-to-date balance and usage, one snapshot per fetch.",
    index=Endpoint("balance", "/v2/customers/my/balance", SINGLE, noun="balance"),
    normalize=normalize,
    many_fetches=True,
    tables=(
        Table(
            "balance",
            ("generated_at",),
            "One row per balance snapshot: month-to-date balance and usage, account balance.",
            noun="snapshots",
            partition_column="balance_month",
            totals=("month_to_date_usage",),
            write="merge",
        ),
    ),
)

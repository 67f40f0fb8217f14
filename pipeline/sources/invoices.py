"""Invoices and their line items: the invoice list finds the month's invoices (final, else the
month-to-date preview), each invoice's items are fetched page by page (their rows:
`pipeline.sources.invoice_items`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from pipeline.api import LINKS, Page
from pipeline.months import MONTH_PATTERN, is_month
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
from pipeline.sources.fields import (
    MONEY,
    MONEY_PATTERN,
    InvalidPayloadError,
    decimal,
    text,
    timestamp,
    where,
)
from pipeline.sources.invoice_items import normalize_items

INVOICE_COLUMNS = [
    "invoice_uuid",
    "invoice_id",
    "invoice_period",
    "amount",
    "status",
    "updated_at",
    "items_total",
    "loaded_at",
]


def normalize_invoices(entries: pd.DataFrame, loaded_at: datetime) -> pd.DataFrame:
    """Invoice entries (status, items_total, entry JSON as listed, and FETCH if any) →
    `invoices` rows, each marked with its entry's FETCH when the entries carry one."""
    problems: list[str] = []
    records = [json.loads(entry) for entry in entries["entry"]]
    raw = pd.DataFrame.from_records(records) if records else pd.DataFrame(index=range(0))
    raw.index = entries.index
    for column in ("invoice_uuid", "invoice_period"):
        if column not in raw.columns:
            raw[column] = pd.NA
    out = pd.DataFrame(index=raw.index)
    out["invoice_uuid"] = text(raw, "invoice_uuid", problems)
    out["invoice_id"] = text(raw, "invoice_id", problems)
    period = text(raw, "invoice_period", problems)
    problems += where(
        raw.assign(invoice_period=period),
        ~period.str.fullmatch(MONTH_PATTERN).fillna(False).astype(bool),
        "invoice_period",
        "is not a YYYY-MM period",
    )
    out["invoice_period"] = period
    out["amount"] = decimal(raw, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    out["status"] = entries["status"].astype("string")
    out["updated_at"] = timestamp(raw, "updated_at", problems)
    out["items_total"] = entries["items_total"].astype("Int64")
    out["loaded_at"] = pd.Timestamp(loaded_at)
    columns = INVOICE_COLUMNS
    if FETCH in entries:
        out[FETCH] = entries[FETCH].to_numpy()
        columns = [*INVOICE_COLUMNS, FETCH]
    if problems:
        raise InvalidPayloadError(problems)
    return out[columns].reset_index(drop=True)


# -- the declaration ------------------------------------------------------------------------
# Checks on the stored tables: each query returns the offending rows.
ITEMS_MATCH_META_TOTAL = """
    SELECT i.invoice_uuid, i.invoice_period, i.items_total AS meta_total,
           count(it.line_number) AS loaded
    FROM invoices AS i
    LEFT JOIN invoice_items AS it USING (invoice_uuid, invoice_period)
    GROUP BY ALL
    HAVING loaded <> coalesce(i.items_total, -1)
    ORDER BY i.invoice_period
"""
ITEMS_SUM_TO_INVOICE = """
    SELECT i.invoice_uuid, i.invoice_period, i.status, i.amount AS invoice_amount,
           coalesce(sum(it.amount), 0) AS items_sum,
           coalesce(sum(it.amount), 0) - i.amount AS difference
    FROM invoices AS i
    LEFT JOIN invoice_items AS it USING (invoice_uuid, invoice_period)
    GROUP BY i.invoice_uuid, i.invoice_period, i.status, i.amount
    HAVING difference <> 0
    ORDER BY i.invoice_period
"""
DUPLICATE_LINES = """
    SELECT invoice_uuid, line_number, count(*) AS copies
    FROM invoice_items
    GROUP BY ALL
    HAVING copies > 1
"""
PERIOD_MISMATCH = f"""
    SELECT it.invoice_uuid, it.invoice_period AS item_period, i.invoice_period AS invoice_period,
           count(*) AS items
    FROM invoice_items AS it
    LEFT JOIN invoices AS i USING (invoice_uuid)
    WHERE i.invoice_period IS DISTINCT FROM it.invoice_period
       OR NOT regexp_full_match(it.invoice_period, '{MONTH_PATTERN}')
    GROUP BY ALL
"""  # noqa: S608 (a constant pattern, no input)

UNKNOWN_DURATION_UNITS = """
    SELECT duration_unit, count(*) AS items, min(invoice_period) AS first_period
    FROM invoice_items
    WHERE duration IS NOT NULL AND duration_hours IS NULL
    GROUP BY ALL
"""

INVOICES_PATH = "/v2/customers/my/invoices"
# A closed month's rows: its final invoices. A swap never leaves such a month with none.
FINAL = "status = 'final'"
INVOICE_PATH = INVOICES_PATH + "/{key}"


def invoice_target(uuid: str, period: str, status: str, entry: Any = None) -> Target:
    """An invoice to fetch for; the preview's pages are served under the literal `preview`."""
    return Target(
        key=uuid,
        partition=period,
        status=status,
        entry=entry,
        path_key="preview" if status == "preview" else None,
        label=f"invoice {uuid} ({period})",
    )


# An invoice's uuid as the API writes it; it becomes a path segment, so nothing else is let in.
UUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def listed_invoice(entry: Any, status: str) -> Target:
    """An invoice-list entry (or the preview) as a target, refused unless its uuid is a uuid and
    its period a real month: the period decides which month the swap replaces, so a listed
    `2026-13` must fail the fetch, not leave its real month with no invoice."""
    if not isinstance(entry, dict):
        raise InvalidPayloadError([f"invoice list entry is not an object: {_shown(entry)}"])
    uuid, period = entry.get("invoice_uuid"), entry.get("invoice_period")
    name = f"invoice {uuid!r}" if isinstance(uuid, str) else "an invoice list entry"
    problems = []
    if not isinstance(uuid, str) or not UUID_PATTERN.fullmatch(uuid):
        problems.append(f"{name}, field 'invoice_uuid': {uuid!r} is not a uuid")
    if not is_month(period):
        problems.append(f"{name}, field 'invoice_period': {period!r} is not a YYYY-MM month")
    if problems:
        raise InvalidPayloadError([f"{p} ({status} in the invoice list)" for p in problems])
    return invoice_target(uuid, period, status, entry)


def _shown(entry: Any) -> str:
    return json.dumps(entry, ensure_ascii=False)[:200]


def landed_invoices(targets: pd.DataFrame) -> list[Target]:
    """The invoices a landed invoice fetch set out to load (its raw targets), as targets again:
    what a child source, such as the summaries, fetches for."""
    return [
        invoice_target(uuid, period, status)
        for uuid, period, status in zip(
            targets["target_key"], targets["partition_key"], targets["status"], strict=True
        )
    ]


def invoice_pages(raw: RawData, endpoint: str) -> pd.DataFrame:
    """An endpoint's landed pages with the invoice each belongs to, its status, and the fetch
    the page came from."""
    pages = raw.pages_of(endpoint)
    status = dict(zip(raw.targets["target_key"], raw.targets["status"], strict=True))
    return pd.DataFrame(
        {
            "invoice_uuid": pages["request_key"].to_numpy(),
            "invoice_period": pages["partition_key"].to_numpy(),
            "status": pages["request_key"].map(status).to_numpy(),
            "page": pages["page"].to_numpy(),
            "body": pages["body"].to_numpy(),
            FETCH: pages["fetch_id"].to_numpy(),
        }
    )


def month_invoices(found: Targets) -> list[Target]:
    """The invoices that make up each month: its final invoices, else the preview.

    Once a month closes its final invoice supersedes the preview, so both are never loaded.
    """
    assert found.index is not None
    wanted = set(found.periods)
    listed, problems = [], []
    for entry in found.index.records:
        try:
            listed.append(listed_invoice(entry, "final"))
        except InvalidPayloadError as exc:
            problems += exc.problems
    if problems:
        raise InvalidPayloadError(problems)
    chosen = [target for target in listed if target.partition in wanted]
    closed = {target.partition for target in chosen}
    preview = found.index.pages[0].data.get("invoice_preview") if found.index.pages else None
    if preview:
        target = listed_invoice(preview, "preview")
        if target.partition in wanted - closed:
            chosen.append(target)
    return chosen


def _first_page_totals(pages: pd.DataFrame) -> dict[str, int | None]:
    """`meta.total` of each invoice's first item page: the item count the API announced."""
    first = pages[pages["page"] == 1]
    totals: dict[str, int | None] = {}
    for uuid, body in zip(first["invoice_uuid"], first["body"], strict=True):
        totals[uuid] = LINKS.total(Page.parse(INVOICE_PATH, 1, body))
    return totals


def normalize(raw: RawData, loaded_at: datetime) -> Normalized:
    """The landed invoice entries and item pages → `invoices` and `invoice_items`."""
    targets = raw.targets
    pages = invoice_pages(raw, "invoice_items")
    totals = _first_page_totals(pages)
    entries = pd.DataFrame(
        {
            "status": targets["status"].to_numpy(),
            "items_total": pd.array(
                [totals.get(key) for key in targets["target_key"]], dtype="Int64"
            ),
            "entry": targets["entry"].to_numpy(),
            # Several teams' fetches at once (a batch): each invoice's own.
            **({FETCH: targets[FETCH].to_numpy()} if FETCH in targets else {}),
        }
    )
    items, unknown = normalize_items(pages, loaded_at)
    return Normalized(
        {"invoices": normalize_invoices(entries, loaded_at), "invoice_items": items},
        [f"item fields not in the API spec (kept in raw only): {unknown}"] if unknown else [],
    )


def invariants(raw: RawData, tables: dict[str, pd.DataFrame], periods: Sequence[str]) -> list[str]:
    """What must hold before COMMIT: complete invoices, each listed once, months in range."""
    invoices, items = tables["invoices"], tables["invoice_items"]
    problems = []
    counts = items.groupby("invoice_uuid").size()
    loaded = invoices["invoice_uuid"].map(counts).fillna(0).astype(int)
    for row, got in zip(invoices.itertuples(), loaded, strict=True):
        if pd.notna(row.items_total) and got != row.items_total:
            problems.append(
                f"invoice {row.invoice_uuid} ({row.invoice_period}): {got} items loaded, "
                f"meta.total is {row.items_total}"
            )
    if invoices["invoice_uuid"].duplicated().any():
        dup = invoices.loc[invoices["invoice_uuid"].duplicated(), "invoice_uuid"].tolist()
        problems.append(f"invoice(s) listed twice: {dup[:5]}")
    outside = sorted(set(invoices["invoice_period"].dropna()) - set(periods))
    if outside:
        problems.append(f"invoice periods {outside} are outside this run's months")
    return problems


INVOICES = Source(
    name="invoices",
    description="Every invoice of the month (final, else the preview) and every line item.",
    index=Endpoint(
        "invoice_list",
        INVOICES_PATH,
        LINKS,
        records="invoices",
        noun="invoices",
        primary_key="invoice_uuid",
    ),
    endpoint=Endpoint("invoice_items", INVOICE_PATH, LINKS, records="invoice_items", noun="items"),
    targets=month_invoices,
    normalize=normalize,
    invariants=invariants,
    tables=(
        Table(
            "invoices",
            ("invoice_uuid",),
            "One row per invoice (final) or per month-to-date preview.",
            plot=True,
            noun="invoices",
            closed=FINAL,
        ),
        Table(
            "invoice_items",
            ("invoice_uuid", "line_number"),
            "Every line item of every invoice, amounts exact, durations in hours.",
            spend_by="product",
            noun="items",
            closed=FINAL,
        ),
    ),
    checks=(
        Check(
            "items_match_meta_total",
            "invoice_items",
            ITEMS_MATCH_META_TOTAL,
            "Per invoice, the loaded items equal the count the API announced (meta.total).",
            "every invoice is complete",
            blocking=True,
        ),
        Check(
            "items_sum_to_invoice_amount",
            "invoice_items",
            ITEMS_SUM_TO_INVOICE,
            "Per invoice, the items' amounts add up to the invoice amount; differences listed.",
            "every invoice's items add up to its amount",
            warn_only=True,
        ),
        Check(
            "unique_invoice_lines",
            "invoice_items",
            DUPLICATE_LINES,
            "No (invoice_uuid, line_number) appears twice.",
            "no duplicate lines",
            blocking=True,
        ),
        Check(
            "items_in_their_invoice_period",
            "invoice_items",
            PERIOD_MISMATCH,
            "Every item sits in the partition (invoice_period) of the invoice it belongs to.",
            "every item is in its invoice's period",
            blocking=True,
        ),
        Check(
            "durations_in_known_units",
            "invoice_items",
            UNKNOWN_DURATION_UNITS,
            "Durations in a unit we cannot convert load with NULL duration_hours; listed here.",
            "every duration converts to hours",
            warn_only=True,
        ),
    ),
    target_noun="invoice",
    progress_name="items",
    missing="is in the invoice list but its items answer 404",
    raw_asset="raw_invoice_pages",
    tables_step="invoice_tables",
    many_fetches=True,
)

"""The two halves of a load, without Dagster: API → raw, and raw → normalized rows.

The assets call these, and so does `make bench`, so the benchmark measures exactly the work a
run does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pandas as pd

from pipeline.api import DigitalOceanClient, IncompleteInvoiceError
from pipeline.normalize import normalize_invoices, normalize_items
from pipeline.warehouse.store import RawFetch, Warehouse


class RawNotFetchedError(RuntimeError):
    """A month has no successful raw fetch to normalize from."""


@dataclass(frozen=True)
class Normalized:
    invoices: pd.DataFrame
    items: pd.DataFrame
    unknown_fields: list[str]


def fetch_raw(
    api: DigitalOceanClient, periods: Sequence[str], run_id: str | None = None
) -> RawFetch:
    """The invoice list (once) and every item page of the months' invoices, as received.

    Invoices whose pages do not add up are recorded in the fetch (`status` incomplete) rather
    than raised here, so the caller can land the pages before failing.
    """
    listing = api.list_invoices()
    refs = listing.for_periods(periods)
    api.log.info(f"{len(refs)} invoice(s) in {periods[0]}…{periods[-1]}; fetching their items")
    fetches = api.fetch_items(refs)
    return RawFetch.of(
        listing,
        fetches,
        periods=periods,
        api_host=urlsplit(api.base_url).netloc,
        requests=api.stats.requests,
        problems=[problem for fetch in fetches for problem in fetch.problems()],
        run_id=run_id,
    )


def normalize_raw(store: Warehouse, periods: Sequence[str]) -> Normalized:
    """The latest good raw fetch of each month, normalized and checked before any write."""
    entries, pages, missing = store.read_raw(periods)
    if missing:
        raise RawNotFetchedError(
            f"no successful raw fetch covers {missing}: materialize raw_invoice_pages first"
        )
    loaded_at = datetime.now(UTC)
    invoices = normalize_invoices(entries, loaded_at)
    items, unknown = normalize_items(pages, loaded_at)
    problems = _hard_invariants(invoices, items, periods)
    if problems:
        raise IncompleteInvoiceError("; ".join(problems) + ". Nothing was written.")
    return Normalized(invoices=invoices, items=items, unknown_fields=unknown)


def _hard_invariants(
    invoices: pd.DataFrame, items: pd.DataFrame, periods: Sequence[str]
) -> list[str]:
    """What must hold before COMMIT: complete invoices, unique lines, periods in range."""
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

"""What the API returns, as the pipeline sees it: pages kept verbatim, invoices picked per month."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

InvoiceStatus = Literal["final", "preview"]


@dataclass(frozen=True)
class Page:
    """One response page: the body exactly as received, plus its parsed form."""

    path: str
    page: int
    body: str
    data: dict[str, Any] = field(repr=False)

    @property
    def total(self) -> int | None:
        meta = self.data.get("meta")
        total = meta.get("total") if isinstance(meta, dict) else None
        return total if isinstance(total, int) and not isinstance(total, bool) else None

    @classmethod
    def parse(cls, path: str, page: int, body: str) -> Page:
        try:
            data = json.loads(body)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("top-level JSON value is not an object")
        return cls(path=path, page=page, body=body, data=data)


@dataclass(frozen=True)
class InvoiceRef:
    """An invoice to load: a final invoice from the list, or the month-to-date preview."""

    invoice_uuid: str
    invoice_period: str
    status: InvoiceStatus
    entry: dict[str, Any] = field(repr=False, compare=False)

    @property
    def fetch_uuid(self) -> str:
        """The preview's items are served under the literal `preview`."""
        return "preview" if self.status == "preview" else self.invoice_uuid

    @classmethod
    def from_entry(cls, entry: dict[str, Any], status: InvoiceStatus) -> InvoiceRef:
        uuid = entry.get("invoice_uuid")
        period = entry.get("invoice_period")
        if not isinstance(uuid, str) or not uuid or not isinstance(period, str):
            raise ValueError(
                "invoice list entry lacks invoice_uuid or invoice_period: "
                f"{json.dumps(entry)[:200]}"
            )
        return cls(
            invoice_uuid=uuid,
            invoice_period=period,
            status=status,
            entry=entry,
        )


@dataclass(frozen=True)
class InvoiceListing:
    """The whole invoice list, fetched once per run however many months it covers."""

    pages: list[Page]
    invoices: list[InvoiceRef]
    preview: InvoiceRef | None

    def for_periods(self, periods: Iterable[str]) -> list[InvoiceRef]:
        """Invoices that make up each period: its final invoices, else the preview.

        Once a month closes its final invoice supersedes the preview, so both are never loaded.
        """
        wanted = set(periods)
        chosen = [ref for ref in self.invoices if ref.invoice_period in wanted]
        closed = {ref.invoice_period for ref in chosen}
        if self.preview and self.preview.invoice_period in wanted - closed:
            chosen.append(self.preview)
        return chosen


@dataclass(frozen=True)
class InvoiceFetch:
    """Every item page of one invoice, in page order."""

    ref: InvoiceRef
    pages: list[Page]

    @property
    def expected(self) -> int | None:
        return self.pages[0].total if self.pages else None

    @property
    def items(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self.pages:
            out.extend(page.data.get("invoice_items") or [])
        return out

    def problems(self) -> list[str]:
        """Why this invoice's items cannot be trusted, or [] if they add up."""
        ref = self.ref
        where = f"invoice {ref.invoice_uuid} ({ref.invoice_period})"
        totals = {page.total for page in self.pages}
        if None in totals:
            return [f"{where}: a page has no meta.total"]
        if len(totals) > 1:
            return [
                f"{where}: meta.total changed while paging ({sorted(totals)}); "
                "the invoice changed under us, re-run the month"
            ]
        bad = [p.page for p in self.pages if not isinstance(p.data.get("invoice_items"), list)]
        if bad:
            return [f"{where}: page(s) {bad} have no invoice_items list"]
        got = sum(len(page.data["invoice_items"]) for page in self.pages)
        expected = self.expected
        if got != expected:
            return [f"{where}: fetched {got} items but meta.total is {expected}"]
        return []

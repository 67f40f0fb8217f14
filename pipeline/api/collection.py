"""A paged collection to fetch, and what came back: pages in order and whether they add up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.api.decoding import Page
from pipeline.api.paging import LINKS, Paginator


@dataclass(frozen=True)
class PageRequest:
    """One collection: its path, how it pages, where its records are, how messages name it."""

    path: str
    paginator: Paginator = LINKS
    records: str | None = None  # the page's list of rows; None: the page is one object
    label: str = ""  # how messages name it ("invoice U (2024-05)"); the path if empty
    noun: str = "records"  # what a row is called in messages ("items")
    primary_key: str | None = None  # a row field that is unique within the collection
    missing: str = "answers 404"  # said when the server does not know the path
    scope: str = "billing:read"  # the token scope it needs, named when the server refuses

    @property
    def name(self) -> str:
        return self.label or f"GET {self.path}"


@dataclass
class Collection:
    """Every page of one request, in page order."""

    request: PageRequest
    pages: list[Page]
    capped_at: int | None = None  # rows per page when the server returned fewer than asked

    @property
    def records(self) -> list[Any]:
        rows: list[Any] = []
        for page in self.pages:
            rows.extend(page.records(self.request.records) or [])
        return rows

    @property
    def total(self) -> int | None:
        return self.request.paginator.total(self.pages[0]) if self.pages else None

    def problems(self) -> list[str]:
        """Why these pages cannot be trusted as the whole collection, or [] if they add up."""
        req, where = self.request, self.request.name
        bad = [p.page for p in self.pages if p.records(req.records) is None]
        if bad:
            return [f"{where}: page(s) {bad} have no {req.records} list"]
        totals = {req.paginator.total(p) for p in self.pages}
        if len(totals - {None}) > 1:
            return [
                f"{where}: meta.total changed while paging ({sorted(totals - {None})}); "
                "it changed while we paged, re-run the month"
            ]
        if None in totals and totals != {None}:
            return [f"{where}: a page has no meta.total"]
        total = totals.pop()
        rows = self.records
        got = len(rows)
        if req.primary_key is not None:
            keys = {row.get(req.primary_key) for row in rows if isinstance(row, dict)}
            if len(keys) != got:
                return [
                    f"{where}: fetched {len(keys)} distinct {req.noun} in {got} rows"
                    + (f" but meta.total is {total}" if total is not None else "")
                    + "; the list changed while paging, re-run"
                ]
        if total is not None and got != total:
            return [f"{where}: fetched {got} {req.noun} but meta.total is {total}"]
        return []

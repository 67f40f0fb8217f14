"""How a collection pages: what to ask for, how many pages there are, whether they add up.

Each paginator trusts the server over its own request: a page shorter than `per_page` with more
to come means the server capped the page size, and the plan follows the server's size; pages are
then followed until the server says there are no more. Completeness is judged against the
server's own count where it gives one.
"""

from __future__ import annotations

import math
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from pipeline.api.decoding import Page


class Paginator(Protocol):
    def params(self, page: int, per_page: int) -> dict[str, int] | None:
        """Query parameters for `page` (None: the endpoint is not paged)."""

    def total(self, page: Page) -> int | None:
        """The number of records the server says the collection has, if it says."""

    def page_count(self, first: Page, rows: int, per_page: int) -> int | None:
        """Pages the collection has, judged from page 1 (None: follow pages one by one)."""

    def next_page(self, page: Page) -> int | None:
        """The page the server says comes after `page`, if any."""


def _count(value: Any) -> int | None:
    """A count as the API sends it: an int, or (Billing Insights) a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def planned_pages(total: int | None, rows: int, per_page: int) -> int | None:
    """Pages needed for `total` records when page 1 held `rows` of the `per_page` asked."""
    if total is None:
        return None
    size = rows if 0 < rows < per_page and rows < total else per_page
    return max(1, math.ceil(total / size))


class LinkPaginator:
    """`links.pages.next` and `meta.total` (optional): the invoice list, items, billing history.

    Links are absolute and point at the real API; only their page number is read, the request
    goes to the configured base URL.
    """

    def params(self, page: int, per_page: int) -> dict[str, int]:
        return {"page": page, "per_page": per_page}

    def total(self, page: Page) -> int | None:
        meta = page.data.get("meta")
        return _count(meta.get("total")) if isinstance(meta, dict) else None

    def page_count(self, first: Page, rows: int, per_page: int) -> int | None:
        return planned_pages(self.total(first), rows, per_page)

    def next_page(self, page: Page) -> int | None:
        links = page.data.get("links")
        pages = links.get("pages") if isinstance(links, dict) else None
        nxt = pages.get("next") if isinstance(pages, dict) else None
        if not isinstance(nxt, str):
            return None
        numbers = parse_qs(urlsplit(nxt).query).get("page")
        if not numbers or not numbers[0].isdigit() or int(numbers[0]) <= page.page:
            return None
        return int(numbers[0])


class CounterPaginator:
    """`total_items`, `total_pages`, `current_page` (strings on the live API): Billing Insights."""

    def params(self, page: int, per_page: int) -> dict[str, int]:
        return {"page": page, "per_page": per_page}

    def total(self, page: Page) -> int | None:
        return _count(page.data.get("total_items"))

    def page_count(self, first: Page, rows: int, per_page: int) -> int | None:
        pages = _count(first.data.get("total_pages"))
        return pages if pages is not None else planned_pages(self.total(first), rows, per_page)

    def next_page(self, page: Page) -> int | None:
        current = _count(page.data.get("current_page")) or page.page
        pages = _count(page.data.get("total_pages"))
        return current + 1 if pages is not None and current < pages else None


class SinglePage:
    """One object, no paging: an invoice summary, the balance, the account."""

    def params(self, page: int, per_page: int) -> None:
        return None

    def total(self, page: Page) -> int | None:
        return None

    def page_count(self, first: Page, rows: int, per_page: int) -> int:
        return 1

    def next_page(self, page: Page) -> None:
        return None


LINKS = LinkPaginator()
COUNTERS = CounterPaginator()
SINGLE = SinglePage()

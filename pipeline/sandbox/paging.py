"""The API's paging, as the sandbox serves it: a page of rows, `links.pages` and `meta.total`.

A list that fits one page comes in one of the three shapes the API sends (no `links`, `links:
{}`, `links: {pages: {}}`); `rotate` picks one per list, so a client meets all three.
"""

from __future__ import annotations

import math
from typing import Any

SHAPES = ("none", "empty", "empty_pages")


def links(
    base: str, path: str, page: int, per_page: int, total: int, key: str, single_page_shape: str
) -> dict | None:
    """`links` of a page: `first`/`prev` and `last`/`next` at `base` + `path`, or one of the
    single-page shapes (None: no `links` at all)."""
    last = max(1, math.ceil(total / per_page))
    if last == 1:
        shape = single_page_shape
        if shape == "rotate":
            shape = SHAPES[sum(key.encode()) % 3]
        return {"none": None, "empty": {}, "empty_pages": {"pages": {}}}[shape]

    def link(n: int) -> str:
        return f"{base}{path}?page={n}&per_page={per_page}"

    pages: dict[str, str] = {}
    if page > 1:
        pages["first"], pages["prev"] = link(1), link(page - 1)
    if page < last:
        pages["last"], pages["next"] = link(last), link(page + 1)
    return {"pages": pages}


def paged_body(
    name: str, rows: list, page: int, per_page: int, page_links: dict | None
) -> dict[str, Any]:
    """`{name: the page's rows, links?, meta: {total}}`."""
    body: dict[str, Any] = {name: rows[(page - 1) * per_page : page * per_page]}
    if page_links is not None:
        body["links"] = page_links
    body["meta"] = {"total": len(rows)}
    return body

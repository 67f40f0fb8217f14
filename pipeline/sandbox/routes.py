"""The sandbox's endpoints: one declaration each (path, scope, answer), grouped by family.

`SandboxServer.respond` finds the first route whose path matches, answers 403 `forbidden` when
the token lacks the route's scope, and otherwise returns what the route's answer gives: (status,
JSON body), an error's body None (the status's standard message) or `{"id", "message"}`.

A new list endpoint is one line in `ROUTES` (`inventory_list(path, record key, scope)`, with
`paged=False` for a list the spec does not page) and its rows in `inventory.py`; its scope
joins `DEFAULT_SCOPES` by itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol
from urllib.parse import unquote

from pipeline.sandbox.data import SandboxData
from pipeline.sandbox.paging import links, paged_body
from pipeline.sandbox.teams import ACCOUNT_USER

Answer = tuple[int, Any]
NOT_FOUND: Answer = (404, None)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Billing Insights answers at most this many days from start_date to end_date.
INSIGHTS_MAX_DAYS = 31


class Options(Protocol):
    """What of the server's settings an answer reads (`SandboxServer` has them)."""

    link_base: str
    single_page_shape: str
    history_total: bool
    string_counters: bool


@dataclass(frozen=True)
class Call:
    """An authorized GET, as an endpoint answers it: the path's named parts (as sent), the
    token's account, the page asked for, and the server's options."""

    server: Options
    path: str
    parts: dict[str, str]
    data: SandboxData
    page: int
    per_page: int

    def paged(self, name: str, rows: list, key: str) -> dict[str, Any]:
        """The page of `rows` under `name`, with the API's links and `meta.total`; `key` picks
        the single-page shape when the server rotates them."""
        server = self.server
        page_links = links(
            server.link_base,
            self.path,
            self.page,
            self.per_page,
            len(rows),
            key,
            server.single_page_shape,
        )
        return paged_body(name, rows, self.page, self.per_page, page_links)


@dataclass(frozen=True)
class Route:
    """One endpoint: the paths it serves, the scope a token needs, and its answer."""

    pattern: re.Pattern[str]
    scope: str
    answer: Callable[[Call], Answer]


def route(path: str, scope: str, answer: Callable[[Call], Answer], trailing: str = "/?") -> Route:
    """A route for `path`, whose `{name}` parts match one segment each (`Call.parts[name]`);
    `trailing` is what may follow (by default one optional slash)."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return Route(re.compile(f"^{regex}{trailing}$"), scope, answer)


# -- the account ----------------------------------------------------------------------------
def account(call: Call) -> Answer:
    """`GET /v2/account`: the user behind the token, and the token's team."""
    return 200, {"account": {**ACCOUNT_USER, "team": dict(call.data.team)}}


# -- billing: invoices, history, balance ----------------------------------------------------
def invoice_list(call: Call) -> Answer:
    body = call.paged("invoices", call.data.invoices, "invoices")
    if call.data.preview:
        body["invoice_preview"] = call.data.preview
    return 200, body


def _invoice(call: Call) -> str | None:
    """The invoice a path names (`preview`: the open month's), if the account has it."""
    key = call.parts["invoice"]
    if key == "preview" and call.data.preview:
        key = call.data.preview["invoice_uuid"]
    return key if key in call.data.items else None


def invoice_items(call: Call) -> Answer:
    key = _invoice(call)
    if key is None:
        return NOT_FOUND
    return 200, call.paged("invoice_items", call.data.items[key], key)


def invoice_summary(call: Call) -> Answer:
    key = _invoice(call)
    return NOT_FOUND if key is None else (200, call.data.summaries[key])


def billing_history(call: Call) -> Answer:
    """Paged like the invoice list; `meta.total` is optional in the spec (`history_total`)."""
    body = call.paged("billing_history", call.data.billing_history, "billing_history")
    if not call.server.history_total:
        body["meta"] = {}
    return 200, body


def balance(call: Call) -> Answer:
    return 200, dict(call.data.balance)


def insights(call: Call) -> Answer:
    """Billing Insights: the team's points with `start_date` in [start, end], by date, in pages
    of `{data_points, total_items, total_pages, current_page}` with no links or meta."""
    urn, start, end = (unquote(call.parts[p]) for p in ("urn", "start", "end"))
    data, page, per_page = call.data, call.page, call.per_page
    if urn != data.team_urn:
        return NOT_FOUND
    try:
        first, last = (date.fromisoformat(d) if DAY.match(d) else None for d in (start, end))
    except ValueError:
        first = last = None
    if first is None or last is None:
        return 400, {
            "id": "bad_request",
            "message": "start_date and end_date must be dates in YYYY-MM-DD format",
        }
    if last < first or (last - first).days > INSIGHTS_MAX_DAYS:
        return 400, {
            "id": "bad_request",
            "message": f"end_date must be on or after start_date and within "
            f"{INSIGHTS_MAX_DAYS} days of it",
        }
    start, end = first.isoformat(), last.isoformat()
    rows = [
        p for p in data.insights if start <= p["start_date"] <= end and p["usage_team_urn"] == urn
    ]
    counters = [len(rows), math.ceil(len(rows) / per_page), page]
    # Strings, as the live API sends them against its spec's integers (`string_counters`).
    total_items, total_pages, current_page = (
        str(n) if call.server.string_counters else n for n in counters
    )
    return 200, {
        "data_points": rows[(page - 1) * per_page : page * per_page],
        "total_items": total_items,
        "total_pages": total_pages,
        "current_page": current_page,
    }


def not_found(call: Call) -> Answer:
    """A billing path no route serves: 404, once the token may read billing at all."""
    return NOT_FOUND


# -- the resource inventory -----------------------------------------------------------------
def inventory_list(path: str, key: str, scope: str, *, paged: bool = True) -> Route:
    """A list of the account's resources under `key` (`Inventory.resources(key)`); unpaged
    lists (databases) come whole, as `{key: rows}`."""

    def answer(call: Call) -> Answer:
        rows = call.data.inventory.resources(key)
        return 200, call.paged(key, rows, key) if paged else {key: rows}

    return route(path, scope, answer, trailing="/*")


def project_resources(call: Call) -> Answer:
    project = unquote(call.parts["project"])
    found = call.data.inventory.project_resources.get(project)
    if found is None:
        return NOT_FOUND
    return 200, call.paged("resources", found, project)


ROUTES = (
    route("/v2/account", "account:read", account),
    route("/v2/customers/my/invoices", "billing:read", invoice_list),
    route("/v2/customers/my/invoices/{invoice}", "billing:read", invoice_items),
    route("/v2/customers/my/invoices/{invoice}/summary", "billing:read", invoice_summary),
    route("/v2/customers/my/billing_history", "billing:read", billing_history),
    route("/v2/customers/my/balance", "billing:read", balance),
    route("/v2/billing/{urn}/insights/{start}/{end}", "billing:read", insights),
    Route(re.compile(r"^/v2/(customers/my|billing)/"), "billing:read", not_found),
    inventory_list("/v2/droplets", "droplets", "droplet:read"),
    inventory_list("/v2/volumes", "volumes", "block_storage:read"),
    inventory_list("/v2/kubernetes/clusters", "kubernetes_clusters", "kubernetes:read"),
    inventory_list("/v2/databases", "databases", "database:read", paged=False),
    inventory_list("/v2/load_balancers", "load_balancers", "load_balancer:read"),
    inventory_list("/v2/reserved_ips", "reserved_ips", "reserved_ip:read"),
    inventory_list("/v2/snapshots", "snapshots", "snapshot:read"),
    inventory_list("/v2/projects", "projects", "project:read"),
    route("/v2/projects/{project}/resources", "project:read", project_resources),
)
# What a token may read unless told otherwise: every scope an endpoint asks for.
DEFAULT_SCOPES = frozenset(r.scope for r in ROUTES)


def find(path: str) -> tuple[Route, dict[str, str]] | None:
    """The first route serving `path`, and the path's named parts; None: 404 for anyone."""
    for candidate in ROUTES:
        match = candidate.pattern.match(path)
        if match:
            return candidate, match.groupdict()
    return None

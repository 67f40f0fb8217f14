"""The API client against the sandbox over real HTTP: paging, retries, auth, host pinning.

Paging, the retry policy and decoding are small parts, each tested alone here as well.
"""

import math

import pytest
import requests

from pipeline.api import (
    COUNTERS,
    LINKS,
    SINGLE,
    ApiError,
    AuthError,
    DigitalOceanClient,
    NotFoundError,
    Page,
    PageRequest,
    RetryPolicy,
)
from pipeline.api.decoding import error_summary, read_bounded
from pipeline.api.retry import TransientError
from pipeline.sandbox import Fault, SandboxServer
from pipeline.settings import SettingsError
from pipeline.sources.base import Targets
from pipeline.sources.invoices import INVOICE_PATH, INVOICES, INVOICES_PATH

LIST = INVOICES.index.request()


def items_of(uuid: str, label: str = "") -> PageRequest:
    return PageRequest(
        INVOICE_PATH.format(key=uuid), LINKS, records="invoice_items", noun="items", label=label
    )


def biggest_invoice(server: SandboxServer) -> str:
    best = max(server.data.invoices, key=lambda inv: len(server.data.items[inv["invoice_uuid"]]))
    return best["invoice_uuid"]


def page(data: dict, number: int = 1) -> Page:
    return Page(path="/x", page=number, body="", data=data)


# -- paging, alone ---------------------------------------------------------------------------
def test_link_paginator_reads_the_next_page_number_and_never_goes_back():
    nxt = {"links": {"pages": {"next": "https://api.digitalocean.com/v2/x?page=3&per_page=2"}}}
    assert LINKS.next_page(page(nxt, 2)) == 3
    assert LINKS.next_page(page(nxt, 3)) is None  # a link to itself or back is not followed
    for shape in ({}, {"links": {}}, {"links": {"pages": {}}}):
        assert LINKS.next_page(page(shape)) is None


@pytest.mark.parametrize(
    ("total", "rows", "asked", "pages"),
    [(61, 200, 200, 1), (61, 25, 200, 3), (61, 61, 200, 1), (400, 200, 200, 2), (0, 0, 200, 1)],
)
def test_link_paginator_plans_pages_from_what_the_server_returned(total, rows, asked, pages):
    first = page({"meta": {"total": total}})
    assert LINKS.page_count(first, min(rows, total), asked) == pages


def test_counter_paginator_reads_counters_sent_as_strings():
    first = page({"data_points": [], "total_items": "401", "total_pages": "3", "current_page": "1"})
    assert COUNTERS.total(first) == 401
    assert COUNTERS.page_count(first, 200, 200) == 3
    assert COUNTERS.next_page(first) == 2
    last = page({"total_items": 401, "total_pages": 3, "current_page": 3}, 3)
    assert COUNTERS.next_page(last) is None


def test_single_page_endpoints_send_no_paging_parameters():
    assert SINGLE.params(1, 200) is None
    assert SINGLE.page_count(page({}), 0, 200) == 1


# -- retry policy and decoding, alone --------------------------------------------------------
class Lines:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)


def test_retry_policy_retries_transient_errors_then_gives_up_naming_the_cause():
    policy = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.02)
    log, sleeps, calls = Lines(), [], []

    def flaky() -> str:
        calls.append(1)
        raise TransientError("GET /v2/x page 1", "HTTP 503")

    with pytest.raises(ApiError, match=r"GET /v2/x page 1: HTTP 503; gave up after 3 attempts"):
        for attempt in policy.retrying(log, sleep=sleeps.append):
            with attempt:
                flaky()
    assert len(calls) == 3 and len(sleeps) == 2
    assert all(0.01 <= s <= 0.02 + 0.01 * policy.jitter for s in sleeps)
    assert log.warnings[0].startswith("GET /v2/x page 1: HTTP 503; retry 1 of 2 in")


def test_retry_policy_does_not_retry_what_cannot_succeed():
    calls = []
    with pytest.raises(AuthError):
        for attempt in RetryPolicy(attempts=5).retrying(Lines(), sleep=lambda s: None):
            with attempt:
                calls.append(1)
                raise AuthError("HTTP 401")
    assert calls == [1]


def test_retry_after_prefers_the_header_and_is_bounded():
    policy = RetryPolicy(max_retry_after=10)
    assert policy.retry_after({"retry-after": "3"}) == 3.0
    assert policy.retry_after({"ratelimit-reset": "1005"}, now=lambda: 1000.0) == 5.0
    assert policy.retry_after({"retry-after": "99999"}) == 10.0
    assert policy.retry_after({}) == 1.0


def test_decoding_names_the_api_error_and_refuses_non_objects():
    assert error_summary('{"id": "forbidden", "message": "no"}') == "(forbidden: no)"
    assert error_summary("<html>") == ""
    with pytest.raises(ValueError, match="not an object"):
        Page.parse("/x", 1, "[1, 2]")


def test_bounded_read_stops_at_the_limit(sandbox):
    with requests.get(f"{sandbox.url}{INVOICES_PATH}", stream=True, timeout=5) as resp:
        with pytest.raises(ApiError, match="bound"):
            read_bounded(resp, "GET /x", limit=10)


# -- the client over HTTP --------------------------------------------------------------------
def test_lists_every_invoice_and_the_preview(sandbox, client):
    (listing,) = client.fetch([LIST])
    assert [r["invoice_uuid"] for r in listing.records] == [
        inv["invoice_uuid"] for inv in sandbox.data.invoices
    ]
    assert listing.pages[0].data["invoice_preview"] == sandbox.data.preview
    assert listing.problems() == []


def test_invoice_list_pages_concurrently_when_small_pages(make_client):
    """Page 1 tells the total; with 600 ms per answer, every other page is then asked at once
    (the margin lets a busy machine start every request before the first one returns)."""
    with SandboxServer(latency=0.6) as server, make_client(server, per_page=7) as api:
        (listing,) = api.fetch([LIST])
    pages = math.ceil(len(server.data.invoices) / 7)
    assert len(listing.records) == len(server.data.invoices)
    assert len(listing.pages) == pages
    assert listing.problems() == []
    assert pages > 3, "the test needs several pages after the first"
    assert server.peak_in_flight == min(pages - 1, api.max_workers)


@pytest.mark.parametrize("cap", [25, 7])
def test_a_server_that_caps_the_page_size_is_followed_to_the_end(cap, make_client):
    """Asked for 200, the server answers `cap` rows a page: every row still arrives."""
    with SandboxServer(max_per_page=cap) as server, make_client(server) as api:
        uuid = biggest_invoice(server)
        (listing, items) = api.fetch([LIST, items_of(uuid)])
        expected_requests = math.ceil(len(server.data.invoices) / cap) + math.ceil(
            len(server.data.items[uuid]) / cap
        )
    assert listing.problems() == [] and items.problems() == []
    assert len(listing.records) == len(server.data.invoices)
    assert items.records == server.data.items[uuid]
    assert listing.capped_at == cap
    assert api.stats.requests == expected_requests


def test_a_list_that_changes_while_paging_is_told_apart_from_a_cap(sandbox, make_client):
    """The list shifts between page 1 and page 2: one invoice is seen twice, one never."""
    first = sandbox.respond(INVOICES_PATH, {"page": ["1"], "per_page": ["5"]})[1]
    second = sandbox.respond(INVOICES_PATH, {"page": ["2"], "per_page": ["5"]})[1]
    second["invoices"] = first["invoices"][-1:] + second["invoices"][:-1]
    sandbox.inject(f"^{INVOICES_PATH}$", Fault("json", body=first), Fault("json", body=second))
    with make_client(sandbox, per_page=5) as api:
        (listing,) = api.fetch([LIST])
    (problem,) = listing.problems()
    assert "distinct invoices" in problem and "the list changed while paging" in problem


def test_collections_are_fetched_concurrently_on_a_bounded_pool(make_client):
    """With 200 ms per answer, 12 invoices' first pages overlap, never beyond the pool's size."""
    with SandboxServer(latency=0.2) as server, make_client(server, max_workers=4) as api:
        uuids = [inv["invoice_uuid"] for inv in server.data.invoices[:12]]
        api.fetch([items_of(uuid) for uuid in uuids])
    assert server.peak_in_flight == 4


def test_fetches_every_item_of_every_invoice_in_order(sandbox, client):
    uuids = [inv["invoice_uuid"] for inv in sandbox.data.invoices]
    collections = client.fetch([items_of(uuid) for uuid in uuids])
    for uuid, collection in zip(uuids, collections, strict=True):
        assert collection.problems() == []
        assert collection.records == sandbox.data.items[uuid]
    assert any(len(c.pages) > 2 for c in collections), "dataset should have multi-page invoices"
    assert any(len(c.records) == 0 for c in collections), "dataset should have an empty invoice"


def test_uses_the_minimum_number_of_requests(sandbox, client):
    uuids = [inv["invoice_uuid"] for inv in sandbox.data.invoices]
    client.fetch([LIST, *[items_of(uuid) for uuid in uuids]])
    minimum = 1 + sum(max(1, math.ceil(len(sandbox.data.items[u]) / 200)) for u in uuids)
    assert client.stats.requests == minimum
    assert client.stats.retries == 0


@pytest.mark.parametrize("shape", ["none", "empty", "empty_pages"])
def test_every_single_page_shape(shape, make_client):
    with SandboxServer(single_page_shape=shape) as server, make_client(server) as api:
        small = [u for u, items in server.data.items.items() if len(items) < 200][:3]
        collections = api.fetch([items_of(u) for u in small])
    assert all(c.problems() == [] and len(c.pages) == 1 for c in collections)


def test_preview_items_come_from_the_preview_path(sandbox, client):
    (listing,) = client.fetch([LIST])
    preview = INVOICES.targets(Targets([sandbox.data.preview["invoice_period"]], listing))
    (items,) = client.fetch([INVOICES.endpoint.request(t) for t in preview])
    assert items.records == sandbox.data.items[sandbox.data.preview["invoice_uuid"]]
    assert any(r["path"].endswith("/invoices/preview") for r in sandbox.requests)


def test_rate_limit_429_then_success(sandbox, client):
    uuid = sandbox.data.invoices[0]["invoice_uuid"]
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", 429)
    (items,) = client.fetch([items_of(uuid)])
    assert items.records == sandbox.data.items[uuid]
    assert client.stats.rate_limited == 1


def test_server_errors_then_success(sandbox, client):
    uuid = biggest_invoice(sandbox)
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", 500, 502, 503)
    (items,) = client.fetch([items_of(uuid)])
    assert items.records == sandbox.data.items[uuid]
    assert client.stats.retries == 3


def test_persistent_server_error_names_path_and_status(sandbox, client):
    sandbox.inject(f"^{INVOICES_PATH}$", *([500] * 10))
    with pytest.raises(ApiError, match=r"GET /v2/customers/my/invoices page 1: HTTP 500"):
        client.fetch([LIST])


def test_bad_token_fails_at_once_naming_the_setting(sandbox):
    with DigitalOceanClient(sandbox.url, "wrong-token") as api:
        with pytest.raises(AuthError, match="DIGITALOCEAN_TOKEN.*billing:read"):
            api.fetch([LIST])
    assert len(sandbox.requests) == 1


def test_a_listed_invoice_answering_404_names_it(sandbox, client):
    uuid = sandbox.data.invoices[3]["invoice_uuid"]
    sandbox.inject(f"^{INVOICE_PATH.format(key=uuid)}$", 404)
    label = f"invoice {uuid} (2024-01)"
    request = items_of(uuid, label=label)
    with pytest.raises(NotFoundError, match=f"invoice {uuid}"):
        client.fetch([request])


def test_token_never_leaves_the_configured_host(make_client):
    with SandboxServer() as elsewhere, SandboxServer(link_base=elsewhere.url) as server:
        with make_client(server, per_page=5) as api:
            api.fetch([LIST, items_of(biggest_invoice(server))])
        assert elsewhere.requests == []
        assert all(r["authorized"] for r in server.requests)


@pytest.mark.parametrize(
    "url", ["http://api.example.com", "ftp://127.0.0.1", "https://x.test/?a=1", "nonsense"]
)
def test_refuses_unsafe_base_urls(url):
    with pytest.raises(SettingsError, match="DIGITALOCEAN_API_URL"):
        DigitalOceanClient(url, "a-token")

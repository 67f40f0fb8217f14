"""The API client against the sandbox over real HTTP: paging, retries, auth, host pinning."""

import math

import pytest

from pipeline.api import ApiError, AuthError, DigitalOceanClient, NotFoundError
from pipeline.api.client import INVOICES_PATH, items_path
from pipeline.sandbox import SandboxServer
from pipeline.settings import SettingsError
from tests.conftest import make_client


def biggest_invoice(server: SandboxServer):
    return max(server.data.invoices, key=lambda inv: len(server.data.items[inv["invoice_uuid"]]))


def test_lists_every_invoice_and_the_preview(sandbox, client):
    listing = client.list_invoices()
    assert [r.invoice_uuid for r in listing.invoices] == [
        inv["invoice_uuid"] for inv in sandbox.data.invoices
    ]
    assert listing.preview is not None
    assert listing.preview.invoice_uuid == sandbox.data.preview["invoice_uuid"]


def test_invoice_list_pages_concurrently_when_small_pages(sandbox):
    with make_client(sandbox, per_page=7) as api:
        listing = api.list_invoices()
    assert len(listing.invoices) == len(sandbox.data.invoices)
    assert len(listing.pages) == math.ceil(len(sandbox.data.invoices) / 7)


def test_fetches_every_item_of_every_invoice_in_order(sandbox, client):
    refs = client.list_invoices().for_periods(
        {inv["invoice_period"] for inv in sandbox.data.invoices}
    )
    fetches = client.fetch_items(refs)
    for fetch in fetches:
        assert fetch.problems() == []
        assert fetch.items == sandbox.data.items[fetch.ref.invoice_uuid]
    assert any(len(f.pages) > 2 for f in fetches), "dataset should have multi-page invoices"
    assert any(len(f.items) == 0 for f in fetches), "dataset should have an empty invoice"


def test_uses_the_minimum_number_of_requests(sandbox, client):
    listing = client.list_invoices()
    client.fetch_items(listing.invoices)
    minimum = 1 + sum(
        max(1, math.ceil(len(sandbox.data.items[i["invoice_uuid"]]) / 200))
        for i in sandbox.data.invoices
    )
    assert client.stats.requests == minimum
    assert client.stats.retries == 0


@pytest.mark.parametrize("shape", ["none", "empty", "empty_pages"])
def test_every_single_page_shape(shape):
    with SandboxServer(single_page_shape=shape) as server, make_client(server) as api:
        listing = api.list_invoices()
        small = [r for r in listing.invoices if len(server.data.items[r.invoice_uuid]) < 200]
        fetches = api.fetch_items(small[:3])
    assert all(f.problems() == [] and len(f.pages) == 1 for f in fetches)


def test_preview_items_come_from_the_preview_uuid(sandbox, client):
    listing = client.list_invoices()
    (fetch,) = client.fetch_items([listing.preview])
    assert fetch.items == sandbox.data.items[sandbox.data.preview["invoice_uuid"]]
    assert any(r["path"].endswith("/invoices/preview") for r in sandbox.requests)


def test_rate_limit_429_then_success(sandbox, client):
    ref = next(r for r in client.list_invoices().invoices)
    sandbox.inject(f"^{items_path(ref.invoice_uuid)}$", 429)
    (fetch,) = client.fetch_items([ref])
    assert fetch.items == sandbox.data.items[ref.invoice_uuid]
    assert client.stats.rate_limited == 1


def test_server_errors_then_success(sandbox, client):
    inv = biggest_invoice(sandbox)
    sandbox.inject(f"^{items_path(inv['invoice_uuid'])}$", 500, 502, 503)
    ref = next(r for r in client.list_invoices().invoices if r.invoice_uuid == inv["invoice_uuid"])
    (fetch,) = client.fetch_items([ref])
    assert fetch.items == sandbox.data.items[inv["invoice_uuid"]]
    assert client.stats.retries == 3


def test_persistent_server_error_names_path_and_status(sandbox, client):
    sandbox.inject(f"^{INVOICES_PATH}$", *([500] * 10))
    with pytest.raises(ApiError, match=r"GET /v2/customers/my/invoices page 1: HTTP 500"):
        client.list_invoices()


def test_bad_token_fails_at_once_naming_the_setting(sandbox):
    with make_client(sandbox, retry=None) as api:
        api._auth = {"Authorization": "Bearer wrong"}
        with pytest.raises(AuthError, match="DIGITALOCEAN_TOKEN.*billing:read"):
            api.list_invoices()
    assert len(sandbox.requests) == 1


def test_listed_invoice_answering_404_names_the_uuid(sandbox, client):
    ref = client.list_invoices().invoices[3]
    sandbox.inject(f"^{items_path(ref.invoice_uuid)}$", 404)
    with pytest.raises(NotFoundError, match=ref.invoice_uuid):
        client.fetch_items([ref])


def test_token_never_leaves_the_configured_host():
    with SandboxServer() as elsewhere, SandboxServer(link_base=elsewhere.url) as server:
        with make_client(server, per_page=5) as api:
            listing = api.list_invoices()
            api.fetch_items([biggest_invoice_ref(server, listing)])
        assert elsewhere.requests == []
        assert all(r["authorized"] for r in server.requests)


def biggest_invoice_ref(server, listing):
    uuid = biggest_invoice(server)["invoice_uuid"]
    return next(r for r in listing.invoices if r.invoice_uuid == uuid)


@pytest.mark.parametrize(
    "url", ["http://api.example.com", "ftp://127.0.0.1", "https://x.test/?a=1", "nonsense"]
)
def test_refuses_unsafe_base_urls(url):
    with pytest.raises(SettingsError, match="DIGITALOCEAN_API_URL"):
        DigitalOceanClient(url, "a-token")

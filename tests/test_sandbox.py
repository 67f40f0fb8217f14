"""The sandbox keeps the API's contract: every answer checked against the official OpenAPI file.

The tests call the sandbox with plain `requests`, not with the pipeline's client, so a mistake
shared by the client and the sandbox cannot hide here. The schema check is the `openapi` fixture
(conftest.py): the subset of JSON Schema these responses use.
"""

import json

import pytest
import requests

from pipeline.sandbox import Fault, SandboxServer

LIST = "/v2/customers/my/invoices"


@pytest.fixture(scope="module")
def server():
    with SandboxServer() as sandbox:
        yield sandbox


def invoice_with(server: SandboxServer, minimum: int, maximum: int = 10**6) -> str:
    return next(
        i["invoice_uuid"]
        for i in server.data.invoices
        if minimum <= len(server.data.items[i["invoice_uuid"]]) <= maximum
    )


def assert_conforms(openapi, resp: requests.Response, spec_path: str) -> dict:
    body = resp.json()
    assert openapi.errors(body, openapi.schema(spec_path, resp.status_code)) == []
    for header in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
        assert resp.headers[header].isdigit(), header
    return body


def test_invoice_list_conforms_and_carries_the_preview(openapi, api_get, server):
    body = assert_conforms(openapi, api_get(server, LIST, per_page=200), LIST)
    assert body["meta"]["total"] == len(server.data.invoices)
    assert body["invoice_preview"]["invoice_uuid"] == server.data.preview["invoice_uuid"]
    periods = [i["invoice_period"] for i in body["invoices"]]
    assert periods == sorted(periods, reverse=True)  # newest first, as the API lists them


def test_items_page_at_20_by_default_and_200_at_most(openapi, api_get, server):
    path = f"{LIST}/{invoice_with(server, 401)}"
    total = len(server.data.items[path.rsplit("/", 1)[1]])
    default = assert_conforms(openapi, api_get(server, path), f"{LIST}/{{invoice_uuid}}")
    assert len(default["invoice_items"]) == 20
    assert default["meta"]["total"] == total
    assert default["links"]["pages"]["next"].endswith("page=2&per_page=20")
    capped = api_get(server, path, per_page=500).json()
    assert len(capped["invoice_items"]) == 200
    last = (total + 199) // 200
    final = assert_conforms(
        openapi, api_get(server, path, per_page=200, page=last), f"{LIST}/{{invoice_uuid}}"
    )
    assert len(final["invoice_items"]) == total - 200 * (last - 1)
    assert "next" not in final["links"]["pages"] and "prev" in final["links"]["pages"]


def test_a_single_page_takes_all_three_shapes(openapi, api_get):
    """No `links`, `links: {}` and `links: {pages: {}}`: the API answers a single page all ways."""
    seen = set()
    for shape in ("none", "empty", "empty_pages"):
        with SandboxServer(single_page_shape=shape) as sandbox:
            uuid = invoice_with(sandbox, 1, 20)
            body = assert_conforms(
                openapi, api_get(sandbox, f"{LIST}/{uuid}"), f"{LIST}/{{invoice_uuid}}"
            )
            seen.add(json.dumps(body.get("links", "absent")))
    assert seen == {'"absent"', "{}", '{"pages": {}}'}


def test_an_invoice_with_no_items(openapi, api_get, server):
    empty = invoice_with(server, 0, 0)
    body = assert_conforms(openapi, api_get(server, f"{LIST}/{empty}"), f"{LIST}/{{invoice_uuid}}")
    assert body["invoice_items"] == [] and body["meta"]["total"] == 0


def test_preview_items_and_summaries_conform(openapi, api_get, server):
    preview = api_get(server, f"{LIST}/preview", per_page=200)
    assert_conforms(openapi, preview, f"{LIST}/{{invoice_uuid}}")
    assert len(preview.json()["invoice_items"]) == len(
        server.data.items[server.data.preview["invoice_uuid"]]
    )
    uuid = server.data.invoices[0]["invoice_uuid"]
    summary = assert_conforms(
        openapi, api_get(server, f"{LIST}/{uuid}/summary"), f"{LIST}/{{invoice_uuid}}/summary"
    )
    assert summary["amount"] == server.data.invoices[0]["amount"]


def test_sample_data_has_the_awkward_cases_real_bills_have(server):
    items = [it for i in server.data.invoices for it in server.data.items[i["invoice_uuid"]]]
    amounts = [it["amount"] for it in items]
    assert all(isinstance(a, str) for a in amounts)  # money is a string
    assert any(a.startswith("-") for a in amounts)  # credits
    assert any(it.get("product") == "Taxes" for it in items)  # taxes as line items
    assert any("project_name" not in it for it in items)  # optional fields absent…
    assert any(it.get("project_name") == "" for it in items)  # …or empty
    assert any(not (it.get("project_name") or "").isascii() for it in items)  # unicode
    assert max(len(server.data.items[i["invoice_uuid"]]) for i in server.data.invoices) > 400


@pytest.mark.parametrize(
    ("status", "error_id"),
    [(401, "unauthorized"), (404, "not_found"), (429, "too_many_requests"), (500, "server_error")],
)
def test_error_bodies_conform(openapi, api_get, status, error_id):
    with SandboxServer() as sandbox:
        path = f"{LIST}/{sandbox.data.invoices[0]['invoice_uuid']}"
        if status == 401:
            resp = api_get(sandbox, path, token="wrong")
        elif status == 404:
            resp = api_get(sandbox, f"{LIST}/00000000-0000-0000-0000-000000000000")
        else:
            sandbox.inject(f"^{path}$", Fault(str(status)))
            resp = api_get(sandbox, path)
        assert resp.status_code == status
        body = assert_conforms(openapi, resp, f"{LIST}/{{invoice_uuid}}")
        assert body["id"] == error_id and body["message"]
        if status == 429:
            assert int(resp.headers["retry-after"]) >= 1


def test_the_schema_check_catches_drift(openapi, api_get, server):
    """The check itself must fail on what it guards against: wrong types and invented fields."""
    uuid = invoice_with(server, 1, 20)
    body = api_get(server, f"{LIST}/{uuid}").json()
    body["invoice_items"][0]["amount"] = 12.34
    body["invoice_items"][0]["cost_center"] = "x"
    del body["meta"]["total"]
    body["meta"]["total"] = "3"
    errors = openapi.errors(body, openapi.schema(f"{LIST}/{{invoice_uuid}}", 200))
    assert "$.invoice_items[0].amount: expected string, got float 12.34" in errors
    assert "$.invoice_items[0]: cost_center is not in the spec" in errors
    assert any(e.startswith("$.meta.total: expected integer") for e in errors)

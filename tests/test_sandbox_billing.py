"""The sandbox's account and billing endpoints beside the invoices: `GET /v2/account`, Billing
Insights, the billing history and the balance, checked against the official OpenAPI file.

Plain `requests` over loopback, never the pipeline's client, so a mistake the client and the
sandbox share cannot hide here. The schema check is the subset of JSON Schema these responses use
(type, properties, required, items, allOf, anyOf, enum, format date/date-time). It reports every
deviation; a test then allows, by name, exactly the deviations the live API is known to have:
Billing Insights' three counters as digit strings, a billing-history `type` outside the enum, and
(only when the sandbox is told to) a billing history without `meta`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from pipeline.sandbox import SandboxServer, build_dataset

SPEC = json.loads(
    (Path(__file__).parents[1] / "spec/digitalocean/billing.bundled.json").read_text()
)
ACCOUNT = "/v2/account"
BALANCE = "/v2/customers/my/balance"
HISTORY = "/v2/customers/my/billing_history"
INVOICES = "/v2/customers/my/invoices"
INSIGHTS_SPEC = "/v2/billing/{account_urn}/insights/{start_date}/{end_date}"
COUNTERS = ("total_items", "total_pages", "current_page")
JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
DECIMAL = re.compile(r"^-?\d+\.\d{2}$")


def response_schema(path: str, status: int) -> dict:
    responses = SPEC["paths"][path]["get"]["responses"]
    answer = responses.get(str(status), responses.get("default"))
    return answer["content"]["application/json"]["schema"]


def _format_error(value: str, fmt: str | None, where: str) -> list[str]:
    pattern = {"date": DATE, "date-time": DATE_TIME}.get(fmt or "")
    if pattern is None:
        return []
    try:
        if not pattern.match(value):
            raise ValueError
        if fmt == "date":
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return [f"{where}: {value!r:.40} is not a {fmt}"]
    return []


def schema_errors(value: Any, schema: dict, where: str = "$") -> list[str]:
    """Where `value` breaks `schema`. Null is accepted for an optional field; a field the spec
    does not declare is an error, so the sandbox cannot drift from the spec unnoticed."""
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            if "anyOf" in part or "allOf" in part or part.get("type") != "object":
                return [e for p in schema["allOf"] for e in schema_errors(value, p, where)]
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return schema_errors(value, merged, where)
    if "anyOf" in schema:
        tries = [schema_errors(value, option, where) for option in schema["anyOf"]]
        return [] if any(not t for t in tries) else min(tries, key=len)
    expected = schema.get("type")
    if expected and not isinstance(value, JSON_TYPES[expected]):
        return [f"{where}: expected {expected}, got {type(value).__name__} {value!r:.40}"]
    if expected == "integer" and isinstance(value, bool):
        return [f"{where}: expected integer, got bool"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r:.40} is not in the enum")
    if isinstance(value, str):
        errors += _format_error(value, schema.get("format"), where)
    if isinstance(value, dict) and "properties" in schema:
        declared = schema["properties"]
        errors += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        errors += [f"{where}: {k} is not in the spec" for k in value if k not in declared]
        for key, item in value.items():
            if key in declared and not (item is None and key not in schema.get("required", [])):
                errors += schema_errors(item, declared[key], f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{n}]")
    return errors


def counter_deviations(body: dict) -> set[str]:
    """The errors that Billing Insights' counters sent as digit strings produce, and only those."""
    return {
        f"$.{k}: expected integer, got str {body[k]!r:.40}"
        for k in COUNTERS
        if isinstance(body.get(k), str) and body[k].isdigit()
    }


def unknown_type_deviations(errors: list[str]) -> list[str]:
    """Billing-history entries whose `type` is outside the spec's enum (the API adds types)."""
    return [
        e
        for e in errors
        if re.fullmatch(r"\$\.billing_history\[\d+\]\.type: '\w+' is not in the enum", e)
    ]


@pytest.fixture(scope="module")
def server():
    with SandboxServer() as sandbox:
        yield sandbox


def get(
    server: SandboxServer, path: str, token: str | None = None, **params: Any
) -> requests.Response:
    token = server.token if token is None else token
    return requests.get(
        server.url + path,
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        allow_redirects=False,
    )


def checked(resp: requests.Response) -> dict:
    for header in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
        assert resp.headers[header].isdigit(), header
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()


def insights_path(urn: str, start: str, end: str) -> str:
    return f"/v2/billing/{urn}/insights/{start}/{end}"


def points_by_month(server: SandboxServer) -> dict[str, list[dict]]:
    months: dict[str, list[dict]] = defaultdict(list)
    for point in server.data.insights:
        months[point["start_date"][:7]].append(point)
    return dict(months)


def month_window(month: str) -> tuple[str, str]:
    year, number = int(month[:4]), int(month[5:])
    following = date(year + (number == 12), number % 12 + 1, 1)
    return f"{month}-01", date.fromordinal(following.toordinal() - 1).isoformat()


def all_insight_pages(
    server: SandboxServer, start: str, end: str, per_page: int
) -> tuple[list[dict], list[dict]]:
    """Every page of the window, page 1 on until `total_pages`: (points, bodies)."""
    path = insights_path(server.data.team_urn, start, end)
    bodies, page = [], 1
    while True:
        resp = get(server, path, per_page=per_page, page=page)
        assert resp.status_code == 200, resp.text
        body = checked(resp)
        errors = schema_errors(body, response_schema(INSIGHTS_SPEC, 200))
        assert set(errors) == counter_deviations(body) and len(errors) == 3, errors
        bodies.append(body)
        if page >= int(body["total_pages"]):
            break
        page += 1
    return [p for b in bodies for p in b["data_points"]], bodies


def decimal_cents(amount: str) -> int:
    assert DECIMAL.match(amount), amount
    return int(Decimal(amount) * 100)


# -- /v2/account ---------------------------------------------------------------------------------
def test_account_conforms_and_gives_the_team(server):
    resp = get(server, ACCOUNT)
    assert resp.status_code == 200
    body = checked(resp)
    assert schema_errors(body, response_schema(ACCOUNT, 200)) == []
    account = body["account"]
    assert account["team"] == {"uuid": server.data.team["uuid"], "name": "Example Co"}
    assert server.data.team_urn == f"do:team:{account['team']['uuid']}"
    assert account["status"] == "active" and account["email_verified"] is True
    model = response_schema(ACCOUNT, 200)["properties"]["account"]
    assert set(model["required"]) <= set(account)  # every required field, filled


def test_the_team_comes_from_the_data(server):
    data = server.data.copy()
    data.team = {"uuid": "11111111-2222-3333-4444-555555555555", "name": "Other"}
    for point in data.insights:
        point["usage_team_urn"] = data.team_urn
    with SandboxServer(data) as other:
        assert get(other, ACCOUNT).json()["account"]["team"]["name"] == "Other"
        # Billing Insights answer for the data's team only.
        window = get(other, insights_path(data.team_urn, "2026-01-01", "2026-01-31"))
        assert window.json()["total_items"] == str(len(points_by_month(server)["2026-01"]))
        old = get(other, insights_path(server.data.team_urn, "2026-01-01", "2026-01-31"))
        assert old.status_code == 404 and old.json()["id"] == "not_found"
    assert server.data.team["name"] == "Example Co"  # the copy was deep
    assert server.data.insights[0]["usage_team_urn"] == server.data.team_urn


# -- scopes --------------------------------------------------------------------------------------
def test_without_account_read_the_account_answers_403_and_billing_still_works():
    with SandboxServer(scopes=frozenset({"billing:read"})) as sandbox:
        resp = get(sandbox, ACCOUNT)
        assert resp.status_code == 403
        body = checked(resp)
        assert schema_errors(body, response_schema(ACCOUNT, 403)) == []
        assert body["id"] == "forbidden"
        assert body["message"] == "You do not have access for the attempted action."
        assert re.fullmatch(r"[0-9a-f-]{36}", body["request_id"])
        assert get(sandbox, BALANCE).status_code == 200
        assert get(sandbox, HISTORY).status_code == 200
        assert [r["status"] for r in sandbox.requests] == [403, 200, 200]


def test_without_billing_read_every_billing_endpoint_answers_403():
    with SandboxServer(scopes=frozenset({"account:read"})) as sandbox:
        urn = sandbox.data.team_urn
        uuid = sandbox.data.invoices[0]["invoice_uuid"]
        for path, spec_path in [
            (BALANCE, BALANCE),
            (HISTORY, HISTORY),
            (insights_path(urn, "2026-01-01", "2026-01-31"), INSIGHTS_SPEC),
            (INVOICES, INVOICES),
            (f"{INVOICES}/{uuid}", f"{INVOICES}/{{invoice_uuid}}"),
            (f"{INVOICES}/{uuid}/summary", f"{INVOICES}/{{invoice_uuid}}/summary"),
        ]:
            resp = get(sandbox, path)
            assert resp.status_code == 403, path
            body = checked(resp)
            assert schema_errors(body, response_schema(spec_path, 403)) == []
            assert body["id"] == "forbidden", path
        assert get(sandbox, ACCOUNT).status_code == 200
        assert sandbox.respond(BALANCE, {}) == (403, None)


def test_with_no_scopes_nothing_is_readable_but_a_wrong_token_is_still_401():
    with SandboxServer(scopes=frozenset()) as sandbox:
        assert get(sandbox, ACCOUNT).json()["id"] == "forbidden"
        assert get(sandbox, BALANCE).json()["id"] == "forbidden"
        assert get(sandbox, BALANCE, token="wrong").json()["id"] == "unauthorized"


# -- Billing Insights ----------------------------------------------------------------------------
def test_insights_conform_but_for_the_counters_sent_as_strings(server):
    start, end = month_window("2026-01")
    resp = get(server, insights_path(server.data.team_urn, start, end), per_page=200)
    assert resp.status_code == 200
    body = checked(resp)
    assert set(body) == {"data_points", *COUNTERS}  # no links, no meta
    errors = schema_errors(body, response_schema(INSIGHTS_SPEC, 200))
    assert sorted(errors) == sorted(counter_deviations(body))
    assert len(errors) == 3
    assert body["current_page"] == "1" and body["total_pages"] == "2"
    assert int(body["total_items"]) == len(points_by_month(server)["2026-01"])
    point = body["data_points"][0]
    assert point["usage_team_urn"] == server.data.team_urn
    assert DECIMAL.match(point["total_amount"])


def test_insights_counters_as_integers_conform_exactly():
    with SandboxServer(string_counters=False) as sandbox:
        start, end = month_window("2025-12")
        body = get(sandbox, insights_path(sandbox.data.team_urn, start, end), per_page=200).json()
        assert schema_errors(body, response_schema(INSIGHTS_SPEC, 200)) == []
        assert body["current_page"] == 1 and body["total_pages"] == 1
        assert body["total_items"] == len(body["data_points"]) > 0


def test_the_counter_allowance_excuses_nothing_else(server):
    start, end = month_window("2026-01")
    body = get(server, insights_path(server.data.team_urn, start, end)).json()
    body["total_items"] = "many"
    body["total_pages"] = 2.0
    body["data_points"][0]["total_amount"] = 12.45
    body["data_points"][1]["invoice_uuid"] = "x"
    body["data_points"][2]["start_date"] = "2026-01-32"
    del body["current_page"]
    errors = schema_errors(body, response_schema(INSIGHTS_SPEC, 200))
    left = [e for e in errors if e not in counter_deviations(body)]
    assert "$.total_items: expected integer, got str 'many'" in left
    assert "$.total_pages: expected integer, got float 2.0" in left
    assert "$: missing current_page" in left
    assert "$.data_points[0].total_amount: expected string, got float 12.45" in left
    assert "$.data_points[1]: invoice_uuid is not in the spec" in left
    assert "$.data_points[2].start_date: '2026-01-32' is not a date" in left


@pytest.mark.parametrize("month", ["2026-01", "2025-12"])
@pytest.mark.parametrize("cap", [200, 25])
def test_insights_pages_add_up_to_the_window(month, cap):
    """At per_page=200, and with the server capping pages at 25, the union of the pages is the
    data's points of the window, in order, with the counters as strings on every page."""
    with SandboxServer(max_per_page=cap) as sandbox:
        start, end = month_window(month)
        points, bodies = all_insight_pages(sandbox, start, end, per_page=200)
        expected = [p for p in sandbox.data.insights if start <= p["start_date"] <= end]
        assert points == expected
        assert [p["start_date"] for p in points] == sorted(p["start_date"] for p in points)
        pages = -(-len(expected) // cap)
        assert [b["current_page"] for b in bodies] == [str(n) for n in range(1, pages + 1)]
        assert {(b["total_items"], b["total_pages"]) for b in bodies} == {
            (str(len(expected)), str(pages))
        }
        assert all(len(b["data_points"]) == cap for b in bodies[:-1])
        if month == "2026-01":
            assert len(expected) > 200 and len(bodies) >= 2
        else:
            assert len(expected) < 200


def test_insights_default_to_20_per_page_and_a_page_past_the_end_is_empty(server):
    start, end = month_window("2026-01")
    path = insights_path(server.data.team_urn, start, end)
    first = get(server, path).json()
    assert len(first["data_points"]) == 20
    total = len(points_by_month(server)["2026-01"])
    assert first["total_pages"] == str(-(-total // 20))
    past = get(server, path, per_page=200, page=9).json()
    assert past == {
        "data_points": [],
        "total_items": str(total),
        "total_pages": "2",
        "current_page": "9",
    }


def test_insights_window_is_inclusive_and_at_most_31_days(server):
    urn = server.data.team_urn
    one_day = get(server, insights_path(urn, "2026-01-15", "2026-01-15"), per_page=200).json()
    assert {p["start_date"] for p in one_day["data_points"]} == {"2026-01-15"}
    span = get(server, insights_path(urn, "2026-01-01", "2026-02-01"), per_page=200).json()
    assert span["total_items"] == str(
        len(points_by_month(server)["2026-01"])
        + sum(p["start_date"] == "2026-02-01" for p in server.data.insights)
    )
    for start, end in [
        ("2026-01-01", "2026-02-02"),  # 32 days
        ("2026-01-10", "2026-01-09"),  # end before start
        ("2026-01-01", "2026-13-01"),  # not a date
        ("20260101", "2026-01-02"),  # not YYYY-MM-DD
    ]:
        resp = get(server, insights_path(urn, start, end))
        assert resp.status_code == 400, (start, end)
        body = checked(resp)
        assert schema_errors(body, response_schema(INSIGHTS_SPEC, 400)) == []
        assert body["id"] == "bad_request" and body["message"]


def test_insights_of_another_team_are_not_found(server):
    for urn in (
        "do:team:00000000-0000-0000-0000-000000000000",
        f"do:teamgroup:{server.data.team['uuid']}",
        server.data.team["uuid"],
    ):
        resp = get(server, insights_path(urn, "2026-01-01", "2026-01-31"))
        assert resp.status_code == 404
        body = checked(resp)
        assert schema_errors(body, response_schema(INSIGHTS_SPEC, 404)) == []
        assert body["id"] == "not_found"


def test_no_insights_before_december_2025(server):
    assert min(p["start_date"] for p in server.data.insights) == "2025-12-01"
    resp = get(server, insights_path(server.data.team_urn, "2025-11-01", "2025-11-30"))
    assert resp.status_code == 200
    assert resp.json() == {
        "data_points": [],
        "total_items": "0",
        "total_pages": "0",
        "current_page": "1",
    }
    straddle = get(
        server, insights_path(server.data.team_urn, "2025-11-15", "2025-12-02"), per_page=200
    ).json()
    assert {p["start_date"] for p in straddle["data_points"]} == {"2025-12-01", "2025-12-02"}


def test_identical_points_on_one_day_are_both_served(server):
    served = get(
        server, insights_path(server.data.team_urn, "2026-01-15", "2026-01-15"), per_page=200
    ).json()["data_points"]
    repeated = [p for p, n in Counter(json.dumps(p) for p in served).items() if n == 2]
    assert len(repeated) == 1
    assert json.loads(repeated[0])["start_date"] == "2026-01-15"
    everywhere = Counter(json.dumps(p, sort_keys=True) for p in server.data.insights)
    assert [n for n in everywhere.values() if n > 1] == [2]


def test_insights_are_estimates_close_to_the_invoices(server):
    months = points_by_month(server)
    invoices = {i["invoice_period"]: i["amount"] for i in server.data.invoices}
    closed = sorted(m for m in months if m in invoices)
    assert closed[0] == "2025-12" and len(closed) >= 2
    gaps = {
        m: sum(decimal_cents(p["total_amount"]) for p in months[m]) - decimal_cents(invoices[m])
        for m in closed
    }
    assert gaps["2025-12"] == 0  # one month matches its invoice to the cent
    assert sum(g != 0 for g in gaps.values()) == len(closed) - 1
    assert all(abs(g) <= 500 for g in gaps.values())  # a few dollars at most
    for month in closed:  # a closed month has every day
        first, last = month_window(month)
        assert {p["start_date"] for p in months[month]} == {
            date.fromordinal(d).isoformat()
            for d in range(
                date.fromisoformat(first).toordinal(), date.fromisoformat(last).toordinal() + 1
            )
        }
    assert any(len(points) > 200 for points in months.values())
    assert any(len(points) < 200 for points in months.values())
    regions = {p["region"] for p in server.data.insights}
    assert {"nyc3", "fra1", "sgp1", "ams3"} <= regions
    assert any(p["group_description"] == "" for p in server.data.insights)
    assert any(p["group_description"] for p in server.data.insights)
    today = date.fromisoformat(server.data.balance["generated_at"][:10])
    assert max(p["start_date"] for p in server.data.insights) < today.isoformat()


# -- billing history -----------------------------------------------------------------------------
def test_billing_history_conforms_and_keeps_an_unknown_type(server):
    resp = get(server, HISTORY, per_page=200)
    assert resp.status_code == 200
    body = checked(resp)
    errors = schema_errors(body, response_schema(HISTORY, 200))
    unknown = unknown_type_deviations(errors)
    assert errors == unknown
    assert len(unknown) == 1 and "'Promotion'" in unknown[0]
    entries = body["billing_history"]
    assert entries == server.data.billing_history
    assert body["meta"] == {"total": len(entries)}
    dates = [e["date"] for e in entries]
    assert dates == sorted(dates, reverse=True)  # newest first
    assert all(DECIMAL.match(e["amount"]) for e in entries)
    types = Counter(e["type"] for e in entries)
    assert types["Refund"] == 1 and types["AttemptFailed"] == 1 and types["Credit"] >= 2
    assert types["Promotion"] == 1


def test_billing_history_points_at_the_invoices(server):
    entries = server.data.billing_history
    invoices = {i["invoice_uuid"]: i for i in server.data.invoices}
    without_ids = [e for e in entries if "invoice_uuid" not in e]
    assert {e["type"] for e in without_ids} == {"Credit", "Refund", "AttemptFailed", "Promotion"}
    assert all("invoice_id" not in e for e in without_ids)
    for entry in entries:
        if entry["type"] in ("Invoice", "Payment"):
            invoice = invoices[entry["invoice_uuid"]]
            assert entry["invoice_id"] == invoice["invoice_id"]
            sign = 1 if entry["type"] == "Invoice" else -1
            assert decimal_cents(entry["amount"]) == sign * decimal_cents(invoice["amount"])
    billed = {e["invoice_uuid"] for e in entries if e["type"] == "Invoice"}
    assert billed == set(invoices)
    for entry in entries:
        if entry["type"] in ("Payment", "Credit", "Promotion"):
            assert entry["amount"].startswith("-"), entry
    october = next(e for e in entries if e["description"] == "Invoice for October 2025")
    assert october["date"].startswith("2025-11-0")


@pytest.mark.parametrize("with_total", [True, False])
def test_billing_history_pages_like_the_invoice_list(with_total):
    """Default 20 per page, `links.pages` absolute and pointing at the real API; `meta.total`
    only when the server sends it; following `next` gives every entry once, in order."""
    with SandboxServer(history_total=with_total, max_per_page=25) as sandbox:
        expected = sandbox.data.billing_history
        first = get(sandbox, HISTORY).json()
        assert len(first["billing_history"]) == 20
        assert first["links"]["pages"]["next"] == (
            "https://api.digitalocean.com/v2/customers/my/billing_history?page=2&per_page=20"
        )
        assert ("total" in first["meta"]) is with_total
        seen, page, bodies = [], 1, []
        while True:
            resp = get(sandbox, HISTORY, per_page=200, page=page)
            body = checked(resp)
            errors = schema_errors(body, response_schema(HISTORY, 200))
            errors = [e for e in errors if e not in unknown_type_deviations(errors)]
            assert errors == []
            bodies.append(body)
            seen += body["billing_history"]
            following = body.get("links", {}).get("pages", {}).get("next")
            if not following:
                break
            page = int(re.search(r"[?&]page=(\d+)", following).group(1))
            assert "per_page=25" in following  # the server's page size, not the asked one
        assert seen == expected
        assert len(bodies) == -(-len(expected) // 25)
        if with_total:
            assert {b["meta"]["total"] for b in bodies} == {len(expected)}
        else:
            assert all(b["meta"] == {} for b in bodies)
        last = bodies[-1]["links"]["pages"]
        assert set(last) == {"first", "prev"}


def test_billing_history_rows_match_the_invoice_list_paging(server):
    """Same `_paged` as the invoice list: same page sizes, same link shapes."""
    history = get(server, HISTORY, per_page=7, page=2).json()
    invoices = get(server, INVOICES, per_page=7, page=2).json()
    assert len(history["billing_history"]) == len(invoices["invoices"]) == 7
    assert set(history["links"]["pages"]) == set(invoices["links"]["pages"])
    assert history["billing_history"] == server.data.billing_history[7:14]


# -- balance -------------------------------------------------------------------------------------
def test_balance_conforms_and_adds_up(server):
    resp = get(server, BALANCE)
    assert resp.status_code == 200
    body = checked(resp)
    assert schema_errors(body, response_schema(BALANCE, 200)) == []
    assert set(body) == {
        "month_to_date_balance",
        "account_balance",
        "month_to_date_usage",
        "generated_at",
    }
    assert body["month_to_date_usage"] == server.data.preview["amount"]
    assert decimal_cents(body["month_to_date_balance"]) == decimal_cents(
        body["account_balance"]
    ) + decimal_cents(body["month_to_date_usage"])
    assert decimal_cents(body["account_balance"]) == sum(
        decimal_cents(e["amount"]) for e in server.data.billing_history
    )
    assert body["generated_at"].startswith(server.data.preview["invoice_period"])
    assert DATE_TIME.match(body["generated_at"])
    assert body == get(server, BALANCE).json()  # fixed, not the clock


def test_the_data_is_deterministic_and_copies_deeply(server):
    today = date.fromisoformat(server.data.balance["generated_at"][:10])
    again = build_dataset(today=today)
    assert again.team == server.data.team
    assert again.insights == server.data.insights
    assert again.billing_history == server.data.billing_history
    assert again.balance == server.data.balance
    copy = again.copy()
    copy.insights[0]["total_amount"] = "0.00"
    copy.billing_history[0]["type"] = "Changed"
    copy.balance["account_balance"] = "1.00"
    copy.team["name"] = "Changed"
    assert again.insights == server.data.insights
    assert again.billing_history == server.data.billing_history
    assert again.balance == server.data.balance
    assert again.team == server.data.team


def test_the_command_line_serves_with_the_scopes_given():
    """`python -m pipeline.sandbox --scopes billing:read`: a token without account:read."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sandbox", "--port", "0", "--scopes", "billing:read"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        line = process.stdout.readline()
        assert "scopes billing:read)" in line
        url = re.search(r"http://[\d.]+:\d+", line).group(0)
        headers = {"Authorization": "Bearer sandbox-token"}
        account = requests.get(f"{url}{ACCOUNT}", headers=headers, timeout=10)
        assert account.status_code == 403 and account.json()["id"] == "forbidden"
        balance = requests.get(f"{url}{BALANCE}", headers=headers, timeout=10)
        assert balance.status_code == 200 and "month_to_date_usage" in balance.json()
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()

"""The sandbox's account and billing endpoints beside the invoices: `GET /v2/account`, Billing
Insights, the billing history and the balance, checked against the official OpenAPI file.

Plain `requests` over loopback, never the pipeline's client, so a mistake the client and the
sandbox share cannot hide here. The schema check is the `openapi` fixture (conftest.py). It
reports every deviation; a test then allows, by name, exactly the deviations the live API is known
to have: Billing Insights' three counters as digit strings and a billing-history `type` outside
the enum.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from pipeline.months import month_of, previous_month
from pipeline.sandbox import SandboxServer, build_dataset

ACCOUNT = "/v2/account"
BALANCE = "/v2/customers/my/balance"
HISTORY = "/v2/customers/my/billing_history"
INVOICES = "/v2/customers/my/invoices"
INSIGHTS_SPEC = "/v2/billing/{account_urn}/insights/{start_date}/{end_date}"
COUNTERS = ("total_items", "total_pages", "current_page")
DECIMAL = re.compile(r"^-?\d+\.\d{2}$")


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


# The moment the module's account is generated at: its data is the same on any day.
NOW = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
# Moments where a calendar rule bites: just after midnight on the 1st (the month just closed
# has its final invoice but not yet its billing-history time), before the day's snapshot on the
# 2nd, a leap day, New Year's Eve, and the very first second of a year.
EDGES = [
    datetime(2027, 3, 1, 0, 20, tzinfo=UTC),
    datetime(2027, 3, 2, 4, 0, tzinfo=UTC),
    datetime(2028, 2, 29, 13, 0, tzinfo=UTC),
    datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2028, 1, 1, 0, 0, tzinfo=UTC),
]


@pytest.fixture(scope="module")
def server():
    with SandboxServer(now=NOW) as sandbox:
        yield sandbox


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
    openapi, api_get, server: SandboxServer, start: str, end: str, per_page: int
) -> tuple[list[dict], list[dict]]:
    """Every page of the window, page 1 on until `total_pages`: (points, bodies)."""
    path = insights_path(server.data.team_urn, start, end)
    bodies, page = [], 1
    while True:
        resp = api_get(server, path, per_page=per_page, page=page)
        assert resp.status_code == 200, resp.text
        body = checked(resp)
        errors = openapi.errors(body, openapi.schema(INSIGHTS_SPEC, 200))
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
def test_account_conforms_and_gives_the_team(openapi, api_get, server):
    resp = api_get(server, ACCOUNT)
    assert resp.status_code == 200
    body = checked(resp)
    assert openapi.errors(body, openapi.schema(ACCOUNT, 200)) == []
    account = body["account"]
    assert account["team"] == {"uuid": server.data.team["uuid"], "name": "Example Co"}
    assert server.data.team_urn == f"do:team:{account['team']['uuid']}"
    assert account["status"] == "active" and account["email_verified"] is True
    model = openapi.schema(ACCOUNT, 200)["properties"]["account"]
    assert set(model["required"]) <= set(account)  # every required field, filled


def test_the_team_comes_from_the_data(api_get, server):
    data = server.data.copy()
    data.team = {"uuid": "11111111-2222-3333-4444-555555555555", "name": "Other"}
    for point in data.insights:
        point["usage_team_urn"] = data.team_urn
    with SandboxServer(data) as other:
        assert api_get(other, ACCOUNT).json()["account"]["team"]["name"] == "Other"
        # Billing Insights answer for the data's team only.
        window = api_get(other, insights_path(data.team_urn, "2026-01-01", "2026-01-31"))
        assert window.json()["total_items"] == str(len(points_by_month(server)["2026-01"]))
        old = api_get(other, insights_path(server.data.team_urn, "2026-01-01", "2026-01-31"))
        assert old.status_code == 404 and old.json()["id"] == "not_found"
    assert server.data.team["name"] == "Example Co"  # the copy was deep
    assert server.data.insights[0]["usage_team_urn"] == server.data.team_urn


# -- scopes --------------------------------------------------------------------------------------
def test_without_account_read_the_account_answers_403_and_billing_still_works(openapi, api_get):
    with SandboxServer(scopes=frozenset({"billing:read"})) as sandbox:
        resp = api_get(sandbox, ACCOUNT)
        assert resp.status_code == 403
        body = checked(resp)
        assert openapi.errors(body, openapi.schema(ACCOUNT, 403)) == []
        assert body["id"] == "forbidden"
        assert body["message"] == "You do not have access for the attempted action."
        assert re.fullmatch(r"[0-9a-f-]{36}", body["request_id"])
        assert api_get(sandbox, BALANCE).status_code == 200
        assert api_get(sandbox, HISTORY).status_code == 200
        assert [r["status"] for r in sandbox.requests] == [403, 200, 200]


def test_without_billing_read_every_billing_endpoint_answers_403(openapi, api_get):
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
            resp = api_get(sandbox, path)
            assert resp.status_code == 403, path
            body = checked(resp)
            assert openapi.errors(body, openapi.schema(spec_path, 403)) == []
            assert body["id"] == "forbidden", path
        assert api_get(sandbox, ACCOUNT).status_code == 200
        assert sandbox.respond(BALANCE, {}) == (403, None)


def test_with_no_scopes_nothing_is_readable_but_a_wrong_token_is_still_401(api_get):
    with SandboxServer(scopes=frozenset()) as sandbox:
        assert api_get(sandbox, ACCOUNT).json()["id"] == "forbidden"
        assert api_get(sandbox, BALANCE).json()["id"] == "forbidden"
        assert api_get(sandbox, BALANCE, token="wrong").json()["id"] == "unauthorized"


# -- Billing Insights ----------------------------------------------------------------------------
def test_insights_conform_but_for_the_counters_sent_as_strings(openapi, api_get, server):
    start, end = month_window("2026-01")
    resp = api_get(server, insights_path(server.data.team_urn, start, end), per_page=200)
    assert resp.status_code == 200
    body = checked(resp)
    assert set(body) == {"data_points", *COUNTERS}  # no links, no meta
    errors = openapi.errors(body, openapi.schema(INSIGHTS_SPEC, 200))
    assert sorted(errors) == sorted(counter_deviations(body))
    assert len(errors) == 3
    assert body["current_page"] == "1" and body["total_pages"] == "2"
    assert int(body["total_items"]) == len(points_by_month(server)["2026-01"])
    point = body["data_points"][0]
    assert point["usage_team_urn"] == server.data.team_urn
    assert DECIMAL.match(point["total_amount"])


def test_insights_counters_as_integers_conform_exactly(openapi, api_get):
    with SandboxServer(string_counters=False) as sandbox:
        start, end = month_window("2025-12")
        body = api_get(
            sandbox, insights_path(sandbox.data.team_urn, start, end), per_page=200
        ).json()
        assert openapi.errors(body, openapi.schema(INSIGHTS_SPEC, 200)) == []
        assert body["current_page"] == 1 and body["total_pages"] == 1
        assert body["total_items"] == len(body["data_points"]) > 0


def test_the_counter_allowance_excuses_nothing_else(openapi, api_get, server):
    start, end = month_window("2026-01")
    body = api_get(server, insights_path(server.data.team_urn, start, end)).json()
    body["total_items"] = "many"
    body["total_pages"] = 2.0
    body["data_points"][0]["total_amount"] = 12.45
    body["data_points"][1]["invoice_uuid"] = "x"
    body["data_points"][2]["start_date"] = "2026-01-32"
    del body["current_page"]
    errors = openapi.errors(body, openapi.schema(INSIGHTS_SPEC, 200))
    left = [e for e in errors if e not in counter_deviations(body)]
    assert "$.total_items: expected integer, got str 'many'" in left
    assert "$.total_pages: expected integer, got float 2.0" in left
    assert "$: missing current_page" in left
    assert "$.data_points[0].total_amount: expected string, got float 12.45" in left
    assert "$.data_points[1]: invoice_uuid is not in the spec" in left
    assert "$.data_points[2].start_date: '2026-01-32' is not a date" in left


@pytest.mark.parametrize("month", ["2026-01", "2025-12"])
@pytest.mark.parametrize("cap", [200, 25])
def test_insights_pages_add_up_to_the_window(openapi, api_get, month, cap):
    """At per_page=200, and with the server capping pages at 25, the union of the pages is the
    data's points of the window, in order, with the counters as strings on every page."""
    with SandboxServer(max_per_page=cap) as sandbox:
        start, end = month_window(month)
        points, bodies = all_insight_pages(openapi, api_get, sandbox, start, end, per_page=200)
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


def test_insights_default_to_20_per_page_and_a_page_past_the_end_is_empty(api_get, server):
    start, end = month_window("2026-01")
    path = insights_path(server.data.team_urn, start, end)
    first = api_get(server, path).json()
    assert len(first["data_points"]) == 20
    total = len(points_by_month(server)["2026-01"])
    assert first["total_pages"] == str(-(-total // 20))
    past = api_get(server, path, per_page=200, page=9).json()
    assert past == {
        "data_points": [],
        "total_items": str(total),
        "total_pages": "2",
        "current_page": "9",
    }


def test_insights_window_is_inclusive_and_at_most_31_days(openapi, api_get, server):
    urn = server.data.team_urn
    one_day = api_get(server, insights_path(urn, "2026-01-15", "2026-01-15"), per_page=200).json()
    assert {p["start_date"] for p in one_day["data_points"]} == {"2026-01-15"}
    span = api_get(server, insights_path(urn, "2026-01-01", "2026-02-01"), per_page=200).json()
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
        resp = api_get(server, insights_path(urn, start, end))
        assert resp.status_code == 400, (start, end)
        body = checked(resp)
        assert openapi.errors(body, openapi.schema(INSIGHTS_SPEC, 400)) == []
        assert body["id"] == "bad_request" and body["message"]


def test_insights_of_another_team_are_not_found(openapi, api_get, server):
    for urn in (
        "do:team:00000000-0000-0000-0000-000000000000",
        f"do:teamgroup:{server.data.team['uuid']}",
        server.data.team["uuid"],
    ):
        resp = api_get(server, insights_path(urn, "2026-01-01", "2026-01-31"))
        assert resp.status_code == 404
        body = checked(resp)
        assert openapi.errors(body, openapi.schema(INSIGHTS_SPEC, 404)) == []
        assert body["id"] == "not_found"


def test_no_insights_before_december_2025(api_get, server):
    assert min(p["start_date"] for p in server.data.insights) == "2025-12-01"
    resp = api_get(server, insights_path(server.data.team_urn, "2025-11-01", "2025-11-30"))
    assert resp.status_code == 200
    assert resp.json() == {
        "data_points": [],
        "total_items": "0",
        "total_pages": "0",
        "current_page": "1",
    }
    straddle = api_get(
        server, insights_path(server.data.team_urn, "2025-11-15", "2025-12-02"), per_page=200
    ).json()
    assert {p["start_date"] for p in straddle["data_points"]} == {"2025-12-01", "2025-12-02"}


def test_identical_points_on_one_day_are_both_served(api_get, server):
    served = api_get(
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
def test_billing_history_conforms_and_keeps_an_unknown_type(openapi, api_get, server):
    resp = api_get(server, HISTORY, per_page=200)
    assert resp.status_code == 200
    body = checked(resp)
    errors = openapi.errors(body, openapi.schema(HISTORY, 200))
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


@pytest.mark.parametrize("now", EDGES, ids=lambda d: d.strftime("%Y-%m-%dT%H:%M"))
def test_the_account_at_any_moment_bills_every_invoice_and_nothing_later(now):
    """At any moment, every final invoice has its Invoice entry (the month just closed too, on
    the 1st after midnight), nothing is dated after the balance's snapshot, which is not after
    `now`, and the open month is `now`'s."""
    data = build_dataset(now=now)
    generated_at = data.balance["generated_at"]
    assert generated_at <= now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert generated_at[:10] == now.date().isoformat()
    assert data.preview["invoice_period"] == now.strftime("%Y-%m")
    assert data.invoices[0]["invoice_period"] == previous_month(month_of(now))
    billed = {e["invoice_uuid"] for e in data.billing_history if e["type"] == "Invoice"}
    assert billed == {i["invoice_uuid"] for i in data.invoices}
    assert all(e["date"] <= generated_at for e in data.billing_history)
    assert all(p["start_date"] < now.date().isoformat() for p in data.insights)
    assert build_dataset(now=now).billing_history == data.billing_history  # now decides it all


def test_just_after_midnight_on_the_first_the_closed_month_is_billed_not_yet_paid():
    data = build_dataset(now=datetime(2027, 3, 1, 0, 20, tzinfo=UTC))
    assert data.balance["generated_at"] == "2027-03-01T00:00:00Z"
    february = [e for e in data.billing_history if e["description"] == "Invoice for February 2027"]
    assert [e["date"] for e in february] == ["2027-03-01T00:00:00Z"]
    uuid = february[0]["invoice_uuid"]
    assert [e for e in data.billing_history if e.get("invoice_uuid") == uuid] == february
    assert data.insights[-1]["start_date"] == "2027-02-28"  # no point of the open month yet


@pytest.mark.parametrize("with_total", [True, False])
def test_billing_history_pages_like_the_invoice_list(openapi, api_get, with_total):
    """Default 20 per page, `links.pages` absolute and pointing at the real API; `meta.total`
    only when the server sends it; following `next` gives every entry once, in order."""
    with SandboxServer(history_total=with_total, max_per_page=25) as sandbox:
        expected = sandbox.data.billing_history
        first = api_get(sandbox, HISTORY).json()
        assert len(first["billing_history"]) == 20
        assert first["links"]["pages"]["next"] == (
            "https://api.digitalocean.com/v2/customers/my/billing_history?page=2&per_page=20"
        )
        assert ("total" in first["meta"]) is with_total
        seen, page, bodies = [], 1, []
        while True:
            resp = api_get(sandbox, HISTORY, per_page=200, page=page)
            body = checked(resp)
            errors = openapi.errors(body, openapi.schema(HISTORY, 200))
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


def test_billing_history_rows_match_the_invoice_list_paging(api_get, server):
    """Same `_paged` as the invoice list: same page sizes, same link shapes."""
    history = api_get(server, HISTORY, per_page=7, page=2).json()
    invoices = api_get(server, INVOICES, per_page=7, page=2).json()
    assert len(history["billing_history"]) == len(invoices["invoices"]) == 7
    assert set(history["links"]["pages"]) == set(invoices["links"]["pages"])
    assert history["billing_history"] == server.data.billing_history[7:14]


# -- balance -------------------------------------------------------------------------------------
def test_balance_conforms_and_adds_up(openapi, api_get, server):
    resp = api_get(server, BALANCE)
    assert resp.status_code == 200
    body = checked(resp)
    assert openapi.errors(body, openapi.schema(BALANCE, 200)) == []
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
    assert openapi.errors(body["generated_at"], {"type": "string", "format": "date-time"}) == []
    assert body == api_get(server, BALANCE).json()  # fixed, not the clock


def test_the_data_is_deterministic_and_copies_deeply(server):
    again = build_dataset(now=NOW)
    assert build_dataset(today=NOW.date()).balance == again.balance  # a day means its noon
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

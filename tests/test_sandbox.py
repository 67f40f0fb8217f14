"""The sandbox keeps the API's contract: every answer checked against the official OpenAPI file.

The tests call the sandbox with plain `requests`, not with the pipeline's client, so a mistake
shared by the client and the sandbox cannot hide here. The schema check is the `openapi` fixture
(conftest.py): the subset of JSON Schema these responses use.

Several teams, one token each: every token sees only its own account, a revoked token is refused
like an unknown one, rate limits and targeted faults count per token, and the request log says
which team asked and when.
"""

import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
import requests

from pipeline.sandbox import Fault, SandboxServer, build_dataset, build_teams

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


# -- several teams, one token each -------------------------------------------------------------
ACCOUNT = "/v2/account"
HISTORY = "/v2/customers/my/billing_history"
BALANCE = "/v2/customers/my/balance"
ITEMS_SPEC = f"{LIST}/{{invoice_uuid}}"
TODAY = date(2026, 11, 23)


def insights_path(urn: str) -> str:
    return f"/v2/billing/{urn}/insights/2026-01-01/2026-01-31"


@pytest.fixture(scope="module")
def teams():
    with SandboxServer.with_teams(build_teams(3, today=TODAY)) as sandbox:
        yield sandbox


def test_build_teams_gives_distinct_teams_sharing_no_id():
    accounts = build_teams(4, today=TODAY)
    assert list(accounts) == [
        "sandbox-token",
        "sandbox-token-2",
        "sandbox-token-3",
        "sandbox-token-4",
    ]
    first = accounts["sandbox-token"]
    assert first.team == build_dataset(today=TODAY).team
    assert first.team["name"] == "Example Co"
    names = [d.team["name"] for d in accounts.values()]
    assert names[1] == "Équipe Données" and len(set(names)) == 4
    assert len({d.team["uuid"] for d in accounts.values()}) == 4

    def ids(data, field: str) -> set[str]:
        if field.startswith("invoice"):
            return {i[field] for i in data.all_invoices()}
        return {it[field] for rows in data.items.values() for it in rows if it.get(field)}

    for field in ("invoice_uuid", "invoice_id", "resource_uuid", "resource_id"):
        sets = [ids(d, field) for d in accounts.values()]
        assert all(sets), field
        assert len(set().union(*sets)) == sum(map(len, sets)), field  # no id in two teams
    for data in accounts.values():
        assert {s["user_company"] for s in data.summaries.values()} == {data.team["name"]}
        assert {p["usage_team_urn"] for p in data.insights} == {data.team_urn}


def test_each_token_sees_only_its_own_team(openapi, api_get, teams):
    tokens = teams.tokens
    assert tokens == ["sandbox-token", "sandbox-token-2", "sandbox-token-3"]
    assert tokens[0] == teams.token and teams.data is teams.data_for(teams.token)
    for token in tokens:
        data = teams.data_for(token)
        listed = assert_conforms(openapi, api_get(teams, LIST, token, per_page=200), LIST)
        assert listed["invoices"] == data.invoices
        assert listed["invoice_preview"]["invoice_uuid"] == data.preview["invoice_uuid"]
        uuid = next(i["invoice_uuid"] for i in data.invoices if len(data.items[i["invoice_uuid"]]))
        page = assert_conforms(openapi, api_get(teams, f"{LIST}/{uuid}", token), ITEMS_SPEC)
        assert page["invoice_items"] == data.items[uuid][:20]
        account = assert_conforms(openapi, api_get(teams, ACCOUNT, token), ACCOUNT)["account"]
        assert account["team"] == data.team
        assert api_get(teams, HISTORY, token, per_page=200).json()["billing_history"] == (
            data.billing_history
        )
        assert api_get(teams, BALANCE, token).json() == data.balance
        own = api_get(teams, insights_path(data.team_urn), token, per_page=200)
        assert own.status_code == 200
        assert {p["usage_team_urn"] for p in own.json()["data_points"]} == {data.team_urn}
        for other in tokens:
            if other == token:
                continue
            theirs = teams.data_for(other)
            foreign = theirs.invoices[0]["invoice_uuid"]
            for path in (f"{LIST}/{foreign}", f"{LIST}/{foreign}/summary"):
                resp = api_get(teams, path, token)
                assert resp.status_code == 404 and resp.json()["id"] == "not_found", path
            resp = api_get(teams, insights_path(theirs.team_urn), token)
            assert resp.status_code == 404 and resp.json()["id"] == "not_found"
    teams_seen = {r["team"] for r in teams.requests}
    assert teams_seen == {teams.data_for(t).team["uuid"] for t in tokens}


def test_teams_can_be_added_after_start_and_data_stays_the_first_accounts(api_get):
    accounts = build_teams(2, today=TODAY)
    first, second = accounts.values()
    with SandboxServer(first, scopes=frozenset({"billing:read"})) as sandbox:
        assert sandbox.tokens == ["sandbox-token"]
        assert api_get(sandbox, ACCOUNT, "late").status_code == 401
        sandbox.add_team("late", second)
        assert sandbox.tokens == ["sandbox-token", "late"]
        assert sandbox.data_for("late") is second
        late = api_get(sandbox, ACCOUNT, "late")
        assert late.status_code == 200  # an added team has the default scopes…
        assert late.json()["account"]["team"] == second.team
        assert api_get(sandbox, ACCOUNT).status_code == 403  # …the first keeps its own
        with pytest.raises(ValueError, match="already has an account"):
            sandbox.add_team("late", first)
        with pytest.raises(KeyError, match="no sandbox account"):
            sandbox.data_for("nobody")
        changed = first.copy()
        changed.invoices = changed.invoices[:2]
        sandbox.data = changed
        assert len(api_get(sandbox, LIST).json()["invoices"]) == 2
        assert api_get(sandbox, LIST, "late", per_page=200).json()["invoices"] == second.invoices


def test_a_revoked_token_is_refused_from_the_next_request_like_an_unknown_one(openapi, api_get):
    """Another thread revokes team 2's token while it loads: 200s, then only 401s; the other
    teams never notice."""
    with SandboxServer.with_teams(build_teams(3, today=TODAY)) as sandbox:
        first, victim, third = sandbox.tokens
        others = (first, third)
        statuses: list[int] = []
        served = threading.Event()
        done = threading.Event()

        def load() -> None:
            while (not done.is_set() or statuses.count(401) < 3) and len(statuses) < 5000:
                statuses.append(api_get(sandbox, LIST, victim).status_code)
                if statuses[-1] == 200:
                    served.set()

        worker = threading.Thread(target=load)
        worker.start()
        assert served.wait(10)
        revoker = threading.Thread(target=sandbox.revoke, args=(victim,))
        revoker.start()
        revoker.join()
        done.set()
        worker.join(10)
        assert not worker.is_alive()
        first_refusal = statuses.index(401)
        assert first_refusal >= 1
        assert set(statuses[:first_refusal]) == {200}
        assert set(statuses[first_refusal:]) == {401}
        revoked = api_get(
            sandbox, f"{LIST}/{sandbox.data_for(victim).invoices[0]['invoice_uuid']}", victim
        )
        unknown = api_get(sandbox, LIST, "never-issued")
        assert revoked.status_code == unknown.status_code == 401
        body = assert_conforms(openapi, revoked, ITEMS_SPEC)
        assert (
            {k: v for k, v in body.items() if k != "request_id"}
            == {k: v for k, v in unknown.json().items() if k != "request_id"}
            == {"id": "unauthorized", "message": "Unable to authenticate you."}
        )
        assert set(revoked.headers) == set(unknown.headers)
        refused = [r for r in sandbox.requests if r["status"] == 401]
        assert {(r["authorized"], r["team"]) for r in refused} == {(False, None)}
        for token in others:
            resp = api_get(sandbox, ACCOUNT, token)
            assert resp.status_code == 200
            assert resp.json()["account"]["team"] == sandbox.data_for(token).team
        assert victim in sandbox.tokens  # still listed, with its data
        with pytest.raises(KeyError, match="no sandbox account"):
            sandbox.revoke("never-issued")


def test_rate_limits_count_per_token(api_get):
    with SandboxServer.with_teams(
        build_teams(2, today=TODAY), requests_per_minute=3, minute_seconds=2.0
    ) as sandbox:
        first, second = sandbox.tokens
        spent = [api_get(sandbox, BALANCE, first) for _ in range(4)]
        assert [r.status_code for r in spent] == [200, 200, 200, 429]
        assert spent[-1].json()["id"] == "too_many_requests"
        assert int(spent[-1].headers["retry-after"]) >= 1
        assert spent[2].headers["ratelimit-remaining"] == "4997"
        other = [api_get(sandbox, BALANCE, second) for _ in range(3)]
        assert [r.status_code for r in other] == [200, 200, 200]  # its own window and budget
        assert [r.headers["ratelimit-remaining"] for r in other] == ["4999", "4998", "4997"]
        assert api_get(sandbox, BALANCE, second).status_code == 429
        assert api_get(sandbox, BALANCE, "wrong").status_code == 401  # not 429
        time.sleep(2.1)  # the first token's minute passes
        assert api_get(sandbox, BALANCE, first).status_code == 200


def test_requests_record_team_and_times_and_teams_run_side_by_side(api_get):
    with SandboxServer.with_teams(build_teams(2, today=TODAY), latency=0.5) as sandbox:
        first, second = sandbox.tokens
        start = threading.Barrier(4)

        def get(token: str) -> int:
            start.wait(5)
            return api_get(sandbox, BALANCE, token).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(get, [first, second, first, second]))
        assert statuses == [200] * 4
        assert api_get(sandbox, BALANCE, "wrong").status_code == 401
        uuid_of = {t: sandbox.data_for(t).team["uuid"] for t in (first, second)}
        entries = sandbox.requests
        assert [r["team"] for r in entries].count(uuid_of[first]) == 2
        assert [r["team"] for r in entries].count(uuid_of[second]) == 2
        assert entries[-1]["team"] is None and entries[-1]["authorized"] is False
        for entry in entries:
            assert entry["started"] < entry["ended"], entry
            assert entry["ended"] - entry["started"] >= 0.5
        a = [r for r in entries if r["team"] == uuid_of[first]]
        b = [r for r in entries if r["team"] == uuid_of[second]]
        assert max(r["started"] for r in a + b) < min(r["ended"] for r in a + b)  # overlapped
        assert sandbox.peak_in_flight_by_team == {uuid_of[first]: 2, uuid_of[second]: 2}
        assert sandbox.peak_in_flight == 4 and sandbox.in_flight == 0


def test_a_fault_can_target_one_team(api_get):
    with SandboxServer.with_teams(build_teams(2, today=TODAY)) as sandbox:
        first, second = sandbox.tokens
        sandbox.inject(f"^{LIST}$", 500, times=3, token=second)
        assert [api_get(sandbox, LIST, first).status_code for _ in range(3)] == [200] * 3
        storm = [api_get(sandbox, LIST, second) for _ in range(4)]
        assert [r.status_code for r in storm] == [500, 500, 500, 200]
        assert storm[0].json()["id"] == "server_error"
        sandbox.inject(f"^{LIST}$", 503)  # untargeted: whichever token asks next
        assert api_get(sandbox, LIST, second).status_code == 503
        assert api_get(sandbox, LIST, first).status_code == 200


def test_the_command_line_serves_several_teams():
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.sandbox", "--port", "0", "--teams", "3"],
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        cwd=Path(__file__).parents[1],
    )
    try:
        url = re.search(r"http://[\d.]+:\d+", process.stdout.readline()).group(0)
        lines = [process.stdout.readline() for _ in range(3)]
        found = [
            re.search(r"token '([^']+)': team '([^']+)' \(([0-9a-f-]{36})\)", x) for x in lines
        ]
        assert [m.group(1) for m in found] == [
            "sandbox-token",
            "sandbox-token-2",
            "sandbox-token-3",
        ]
        assert found[0].group(2) == "Example Co" and found[1].group(2) == "Équipe Données"
        for match in found:
            headers = {"Authorization": f"Bearer {match.group(1)}"}
            team = requests.get(f"{url}{ACCOUNT}", headers=headers, timeout=10).json()
            assert team["account"]["team"] == {"uuid": match.group(3), "name": match.group(2)}
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_reissued_closes_the_preview_or_replaces_a_final_invoice_in_a_copy():
    data = build_dataset(today=TODAY)
    preview, may = data.preview, data.invoice_for("2024-05")
    closed = data.reissued(preview["invoice_period"], "f-1")
    assert closed.preview is None and data.preview == preview  # the original is untouched
    assert closed.invoices[0] == {
        **{k: v for k, v in preview.items() if k != "updated_at"},
        "invoice_uuid": "f-1",
    }
    assert closed.items["f-1"] == data.items[preview["invoice_uuid"]]
    lines = [{"product": "Droplets", "amount": "10.00"}, {"product": "Taxes", "amount": "0.80"}]
    again = data.reissued("2024-05", "r-1", lines)
    assert again.invoice_for("2024-05") == {**may, "invoice_uuid": "r-1", "amount": "10.80"}
    assert again.invoices.index(again.invoice_for("2024-05")) == data.invoices.index(may)
    assert again.items["r-1"] == lines and len(again.invoices) == len(data.invoices)

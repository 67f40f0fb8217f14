"""Several teams in one warehouse: three sandbox teams over real HTTP, one token each.

Each team's rows are exact and marked with its team; the teams load side by side; one team's
failure leaves the others committed and its own rows as they were, and the failed run names the
team without ever showing a token.
"""

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import pytest
import time_machine

from pipeline.defs.definitions import source_defs
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.sources import BALANCE, HISTORY, INVOICES, SOURCES
from pipeline.sources.invoices import INVOICE_PATH
from pipeline.teams import side_by_side
from pipeline.warehouse.publish import working_file

FIRST, LAST = "2024-01", "2024-06"
MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
ITEMS_PATH = INVOICE_PATH.replace("{key}", "[^/]+")


def expected_items(data, months):
    invoices = sorted(
        (i for i in data.invoices if i["invoice_period"] in months),
        key=lambda i: i["invoice_period"],
    )
    return invoices, [it for i in invoices for it in data.items[i["invoice_uuid"]]]


def team_totals(rows, path, team_uuid):
    return rows(
        path,
        "SELECT count(*), sum(amount), count(DISTINCT invoice_period) FROM invoice_items "
        "WHERE team_uuid = ?",
        [team_uuid],
    )


def test_every_teams_rows_are_exact_and_named(teams_sandbox, warehouse_path, materialize, rows):
    result = materialize(teams_sandbox, warehouse_path, FIRST, LAST)
    assert result.success
    for position, token in enumerate(teams_sandbox.tokens, start=1):
        data = teams_sandbox.data_for(token)
        team = data.team["uuid"]
        invoices, items = expected_items(data, MONTHS)
        assert rows(
            warehouse_path,
            "SELECT invoice_uuid, amount FROM invoices WHERE team_uuid = ? ORDER BY invoice_period",
            [team],
        ) == [(i["invoice_uuid"], Decimal(i["amount"])) for i in invoices]
        assert team_totals(rows, warehouse_path, team) == [
            (len(items), sum(Decimal(it["amount"]) for it in items), len(MONTHS))
        ]
        assert rows(
            warehouse_path,
            "SELECT team_name, token_position FROM teams WHERE team_uuid = ?",
            [team],
        ) == [(data.team["name"], position)]
        # The views are per team, under the team's name.
        assert rows(
            warehouse_path,
            "SELECT sum(amount), any_value(team_name) FROM monthly_spend_by_product "
            "WHERE team_uuid = ?",
            [team],
        ) == [(sum(Decimal(it["amount"]) for it in items), data.team["name"])]
    assert rows(warehouse_path, "SELECT count(*) FROM invoice_items WHERE team_uuid IS NULL") == [
        (0,)
    ]
    # Per-team counts in the materialization, the month's own.
    (items_event,) = [
        m
        for m in result.asset_materializations_for_node("invoice_tables")
        if m.asset_key == dg.AssetKey("invoice_items") and m.partition == FIRST
    ]
    by_team = items_event.metadata["by_team"].value
    for token in teams_sandbox.tokens:
        data = teams_sandbox.data_for(token)
        assert data.team["name"] in by_team
        assert f"| {len(expected_items(data, [FIRST])[1]):>6} |" in by_team
    assert items_event.metadata["teams"].value == 3


def test_teams_load_side_by_side(teams_sandbox, warehouse_path, materialize):
    teams_sandbox.latency = 0.02
    assert materialize(teams_sandbox, warehouse_path, FIRST, LAST).success
    spans = {}
    for request in teams_sandbox.requests:
        if request["team"] is not None:
            first, last = spans.get(request["team"], (request["started"], request["ended"]))
            spans[request["team"]] = (min(first, request["started"]), max(last, request["ended"]))
    assert len(spans) == 3
    # Every team's requests overlap every other team's in time: none waited for another.
    for a, (a_start, a_end) in spans.items():
        for b, (b_start, b_end) in spans.items():
            if a != b:
                assert a_start < b_end and b_start < a_end


def revoke_on_first_item_request(server, token, team_uuid) -> threading.Thread:
    """Revoke `token` as soon as its team asks for an invoice's items: mid-run."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(
                r["team"] == team_uuid and r["path"].startswith("/v2/customers/my/invoices/")
                for r in list(server.requests)
            ):
                server.revoke(token)
                return
            time.sleep(0.001)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_token_revoked_mid_run_fails_only_its_team(
    teams_sandbox, warehouse_path, materialize, rows, failure_message
):
    materialize(teams_sandbox, warehouse_path, FIRST)
    tokens = teams_sandbox.tokens
    revoked = teams_sandbox.data_for(tokens[1]).team
    before = team_totals(rows, warehouse_path, revoked["uuid"])
    before_rows = rows(
        warehouse_path,
        "SELECT * FROM invoice_items WHERE team_uuid = ? ORDER BY invoice_uuid, line_number",
        [revoked["uuid"]],
    )
    teams_sandbox.latency = 0.02
    watcher = revoke_on_first_item_request(teams_sandbox, tokens[1], revoked["uuid"])
    result = materialize(teams_sandbox, warehouse_path, FIRST, LAST, raise_on_error=False)
    watcher.join()
    assert not result.success
    message = failure_message(result)
    assert f"team {revoked['name']!r} ({revoked['uuid']})" in message
    assert "token 2 of DIGITALOCEAN_TOKENS" in message and "401" in message
    assert not any(token in message for token in tokens)
    # The revoked team: exactly its rows from before. The others: every month committed.
    assert team_totals(rows, warehouse_path, revoked["uuid"]) == before
    assert (
        rows(
            warehouse_path,
            "SELECT * FROM invoice_items WHERE team_uuid = ? ORDER BY invoice_uuid, line_number",
            [revoked["uuid"]],
        )
        == before_rows
    )
    for token in (tokens[0], tokens[2]):
        data = teams_sandbox.data_for(token)
        items = expected_items(data, MONTHS)[1]
        assert team_totals(rows, warehouse_path, data.team["uuid"]) == [
            (len(items), sum(Decimal(it["amount"]) for it in items), len(MONTHS))
        ]


def test_a_token_that_cannot_read_its_team_is_named_by_its_place_and_last_team(
    teams_sandbox, warehouse_path, materialize, failure_message
):
    materialize(teams_sandbox, warehouse_path, FIRST)
    revoked = teams_sandbox.data_for(teams_sandbox.tokens[2]).team
    teams_sandbox.revoke(teams_sandbox.tokens[2])
    result = materialize(teams_sandbox, warehouse_path, FIRST, raise_on_error=False)
    message = failure_message(result)
    assert not result.success
    assert (
        f"token 3 of DIGITALOCEAN_TOKENS (last seen reading team {revoked['name']!r} "
        f"({revoked['uuid']}))" in message
    )
    assert "1 of 3 team(s) failed" in message
    assert not any(token in message for token in teams_sandbox.tokens)


def test_two_tokens_of_one_team_are_refused_before_loading(
    teams_sandbox, warehouse_path, materialize, failure_message, rows
):
    first = teams_sandbox.tokens[0]
    teams_sandbox.add_team("another-token-of-team-one", teams_sandbox.data_for(first))
    result = materialize(teams_sandbox, warehouse_path, FIRST, raise_on_error=False)
    assert not result.success
    team = teams_sandbox.data_for(first).team
    message = failure_message(result)
    assert "token 1 of DIGITALOCEAN_TOKENS and token 4 of DIGITALOCEAN_TOKENS" in message
    assert f"team {team['name']!r} ({team['uuid']})" in message
    assert "another-token-of-team-one" not in message
    assert rows(warehouse_path, "SELECT count(*) FROM invoice_items") == [(0,)]


def test_every_source_loads_every_team(teams_sandbox, warehouse_path, materialize, rows):
    assets = [a for s in SOURCES for a in source_defs(s)]
    result = materialize(teams_sandbox, warehouse_path, "2025-12", "2026-01", assets=assets)
    assert result.success
    assert all(
        c.passed for c in result.get_asset_check_evaluations() if c.severity.value == "ERROR"
    )
    teams = sorted(teams_sandbox.data_for(t).team["uuid"] for t in teams_sandbox.tokens)
    for table in [t.name for s in SOURCES for t in s.tables]:
        found = rows(warehouse_path, f"SELECT DISTINCT team_uuid FROM {table} ORDER BY 1")  # noqa: S608
        assert [uuid for (uuid,) in found] == teams, table
    # Billing Insights: each team's own points, from its own team URN.
    for token in teams_sandbox.tokens:
        data = teams_sandbox.data_for(token)
        points = [p for p in data.insights if "2025-12-01" <= p["start_date"] <= "2026-01-31"]
        assert rows(
            warehouse_path,
            "SELECT count(*), sum(amount) FROM daily_costs WHERE team_uuid = ?",
            [data.team["uuid"]],
        ) == [(len(points), sum(Decimal(p["total_amount"]) for p in points))]


@pytest.mark.parametrize("tokens", [1, 3])
def test_a_warehouse_from_before_teams_keeps_every_row(
    old_warehouse, materialize, rows, failure_message, tokens, teams_sandbox, sandbox
):
    """The one-team warehouse made before migrations: upgraded in place, every row kept; the
    next run with its one token makes the rows that team's; with several tokens nothing is
    guessed."""
    query = "SELECT * EXCLUDE (team_uuid) FROM invoice_items ORDER BY invoice_uuid, line_number"
    # Read before the run, as made before teams: no team_uuid column yet.
    before = rows(old_warehouse, "SELECT * FROM invoice_items ORDER BY invoice_uuid, line_number")
    server = sandbox if tokens == 1 else teams_sandbox
    month = rows(old_warehouse, "SELECT min(invoice_period) FROM invoices")[0][0]
    result = materialize(server, old_warehouse, month, raise_on_error=False)
    if tokens == 3:
        assert not result.success
        assert "run once with only the token that loaded them" in failure_message(result)
        assert rows(old_warehouse, query) == before
        assert rows(
            old_warehouse, "SELECT count(*) FROM invoice_items WHERE team_uuid IS NULL"
        ) == [(len(before),)]
        return
    assert result.success
    team = server.data.team["uuid"]
    assert rows(old_warehouse, "SELECT DISTINCT team_uuid FROM invoice_items") == [(team,)]
    after = rows(old_warehouse, query)
    unchanged = [r for r in before if r[1] != month]
    assert [r for r in after if r[1] != month] == unchanged
    assert rows(working_file(old_warehouse), "SELECT DISTINCT team_uuid FROM raw.fetches") == [
        (team,)
    ]


def test_three_teams_each_paced_to_its_own_limit_get_no_429(
    warehouse_path, pipeline_resources, rows
):
    """Limits are per token: each team is paced to its own budget, side by side. The sandbox's
    minute is shortened to one second (25 requests a "minute"), as the pipeline's pacer's is."""
    with SandboxServer.with_teams(
        build_teams(3), requests_per_minute=25, minute_seconds=1.0
    ) as server:
        result = dg.materialize(
            source_defs(INVOICES),
            resources=pipeline_resources(
                server, warehouse_path, requests_per_minute=25, minute_seconds=1.0
            ),
            tags={
                "dagster/asset_partition_range_start": "2023-01",
                "dagster/asset_partition_range_end": "2024-12",
            },
        )
    assert result.success
    statuses = [r["status"] for r in server.requests]
    assert 429 not in statuses
    per_team = {}
    for r in server.requests:
        per_team.setdefault(r["team"], []).append(r["started"])
    assert len(per_team) == 3
    for stamps in per_team.values():
        assert len(stamps) > 25  # each team needed more than one window's budget
        # …and no window of one second holds more than 25 of one team's requests.
        stamps.sort()
        assert all(
            later - earlier >= 1.0 - 0.2
            for earlier, later in zip(stamps, stamps[25:], strict=False)
        )
    # Side by side: the three teams' budgets were spent at once, not one after another.
    spans = [(min(s), max(s)) for s in per_team.values()]
    assert all(a0 < b1 and b0 < a1 for a0, a1 in spans for b0, b1 in spans)
    # …each on its own budget: together they sent more in some second than one token may.
    every = sorted(stamp for stamps in per_team.values() for stamp in stamps)
    assert any(b - a < 1.0 for a, b in zip(every, every[25:], strict=False))
    for token in server.tokens:
        data = server.data_for(token)
        items = [
            it
            for i in data.invoices
            if "2023-01" <= i["invoice_period"] <= "2024-12"
            for it in data.items[i["invoice_uuid"]]
        ]
        assert rows(
            warehouse_path,
            "SELECT count(*) FROM invoice_items WHERE team_uuid = ?",
            [data.team["uuid"]],
        ) == [(len(items),)]


def test_teams_run_on_a_bounded_pool_and_side_by_side():
    """20 teams on 4 workers: never more than 4 at once, and 4 do overlap (not one by one)."""
    running, peak, threads = 0, 0, set()
    guard = threading.Lock()

    def work(_: int) -> None:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
            threads.add(threading.get_ident())
        time.sleep(0.3)
        with guard:
            running -= 1

    errors = side_by_side(list(range(20)), work, workers=4)
    assert errors == [None] * 20
    assert peak == 4
    assert len(threads) == 4


def test_a_bad_value_fails_its_team_only_when_a_batch_is_normalized_in_one_call(
    tmp_path, materialize, failure_message, rows
):
    """Billing history of a batch of teams is normalized in one call and split by fetch; a bad
    amount sends the batch back one team at a time, so only the team that sent it fails; the
    others' entries are exact and each carries its own fetch's time."""
    now = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    month = "2026-12"
    path = tmp_path / "warehouse.duckdb"
    with SandboxServer.with_teams(build_teams(4, now=now)) as server:
        bad = server.data_for(server.tokens[2])
        bad.billing_history[0]["amount"] = "12.3.4"
        with time_machine.travel(now, tick=True):
            result = materialize(
                server, path, month, assets=source_defs(HISTORY), raise_on_error=False
            )
        assert not result.success
        message = failure_message(result)
        assert bad.team["uuid"] in message and "1 of 4 team(s) failed" in message
        others = [server.data_for(t) for t in server.tokens if t != server.tokens[2]]
    work = working_file(path)
    loaded = {
        team: (count, total)
        for team, count, total in rows(
            work, "SELECT team_uuid, count(*), sum(amount) FROM billing_history GROUP BY 1"
        )
    }
    expected = {}
    for data in others:
        mine = [e for e in data.billing_history if e["date"].startswith(month)]
        expected[data.team["uuid"]] = (len(mine), sum(Decimal(e["amount"]) for e in mine))
    assert loaded == expected
    stamps = rows(
        work,
        "SELECT h.team_uuid, bool_and(h.loaded_at = f.fetched_at) FROM billing_history AS h "
        "JOIN raw.fetches AS f ON f.team_uuid = h.team_uuid AND f.source = 'billing_history' "
        "GROUP BY 1",
    )
    assert sorted(stamps) == sorted((uuid, True) for uuid in expected)


def test_a_refused_token_is_asked_once_per_run_not_once_per_step(
    sandbox, warehouse_path, materialize, failure_message
):
    """Every step of the run fails naming the token's place, from the one refusal the first
    step received: no step asks again, none waits through the retries again."""
    sandbox.revoke(sandbox.token)
    assets = [a for s in (INVOICES, HISTORY, BALANCE) for a in source_defs(s)]
    result = materialize(sandbox, warehouse_path, "2024-03", assets=assets, raise_on_error=False)
    assert not result.success
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    assert sorted(failed) == ["balance", "billing_history", "invoice_tables"]
    assert [r["path"] for r in sandbox.requests] == ["/v2/account"]
    message = failure_message(result)
    assert message.count("HTTP 401") >= 3
    assert "Check DIGITALOCEAN_TOKEN" in message and "make doctor" in message

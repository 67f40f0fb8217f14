"""Many teams in one run: thirty sandbox teams over real HTTP, the daily refresh of every source.

The step log summarizes (a line every tenth of the teams, one summary naming every failed team;
each team's own lines at DEBUG and in the metadata), every good team's month is exact, and a
token that stops working mid-run fails its team alone, named.
"""

from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import pytest

from pipeline.defs.definitions import source_defs
from pipeline.engine.batches import WRITE_BATCH
from pipeline.sandbox import SandboxServer, build_teams
from pipeline.sources import SOURCES
from pipeline.sources.balance import BALANCE
from pipeline.warehouse.publish import working_file

TEAMS = 30
# A fixed moment: the sandbox's open month is this one whatever the day the tests run.
NOW = datetime(2026, 2, 15, 12, tzinfo=UTC)
MONTH = "2026-02"
BROKEN = 17  # the 1-based place of the token that stops working after its team is read


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory, pipeline_resources):
    """One daily refresh of thirty teams, the 17th token refused on every billing endpoint (its
    team was read first: a token revoked mid-run); the run's instance, result and sandbox."""
    warehouse = tmp_path_factory.mktemp("many") / "warehouse.duckdb"
    with SandboxServer.with_teams(build_teams(TEAMS, "recent", now=NOW)) as server:
        server.inject(
            r"^/v2/(customers|billing)/", "401", times=1000, token=server.tokens[BROKEN - 1]
        )
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize(
            [a for s in SOURCES for a in source_defs(s)],
            resources=pipeline_resources(server, warehouse),
            partition_key=MONTH,
            instance=instance,
            raise_on_error=False,
        )
        yield instance, result, server, warehouse


def step_messages(instance, result, step):
    return [
        (e.level, e.user_message)
        for e in instance.all_logs(result.run_id)
        if not e.is_dagster_event and e.step_key == step
    ]


def test_a_step_of_many_teams_says_progress_and_one_summary(refreshed):
    instance, result, server, _ = refreshed
    broken = server.data_for(server.tokens[BROKEN - 1]).team
    lines = step_messages(instance, result, "daily_costs")
    infos = [m for level, m in lines if level == 20]
    progress = [m for m in infos if "teams done" in m]
    # One line per tenth of the teams but the last, which the summary says.
    assert [line.split(" teams done")[0] for line in progress] == [
        f"daily_costs: {done}/30" for done in range(3, 30, 3)
    ]
    (summary,) = [m for m in infos if m.startswith("loaded ")]
    assert summary.startswith(
        f"loaded {TEAMS - 1} of {TEAMS} team(s), 1 month(s) {MONTH}…{MONTH}: "
    )
    assert f"failed: team {broken['name']!r} ({broken['uuid']})" in summary
    # No team's own line (its invoice list, its pages, its rows) at INFO.
    assert len(infos) <= 12, infos
    errors = [m for level, m in lines if level == 40]
    assert len(errors) == 1 and broken["uuid"] in errors[0] and "401" in errors[0]
    assert not any(token in m for _, m in lines for token in server.tokens)


def test_the_failed_team_is_named_and_every_other_team_is_exact(refreshed, rows):
    _, result, server, warehouse = refreshed
    assert not result.success
    broken = server.data_for(server.tokens[BROKEN - 1]).team
    failures = [e for e in result.all_events if e.is_step_failure]
    assert {e.step_key for e in failures} == {
        "invoice_tables",
        "daily_costs",
        "billing_history",
        "balance",
    }
    for event in failures:
        failed = event.step_failure_data.error.cause
        assert f"1 of {TEAMS} team(s) failed — team {broken['name']!r}" in str(failed)
        # The 401 is said in the message, once; its traceback is not printed again per step.
        assert "HTTP 401" in failed.message and failed.cause is None
    for n, token in enumerate(server.tokens, start=1):
        data = server.data_for(token)
        team = data.team["uuid"]
        items = data.items[data.preview["invoice_uuid"]]
        points = [p for p in data.insights if p["start_date"][:7] == MONTH]
        got = rows(
            warehouse,
            "SELECT (SELECT count(*) FROM invoice_items WHERE team_uuid = $t), "
            "(SELECT sum(amount) FROM invoice_items WHERE team_uuid = $t), "
            "(SELECT count(*) FROM daily_costs WHERE team_uuid = $t), "
            "(SELECT sum(amount) FROM daily_costs WHERE team_uuid = $t)",
            {"t": team},
        )
        if n == BROKEN:
            assert got == [(0, None, 0, None)]
        else:
            assert got == [
                (
                    len(items),
                    sum(Decimal(i["amount"]) for i in items),
                    len(points),
                    sum(Decimal(p["total_amount"]) for p in points),
                )
            ], data.team


def test_many_teams_land_and_swap_in_few_transactions(tmp_path, pipeline_resources, rows):
    """Thirty teams' balances: landed and swapped a batch of teams per transaction, not one
    transaction (or two) per team; every team's snapshot is there."""
    warehouse = tmp_path / "warehouse.duckdb"
    with SandboxServer.with_teams(build_teams(TEAMS, "recent", now=NOW)) as server:
        result = dg.materialize(
            source_defs(BALANCE)[:1],
            resources=pipeline_resources(server, warehouse),
            partition_key=MONTH,
        )
        balances = {
            server.data_for(t).team["uuid"]: server.data_for(t).balance for t in server.tokens
        }
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    # The teams recorded in one transaction, then a landing and a swap per batch of teams.
    batches = -(-TEAMS // WRITE_BATCH)
    assert metadata["write_transactions"].value <= 1 + 2 * batches
    assert metadata["teams"].value == TEAMS
    found = rows(
        working_file(warehouse),
        "SELECT team_uuid, CAST(account_balance AS VARCHAR) FROM balance ORDER BY 1",
    )
    assert found == sorted((t, b["account_balance"]) for t, b in balances.items())

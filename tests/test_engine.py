"""One recipe for every source: fetch → raw → normalize → swap, through the engine and Dagster."""

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal

import dagster as dg
import duckdb
import pandas as pd
import pytest

from pipeline.api import SINGLE
from pipeline.defs.assets import source_asset
from pipeline.engine import batches, stages
from pipeline.engine.together import QueuedFetch, normalized_batch
from pipeline.sources import INVOICES, SUMMARIES
from pipeline.sources.base import Endpoint, Normalized, RawData, Source, Table, Target, Targets
from pipeline.sources.fields import MONEY, MONEY_PATTERN, InvalidPayloadError, decimal
from pipeline.sources.invoices import landed_invoices
from pipeline.teams import Team
from pipeline.warehouse.publish import working_file
from pipeline.warehouse.store import Warehouse

MONTHS = ["2024-02", "2024-03"]
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)  # a replay's loaded_at


def month_invoices(sandbox, months=MONTHS):
    return [i for i in sandbox.data.invoices if i["invoice_period"] in months]


def team(server) -> str:
    """The sandbox team's uuid: what the engine marks every row and fetch with."""
    return server.data.team["uuid"]


def table(path, sql):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_broken_summary_normalizer_loses_nothing_and_raw_replays_with_zero_requests(
    sandbox, client, warehouse_path, load_team
):
    store = Warehouse(warehouse_path)
    store.migrate()
    load_team(INVOICES, client, store, MONTHS)

    def broken(raw: RawData, loaded_at: datetime) -> Normalized:
        raise InvalidPayloadError(["invoice x (2024-02), field 'amount': a bug in the normalizer"])

    with pytest.raises(InvalidPayloadError, match="a bug in the normalizer"):
        load_team(dataclasses.replace(SUMMARIES, normalize=broken), client, store, MONTHS)
    # Every summary fetched is in raw, verbatim, though none was normalized.
    expected = {
        i["invoice_uuid"]: sandbox.data.summaries[i["invoice_uuid"]]
        for i in month_invoices(sandbox)
    }
    landed = table(
        warehouse_path,
        "SELECT request_key, body FROM raw.pages WHERE endpoint = 'invoice_summary'",
    )
    assert {key: json.loads(body) for key, body in landed} == expected
    assert table(warehouse_path, "SELECT count(*) FROM invoice_summaries") == [(0,)]

    requests_before = len(sandbox.requests)
    stages.replay(SUMMARIES, store, MONTHS, team(sandbox), now=NOW)
    assert len(sandbox.requests) == requests_before
    stored = table(warehouse_path, "SELECT invoice_uuid, amount FROM invoice_summaries")
    assert sorted(stored) == sorted(
        (uuid, Decimal(summary["amount"])) for uuid, summary in expected.items()
    )


def test_invoices_replay_from_raw_gives_the_same_rows(sandbox, client, warehouse_path, load_team):
    store = Warehouse(warehouse_path)
    store.migrate()
    load_team(INVOICES, client, store, MONTHS)
    query = "SELECT * EXCLUDE (loaded_at) FROM invoice_items ORDER BY invoice_uuid, line_number"
    first = table(warehouse_path, query)
    requests_before = len(sandbox.requests)
    stages.replay(INVOICES, store, MONTHS, team(sandbox), now=NOW)
    assert len(sandbox.requests) == requests_before
    assert table(warehouse_path, query) == first
    assert len(first) == sum(
        len(sandbox.data.items[i["invoice_uuid"]]) for i in month_invoices(sandbox)
    )


def test_a_server_that_caps_pages_at_25_still_loads_every_row(
    make_client, warehouse_path, load_team
):
    from pipeline.sandbox import SandboxServer

    with SandboxServer(max_per_page=25) as server, make_client(server) as api:
        store = Warehouse(warehouse_path)
        store.migrate()
        # A fetch that did not add up would fail the team (raised here): this one landed whole.
        loaded = load_team(INVOICES, api, store, ["2025-01"])
        (invoice,) = month_invoices(server, ["2025-01"])
        items = server.data.items[invoice["invoice_uuid"]]
    assert loaded.batch is not None and loaded.batch.pages > 1
    assert table(warehouse_path, "SELECT count(*), sum(amount) FROM invoice_items") == [
        (len(items), sum(Decimal(it["amount"]) for it in items))
    ]


# -- a new source is a declaration -----------------------------------------------------------
TOY_TABLE = """
    CREATE TABLE IF NOT EXISTS invoice_amounts (
        invoice_uuid VARCHAR NOT NULL, invoice_period VARCHAR NOT NULL,
        amount DECIMAL(18, 2) NOT NULL, team_uuid VARCHAR
    )
"""


def summary_amounts(raw: RawData, loaded_at: datetime) -> Normalized:
    pages = raw.pages_of("toy_summary")
    rows = pd.DataFrame(
        {
            "invoice_uuid": pages["request_key"].to_numpy(),
            "invoice_period": pages["partition_key"].to_numpy(),
            "amount": [json.loads(b)["amount"] for b in pages["body"]],
        }
    )
    problems: list[str] = []
    rows["amount"] = decimal(rows, "amount", MONEY_PATTERN, MONEY, problems, required=True)
    return Normalized({"invoice_amounts": rows})


def every_invoice_of_the_months(found: Targets) -> list[Target]:
    return landed_invoices(found.parent)


TOY = Source(
    name="invoice_amounts",
    description="The amount of each invoice, from its summary.",
    parent=INVOICES,
    endpoint=Endpoint("toy_summary", "/v2/customers/my/invoices/{key}/summary", SINGLE),
    targets=every_invoice_of_the_months,
    normalize=summary_amounts,
    tables=(Table("invoice_amounts", ("invoice_uuid",), "Invoice amounts."),),
)


def test_a_toy_source_needs_only_its_declaration(sandbox, warehouse_path, pipeline_resources):
    store = Warehouse(warehouse_path)
    store.migrate()
    with store.connect() as con:
        con.execute(TOY_TABLE)
    invoices = [
        source_asset(INVOICES),
        source_asset(TOY),
    ]
    result = dg.materialize(
        invoices,
        resources=pipeline_resources(sandbox, warehouse_path),
        tags={
            "dagster/asset_partition_range_start": MONTHS[0],
            "dagster/asset_partition_range_end": MONTHS[-1],
        },
    )
    assert result.success
    assert sorted(
        table(warehouse_path, "SELECT invoice_uuid, amount FROM invoice_amounts")
    ) == sorted((i["invoice_uuid"], Decimal(i["amount"])) for i in month_invoices(sandbox))
    raw = working_file(warehouse_path)
    assert table(raw, "SELECT DISTINCT source FROM raw.fetches ORDER BY source") == [
        ("invoice_amounts",),
        ("invoices",),
    ]


def queued_invoices(sandbox, make_client, store) -> list[QueuedFetch]:
    """Each of the sandbox's teams' invoice fetches for MONTHS, queued, in token order."""
    group = []
    for place, token in enumerate(sandbox.tokens, start=1):
        data = sandbox.data_for(token)
        team = Team(data.team["uuid"], data.team["name"], place, f"token {place}")
        with make_client(sandbox, token) as api:
            batch = stages.fetch(INVOICES, api, store, MONTHS, team.uuid)
        group.append(QueuedFetch(team, str(team), batch, 0, 0))
    return group


def test_a_batch_of_teams_invoices_normalize_in_one_call_as_each_alone(
    teams_sandbox, make_client, warehouse_path
):
    """Three teams' invoice fetches normalized in one call give each team exactly the rows it
    gets alone (its own invoices and items, its own loaded_at), and no other team's."""
    store = Warehouse(warehouse_path)
    store.migrate()
    group, expected = queued_invoices(teams_sandbox, make_client, store), {}
    for queued, token in zip(group, teams_sandbox.tokens, strict=True):
        data = teams_sandbox.data_for(token)
        invoices = [i for i in data.invoices if i["invoice_period"] in MONTHS]
        expected[queued.team] = sorted(
            Decimal(item["amount"]) for i in invoices for item in data.items[i["invoice_uuid"]]
        )
    together = normalized_batch(INVOICES, group, MONTHS)
    assert together is not None
    for queued in group:
        alone = stages.normalized(
            INVOICES,
            stages.landed_raw(queued.batch, MONTHS),
            queued.team.uuid,
            queued.batch.fetched_at,
        )
        mine = together.teams[queued.team].tables
        assert sorted(mine["invoice_items"]["amount"]) == expected[queued.team]
        assert set(mine["invoices"]["team_uuid"]) == {queued.team.uuid}
        for name in ("invoices", "invoice_items"):
            pd.testing.assert_frame_equal(
                mine[name].reset_index(drop=True), alone.tables[name].reset_index(drop=True)
            )
    # The whole batch's rows, which the swap writes: every team's, in the group's order.
    for name in ("invoices", "invoice_items"):
        pd.testing.assert_frame_equal(
            together.tables[name],
            pd.concat([together.teams[q.team].tables[name] for q in group], ignore_index=True),
        )


@pytest.mark.parametrize(("max_chars", "transactions"), [(10**9, 2), (1, 6)])
def test_a_batch_is_written_when_its_pages_reach_the_size_bound(
    teams_sandbox, make_client, warehouse_path, max_chars, transactions
):
    """Three teams' invoice fetches queued in a writer that takes 250 teams a batch: under the
    size bound they land and swap together (2 transactions); with every team's pages over it,
    each team is written as it is added (3 landings and 3 swaps), its rows the same."""
    store = Warehouse(warehouse_path)
    store.migrate()
    written = []
    writer = batches.BatchWriter(
        INVOICES, store, MONTHS, True, 250, written.append, max_chars=max_chars
    )
    before = store.commits
    for place, queued in enumerate(queued_invoices(teams_sandbox, make_client, store), start=1):
        writer.add(queued)
        assert len(written) == (place if max_chars == 1 else 0)
    writer.flush()
    assert written == [True] * 3 and not writer.failures
    assert store.commits - before == transactions
    expected = {
        teams_sandbox.data_for(t).team["uuid"]: sum(
            Decimal(item["amount"])
            for i in teams_sandbox.data_for(t).invoices
            if i["invoice_period"] in MONTHS
            for item in teams_sandbox.data_for(t).items[i["invoice_uuid"]]
        )
        for t in teams_sandbox.tokens
    }
    found = store.query(
        "SELECT team_uuid, sum(amount) AS total FROM invoice_items GROUP BY 1 ORDER BY 1"
    )
    assert dict(zip(found["team_uuid"], found["total"], strict=True)) == expected


def test_a_steps_rows_come_in_its_teams_order_whatever_order_they_were_written(
    teams_sandbox, make_client, warehouse_path
):
    """Three teams written one batch each, last team first: the step's rows of a table (what
    its metadata describes) are every team's, in the teams' order, each team's as its own
    result holds them."""
    store = Warehouse(warehouse_path)
    store.migrate()
    writer = batches.BatchWriter(INVOICES, store, MONTHS, True, 250, lambda ok: None, max_chars=1)
    group = queued_invoices(teams_sandbox, make_client, store)
    teams = [queued.team for queued in group]
    for queued in reversed(group):
        writer.add(queued)
    assert len(writer.written["invoice_items"]) == 3
    outcome = batches.StepOutcome(
        {team: writer.results[team] for team in teams}, [], writer.written
    )
    rows = outcome.rows("invoice_items")
    expected = pd.concat(
        [writer.results[team].result.tables["invoice_items"] for team in teams], ignore_index=True
    )
    pd.testing.assert_frame_equal(rows, expected)
    assert list(dict.fromkeys(rows["team_uuid"])) == [
        t.uuid for t in teams if len(writer.results[t].result.tables["invoice_items"])
    ]

"""Raw retention: re-runs keep the latest good fetch of each team × month × source and RAW_KEEP
older ones, pruned in the swap's transaction, and `make replay` still rebuilds exact rows."""

import dataclasses
import uuid
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pytest

from pipeline.cli import prune
from pipeline.engine import stages
from pipeline.settings import DEFAULT_RAW_KEEP
from pipeline.sources import INVOICES, SOURCES, TABLES
from pipeline.warehouse import store as warehouse_store
from pipeline.warehouse.publish import working_file
from pipeline.warehouse.raw import RawBatch
from pipeline.warehouse.store import Warehouse

MONTHS = ["2025-12", "2026-01"]
NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)  # a replay's loaded_at
# Every fetch × every month it covers: what "fetches per team, month and source" counts.
PER_MONTH = """
    SELECT source, team_uuid, strftime(m, '%Y-%m') AS month, count(*) AS fetches
    FROM (SELECT source, team_uuid, unnest(generate_series(
              CAST(first_period || '-01' AS DATE), CAST(last_period || '-01' AS DATE),
              INTERVAL 1 MONTH)) AS m
          FROM raw.fetches)
    GROUP BY ALL ORDER BY ALL
"""


def team(server) -> str:
    return server.data.team["uuid"]


def query(path, sql, params=None):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params).fetchall()


def table_rows(path) -> dict[str, list[tuple]]:
    """Every table's rows but the load time, in a stable order: what a replay must give back."""
    found = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for name in TABLES:
            columns = con.execute("SELECT name FROM pragma_table_info(?)", [name]).fetchall()
            kept = ", ".join(c for (c,) in columns if c != "loaded_at")
            found[name] = con.execute(f"SELECT {kept} FROM {name} ORDER BY ALL").fetchall()  # noqa: S608
    return found


def rerun(batch: RawBatch, *, status: str) -> RawBatch:
    """The same pages landed again as a later fetch: a re-run that got the same answers."""
    return dataclasses.replace(
        batch,
        fetch_id=uuid.uuid4().hex,
        fetched_at=batch.fetched_at + pd.Timedelta(seconds=1),
        status=status,
        error=None if status == "ok" else "a page did not add up",
    )


def test_the_store_and_the_settings_agree_on_the_default():
    assert warehouse_store.DEFAULT_RAW_KEEP == DEFAULT_RAW_KEEP == 3


def test_twenty_reruns_keep_raw_keep_plus_one_fetches_and_replay_is_exact(
    sandbox, client, warehouse_path, load_team
):
    store = Warehouse(warehouse_path)
    store.migrate()
    assert store.raw_keep == DEFAULT_RAW_KEEP
    for _ in range(20):
        for source in SOURCES:
            load_team(source, client, store, MONTHS)
    counts = query(warehouse_path, PER_MONTH)
    assert {(s, m) for s, _, m, _ in counts} == {(s.name, m) for s in SOURCES for m in MONTHS}
    assert {n for *_, n in counts} == {DEFAULT_RAW_KEEP + 1}
    # The pages of the kept fetches are all there: each kept fetch's own index (the invoice
    # list, partition_key NULL) included, and no page of a deleted fetch is left behind.
    assert query(
        warehouse_path,
        "SELECT count(DISTINCT fetch_id) FROM raw.pages WHERE endpoint = 'invoice_list'",
    ) == [(DEFAULT_RAW_KEEP + 1,)]
    orphans = "SELECT count(*) FROM raw.{} WHERE fetch_id NOT IN (SELECT fetch_id FROM raw.fetches)"
    assert query(warehouse_path, orphans.format("pages")) == [(0,)]
    assert query(warehouse_path, orphans.format("targets")) == [(0,)]

    loaded = table_rows(warehouse_path)
    assert loaded["invoice_items"] and loaded["daily_costs"], "the months have rows to rebuild"
    requests = len(sandbox.requests)
    for source in SOURCES:
        stages.replay(source, store, MONTHS, team(sandbox), now=NOW)
    assert len(sandbox.requests) == requests
    assert table_rows(warehouse_path) == loaded


def test_a_fetch_spanning_months_stays_while_it_is_the_latest_good_one_of_any(
    sandbox, client, warehouse_path, load_team
):
    store = Warehouse(warehouse_path, raw_keep=0)
    store.migrate()
    spanning = load_team(INVOICES, client, store, ["2025-11", *MONTHS]).batch
    list_pages = "SELECT count(*) FROM raw.pages WHERE fetch_id = ? AND partition_key IS NULL"
    index_pages = query(warehouse_path, list_pages, [spanning.fetch_id])
    assert index_pages[0][0] >= 1
    for _ in range(3):
        latest = load_team(INVOICES, client, store, MONTHS[-1:]).batch
    kept = query(warehouse_path, "SELECT fetch_id FROM raw.fetches ORDER BY fetched_at")
    # 2025-11 and 2025-12 have no later fetch: the spanning one stays, with its invoice list.
    assert kept == [(spanning.fetch_id,), (latest.fetch_id,)]
    assert query(warehouse_path, list_pages, [spanning.fetch_id]) == index_pages

    loaded = table_rows(warehouse_path)
    stages.replay(INVOICES, store, ["2025-11", *MONTHS], team(sandbox), now=NOW)
    assert table_rows(warehouse_path) == loaded


def test_failed_reruns_never_push_out_the_latest_good_fetch(
    sandbox, client, warehouse_path, load_team
):
    store = Warehouse(warehouse_path, raw_keep=1)
    store.migrate()
    good = load_team(INVOICES, client, store, MONTHS).batch
    loaded = table_rows(warehouse_path)
    failed = stages.fetch(INVOICES, client, store, MONTHS, team(sandbox))  # not landed yet
    for _ in range(4):  # re-runs whose pages did not add up: landed, never swapped
        failed = rerun(failed, status="incomplete")
        store.raw.land(failed)
    pruned = store.raw.prune()
    assert pruned.fetches == 3 and pruned.pages > 0 and pruned.targets > 0
    kept = query(warehouse_path, "SELECT fetch_id, status FROM raw.fetches ORDER BY fetched_at")
    # The good one the tables were built from, and the newest failure (RAW_KEEP = 1).
    assert kept == [(good.fetch_id, "ok"), (failed.fetch_id, "incomplete")]
    stages.replay(INVOICES, store, MONTHS, team(sandbox), now=NOW)
    assert table_rows(warehouse_path) == loaded


def test_other_teams_and_sources_are_not_pruned_by_a_swap(
    sandbox, client, warehouse_path, load_team
):
    store = Warehouse(warehouse_path, raw_keep=0)
    store.migrate()
    load_team(INVOICES, client, store, MONTHS)
    batch = stages.fetch(INVOICES, client, store, MONTHS, team(sandbox))  # not landed
    other = dataclasses.replace(rerun(batch, status="ok"), team_uuid="another-team")
    store.raw.land(other)
    store.raw.land(rerun(other, status="ok"))
    load_team(INVOICES, client, store, MONTHS)
    teams = query(
        warehouse_path, "SELECT team_uuid, count(*) FROM raw.fetches GROUP BY ALL ORDER BY ALL"
    )
    assert teams == sorted([("another-team", 2), (team(sandbox), 1)])


@pytest.fixture
def settings_env(tmp_path, monkeypatch):
    """The working directory and the file `make prune` reads without a token."""
    monkeypatch.chdir(tmp_path)
    for name in ("RAW_KEEP", "DIGITALOCEAN_TOKEN", "DIGITALOCEAN_TOKENS", "DIGITALOCEAN_API_URL"):
        monkeypatch.delenv(name, raising=False)
    # No token: prune works on the sandbox's own file, SANDBOX_WAREHOUSE_PATH.
    monkeypatch.delenv("WAREHOUSE_PATH", raising=False)
    monkeypatch.setenv("SANDBOX_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    yield monkeypatch


def test_make_prune_applies_retention_to_a_warehouse_loaded_without_it(
    sandbox, client, settings_env, tmp_path, capsys, load_team
):
    path = working_file(tmp_path / "warehouse.duckdb")  # the loader's file, where raw lives
    store = Warehouse(path, raw_keep=1000)  # as if loaded before retention existed
    store.migrate()
    for _ in range(6):
        load_team(INVOICES, client, store, MONTHS)
    settings_env.setenv("RAW_KEEP", "2")
    assert prune.main([]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"pruned raw in {path} (latest good fetch")
    assert " and 2 older): 3 fetch(es)" in said
    assert query(path, "SELECT count(*) FROM raw.fetches") == [(3,)]
    assert prune.main(["--keep", "0"]) == 0
    assert query(path, "SELECT count(*) FROM raw.fetches") == [(1,)]


def test_make_prune_names_a_bad_keep_and_changes_nothing(settings_env, capsys):
    assert prune.main(["--keep", "-1"]) == 2
    assert capsys.readouterr().err.startswith("prune: --keep '-1' must be a number of fetches")

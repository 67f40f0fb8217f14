"""The inventory kept as validity intervals: a row per state of a resource, not per run.

Unchanged runs add one `inventory_snapshots` row per list and nothing else; a state that changes
and changes back is three intervals; a resource that leaves its list, or a list that comes back
empty, closes its intervals; replaying a snapshot changes nothing; and the merge gives the same
intervals whatever order the snapshots come in, one team or a batch of many.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import time_machine

from pipeline.defs.definitions import source_defs
from pipeline.engine import batches, stages
from pipeline.sandbox import SandboxServer
from pipeline.sandbox.data import SandboxData, build_teams
from pipeline.sources import INVENTORY
from pipeline.sources.inventory import DROPLETS, VOLUMES
from pipeline.warehouse.intervals import IntervalRows, merge_snapshots
from pipeline.warehouse.store import Warehouse

NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
MONTH = "2026-12"
INVENTORY_ASSETS = [a for source in INVENTORY for a in source_defs(source)]
TABLES = (
    "droplets",
    "volumes",
    "kubernetes_clusters",
    "kubernetes_node_pools",
    "database_clusters",
    "load_balancers",
    "projects",
    "project_resources",
)


def query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def counts(path: Path) -> dict[str, int]:
    return {t: query(path, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}  # noqa: S608


def served(data: SandboxData) -> dict[str, int]:
    """How many rows one snapshot of the team's lists holds, table by table."""
    lists = data.inventory.lists
    return {
        "droplets": len(lists["droplets"]),
        "volumes": len(lists["volumes"]),
        "kubernetes_clusters": len(lists["kubernetes_clusters"]),
        "kubernetes_node_pools": sum(len(c["node_pools"]) for c in lists["kubernetes_clusters"]),
        "database_clusters": len(lists["databases"]),
        "load_balancers": len(lists["load_balancers"]),
        "projects": len(lists["projects"]),
        "project_resources": sum(len(r) for r in data.inventory.project_resources.values()),
    }


def test_nine_unchanged_daily_runs_do_not_grow_the_inventory(tmp_path, materialize):
    """Three teams, nine daily runs of every list: the tables hold one snapshot's rows after the
    first run and after the ninth; only inventory_snapshots gains a row per list and run."""
    path = tmp_path / "warehouse.duckdb"
    days = [NOW + timedelta(days=n) for n in range(9)]
    with SandboxServer.with_teams(build_teams(3, now=NOW)) as server:
        expected = {t: 0 for t in TABLES}
        for token in server.tokens:
            for table, n in served(server.data_for(token)).items():
                expected[table] += n
        after = []
        for day in days:
            with time_machine.travel(day, tick=True):
                materialize(server, path, MONTH, assets=INVENTORY_ASSETS)
            after.append(counts(path))
    assert after[0] == expected
    assert after[-1] == expected  # not nine times it
    assert sum(after[-1].values()) <= 1.5 * sum(after[0].values())
    assert query(path, "SELECT count(*) FROM inventory_snapshots") == [(9 * len(INVENTORY) * 3,)]
    # Every state still open, valid from the first run.
    firsts = query(path, "SELECT DISTINCT CAST(valid_from AS DATE), valid_to IS NULL FROM volumes")
    assert firsts == [(days[0].date(), True)]


@pytest.fixture
def one_team() -> Iterator[SandboxServer]:
    with SandboxServer(build_teams(1, now=NOW)["sandbox-token"]) as server:
        yield server


def run_at(source, api, store, moment: datetime, load_team) -> batches.TeamLoad:
    with time_machine.travel(moment, tick=True):
        return load_team(source, api, store, [MONTH])


def test_a_state_that_changes_and_changes_back_is_three_intervals(
    one_team, make_client, warehouse_path, load_team
):
    """A → B → A, a droplet that disappears, then an empty volume list, each a day apart."""
    store = Warehouse(warehouse_path)
    store.migrate()
    lists = one_team.data.inventory.lists
    volume, others = lists["volumes"][0], lists["volumes"][1:]
    tags = list(volume["tags"])
    gone = lists["droplets"][-1]
    day = [NOW + timedelta(days=n) for n in range(5)]
    with make_client(one_team) as api:
        run_at(VOLUMES, api, store, day[0], load_team)
        volume["tags"] = ["env:retagged"]
        run_at(VOLUMES, api, store, day[1], load_team)
        volume["tags"] = tags
        run_at(VOLUMES, api, store, day[2], load_team)
        run_at(DROPLETS, api, store, day[2], load_team)
        lists["droplets"].remove(gone)
        run_at(DROPLETS, api, store, day[3], load_team)
        lists["volumes"] = []
        run_at(VOLUMES, api, store, day[4], load_team)
    taken = dict(
        query(
            warehouse_path,
            "SELECT source || ':' || CAST(CAST(timezone('UTC', snapshot_at) AS DATE) AS VARCHAR), "
            "snapshot_at FROM inventory_snapshots",
        )
    )
    assert len(taken) == 6  # four volume lists, two droplet lists

    def when(source: str, n: int) -> datetime:
        return taken[f"{source}:{day[n].date()}"]

    intervals = query(
        warehouse_path,
        "SELECT tags, valid_from, valid_to FROM volumes WHERE resource_id = ? ORDER BY valid_from",
        [volume["id"]],
    )
    assert intervals == [
        (tags, when("volumes", 0), when("volumes", 1)),
        (["env:retagged"], when("volumes", 1), when("volumes", 2)),
        (tags, when("volumes", 2), when("volumes", 4)),  # closed by the empty list
    ]
    # Every other volume: one interval, from the first run to the empty list.
    rest = query(
        warehouse_path,
        "SELECT resource_id, valid_from, valid_to FROM volumes WHERE resource_id <> ? "
        "ORDER BY resource_id",
        [volume["id"]],
    )
    assert rest == sorted((str(v["id"]), when("volumes", 0), when("volumes", 4)) for v in others)
    # The droplet that left its list is closed at the snapshot that no longer had it; the
    # others are still open.
    droplets = dict(query(warehouse_path, "SELECT resource_id, valid_to FROM droplets"))
    assert droplets == {
        str(d["id"]): (when("droplets", 3) if d is gone else None)
        for d in [*lists["droplets"], gone]
    }
    # The empty list still counts: the snapshot is recorded, and it holds no volume.
    empty = query(
        warehouse_path,
        "SELECT count(v.resource_id) FROM inventory_snapshots AS s LEFT JOIN volumes AS v "
        "ON v.valid_from <= s.snapshot_at AND (v.valid_to IS NULL OR s.snapshot_at < v.valid_to) "
        "WHERE s.source = 'volumes' AND s.snapshot_at = ?",
        [when("volumes", 4)],
    )
    assert empty == [(0,)]


def everything(path: Path) -> dict[str, list[tuple]]:
    """Every row of the inventory tables and inventory_snapshots, sorted."""
    return {
        t: sorted(query(path, f"SELECT * FROM {t}"), key=repr)  # noqa: S608
        for t in (*TABLES, "inventory_snapshots")
    }


def test_replaying_or_landing_the_same_snapshot_twice_changes_nothing(
    one_team, make_client, warehouse_path, load_team
):
    store = Warehouse(warehouse_path)
    store.migrate()
    team = one_team.data.team["uuid"]
    volume = one_team.data.inventory.lists["volumes"][0]
    with make_client(one_team) as api:
        run_at(VOLUMES, api, store, NOW, load_team)
        volume["tags"] = ["env:retagged"]
        result = run_at(VOLUMES, api, store, NOW + timedelta(days=1), load_team).result
    assert result is not None
    before = everything(warehouse_path)
    assert len(before["volumes"]) == len(one_team.data.inventory.lists["volumes"]) + 1
    # The same normalized snapshot swapped again, and the latest fetch replayed from raw.
    stages.swap(VOLUMES, store, [MONTH], result, team)
    assert everything(warehouse_path) == before
    stages.replay(VOLUMES, store, [MONTH], team, now=NOW + timedelta(days=2))
    assert everything(warehouse_path) == before
    batches.replay_teams(VOLUMES, store, [MONTH], now=NOW + timedelta(days=3))
    assert everything(warehouse_path) == before


# -- The merge itself, on snapshots made up here --------------------------------------------
KEYS = ("a", "b", "c", "d")
STATES = (["x"], ["y"], [], None)  # None: the key is not in that snapshot


def made_up(teams: int, snapshots: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random snapshots of a volume list for several teams: a key is in a snapshot or not, with
    one of two tag lists or none; some snapshots are empty."""
    rng = random.Random(seed)
    taken, rows = [], []
    for team in range(teams):
        for n in range(snapshots):
            snapshot = f"t{team}-s{n}"
            at = pd.Timestamp(NOW + timedelta(hours=n * 7 + team))
            taken.append((f"team-{team}", "volumes", snapshot, at, at))
            for key in KEYS:
                tags = rng.choice(STATES)
                if tags is not None:
                    rows.append((f"team-{team}", snapshot, at, key, f"vol {key}", tags, at))
    snapshots_frame = pd.DataFrame(
        taken, columns=["team_uuid", "source", "snapshot_id", "snapshot_at", "loaded_at"]
    )
    rows_frame = pd.DataFrame(
        rows,
        columns=[
            "team_uuid",
            "snapshot_id",
            "snapshot_at",
            "resource_id",
            "name",
            "tags",
            "loaded_at",
        ],
    )
    for column in ("region", "status", "project_id"):
        rows_frame[column] = pd.Series(pd.NA, index=rows_frame.index, dtype="string")
    rows_frame["created_at"] = pd.Series(
        pd.NaT, index=rows_frame.index, dtype="datetime64[us, UTC]"
    )
    rows_frame["snapshot_month"] = MONTH
    return snapshots_frame, rows_frame


def expected_intervals(snapshots: pd.DataFrame, rows: pd.DataFrame) -> set[tuple]:
    """Runs of one state over each team's snapshots in time order, in Python."""
    out = set()
    for team, taken in snapshots.groupby("team_uuid"):
        times = list(taken.sort_values("snapshot_at")["snapshot_at"])
        for key in KEYS:
            mine = rows[(rows["team_uuid"] == team) & (rows["resource_id"] == key)]
            state = {
                at: tuple(tags) for at, tags in zip(mine["snapshot_at"], mine["tags"], strict=True)
            }
            start = None
            for n, at in enumerate([*times, None]):
                now = state.get(at) if at is not None else None
                before = state.get(times[n - 1]) if n else None
                if start is not None and (at is None or now != before):
                    out.add((team, key, before, start, at))
                    start = None
                if at is not None and now is not None and start is None:
                    start = at
    return out


def merged(path: Path, calls: list[tuple[pd.DataFrame, pd.DataFrame]]) -> set[tuple]:
    """The intervals after merging each (snapshots, rows) in its own transaction."""
    with duckdb.connect(str(path)) as con:
        for snapshots, rows in calls:
            con.begin()
            part = rows[rows["snapshot_id"].isin(set(snapshots["snapshot_id"]))]
            merge_snapshots(con, snapshots, {"volumes": IntervalRows(part, ("resource_id",))})
            con.commit()
        found = con.execute(
            "SELECT team_uuid, resource_id, tags, valid_from, valid_to FROM volumes"
        ).fetchall()
    return {
        (team, key, tuple(tags), pd.Timestamp(a), pd.Timestamp(b) if b else None)
        for team, key, tags, a, b in found
    }


@pytest.mark.parametrize("seed", range(4))
def test_the_merge_gives_the_same_intervals_in_any_order(tmp_path, seed):
    """In time order one call per snapshot, shuffled, all at once (rounds), again on top, and
    with snapshots replaced by other contents then put back: always the runs of each state,
    computed here in Python."""
    snapshots, rows = made_up(teams=3, snapshots=7, seed=seed)
    expected = expected_intervals(snapshots, rows)
    one_by_one = [(snapshots.iloc[[n]], rows) for n in range(len(snapshots))]
    shuffled = list(one_by_one)
    random.Random(seed).shuffle(shuffled)
    _, other_rows = made_up(teams=3, snapshots=7, seed=seed + 100)
    replaced = [(snapshots.iloc[[n]], other_rows) for n in (3, 0, 6, 10, 20)]
    orders = {
        "in order": one_by_one,
        "shuffled": shuffled,
        "one batch": [(snapshots, rows)],
        "twice": [(snapshots, rows), *shuffled],
        "replaced and put back": [(snapshots, rows), *replaced, *reversed(shuffled)],
    }
    assert expected_intervals(snapshots, other_rows) != expected
    for name, calls in orders.items():
        path = tmp_path / f"{name.replace(' ', '_')}.duckdb"
        Warehouse(path).migrate()
        assert merged(path, calls) == expected, name
        assert query(path, "SELECT count(*) FROM inventory_snapshots") == [(len(snapshots),)]

"""Snapshots of a list kept as validity intervals: one row per state of a resource, not per run.

A row holds one state of one key (every column but the key, the interval and loaded_at): valid
from the snapshot that first read it (`valid_from`, its `snapshot_at`) until the first later
snapshot of its list that did not (`valid_to`; NULL while the newest one still has it). The
resources of a snapshot taken at `t` are the rows with valid_from <= t < coalesce(valid_to, ∞).
An unchanged run writes nothing but its row in `inventory_snapshots`.

A new snapshot only touches the intervals around it: those that hold the snapshot just before it
or just after it in its list (or an earlier version of itself, when it is replayed). Those are
read at the two neighbours, the snapshot's own rows put between them, runs of one state joined
again, and only the intervals that differ are deleted and inserted. Set-based for every team of
a batch at once; a batch that brings several snapshots of one list (a replay of months fetched
at different runs) is merged one snapshot per team per round, in time order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

SNAPSHOTS = "inventory_snapshots"
# Columns of a normalized snapshot row that are not part of a state.
SNAPSHOT_COLUMNS = ("team_uuid", "snapshot_id", "snapshot_at", "snapshot_month", "loaded_at")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

# The round's snapshots with their neighbours in their list (other snapshots already recorded:
# a replayed snapshot is not its own neighbour).
WINDOW = f"""
    CREATE OR REPLACE TEMP TABLE merge_window AS
    SELECT s.team_uuid, s.source, s.snapshot_id, s.snapshot_at AS taken_at, s.loaded_at,
           (SELECT max(o.snapshot_at) FROM {SNAPSHOTS} AS o
            WHERE o.team_uuid = s.team_uuid AND o.source = s.source
              AND o.snapshot_id <> s.snapshot_id AND o.snapshot_at < s.snapshot_at) AS prev_at,
           (SELECT min(o.snapshot_at) FROM {SNAPSHOTS} AS o
            WHERE o.team_uuid = s.team_uuid AND o.source = s.source
              AND o.snapshot_id <> s.snapshot_id AND o.snapshot_at > s.snapshot_at) AS next_at
    FROM round_snapshots AS s
"""  # noqa: S608
# The round's snapshots recorded, replacing a replayed one's row.
RECORD = f"""
    DELETE FROM {SNAPSHOTS} AS t
    WHERE EXISTS (SELECT 1 FROM merge_window AS w
                  WHERE w.team_uuid = t.team_uuid AND w.source = t.source
                    AND w.snapshot_id = t.snapshot_id);
    INSERT INTO {SNAPSHOTS} (team_uuid, source, snapshot_id, snapshot_at)
    SELECT team_uuid, source, snapshot_id, taken_at FROM merge_window;
"""  # noqa: S608
# The rows of the round's snapshots, typed as the table's (an empty list's frame has no types).
INCOMING = """
    CREATE OR REPLACE TEMP TABLE merge_incoming AS
    SELECT * EXCLUDE (valid_from, valid_to, valid_from_month, loaded_at),
           CAST(NULL AS VARCHAR) AS snapshot_id
    FROM {table} LIMIT 0
"""
# The intervals the round can change: those overlapping [previous, next snapshot].
AFFECTED = """
    CREATE OR REPLACE TEMP TABLE merge_affected AS
    SELECT t.*, w.prev_at, w.next_at
    FROM {table} AS t JOIN merge_window AS w USING (team_uuid)
    WHERE (w.next_at IS NULL OR t.valid_from <= w.next_at)
      AND (t.valid_to IS NULL OR t.valid_to > coalesce(w.prev_at, w.taken_at))
"""
# Each key's state at the previous snapshot (n 0, with where its interval began), at the new one
# (n 1) and at the next (n 2, with where its interval ended); consecutive n of one state are one
# interval again.
REBUILT = """
    CREATE OR REPLACE TEMP TABLE merge_rebuilt AS
    WITH members AS (
        SELECT team_uuid, {columns}, 0 AS n, valid_from AS outer_from,
               CAST(NULL AS TIMESTAMPTZ) AS outer_to
        FROM merge_affected
        WHERE prev_at IS NOT NULL AND valid_from <= prev_at
          AND (valid_to IS NULL OR prev_at < valid_to)
        UNION ALL
        SELECT team_uuid, {columns}, 2, NULL, valid_to
        FROM merge_affected
        WHERE next_at IS NOT NULL AND valid_from <= next_at
          AND (valid_to IS NULL OR next_at < valid_to)
        UNION ALL
        SELECT i.team_uuid, {incoming_columns}, 1, NULL, NULL
        FROM merge_incoming AS i JOIN merge_window AS w USING (team_uuid, snapshot_id)
    ), islands AS (
        SELECT *, n - row_number() OVER (PARTITION BY team_uuid, {columns} ORDER BY n) AS island
        FROM members
    ), spans AS (
        SELECT team_uuid, {columns}, min(n) AS first_n, max(n) AS last_n,
               any_value(outer_from) FILTER (WHERE n = 0) AS outer_from,
               any_value(outer_to) FILTER (WHERE n = 2) AS outer_to
        FROM islands
        GROUP BY team_uuid, {columns}, island
    )
    SELECT s.team_uuid, {span_columns},
           CASE s.first_n WHEN 0 THEN s.outer_from WHEN 1 THEN w.taken_at ELSE w.next_at END
               AS valid_from,
           CASE s.last_n WHEN 2 THEN s.outer_to WHEN 1 THEN w.next_at ELSE w.taken_at END
               AS valid_to,
           w.loaded_at
    FROM spans AS s JOIN merge_window AS w USING (team_uuid)
"""
# Only what differs is written, so a replay of the same snapshot changes nothing (not even
# loaded_at).
DELETE_CHANGED = """
    DELETE FROM {table} AS t
    WHERE EXISTS (SELECT 1 FROM merge_affected AS a
                  WHERE a.team_uuid = t.team_uuid AND {key_match_a} AND a.valid_from = t.valid_from)
      AND NOT EXISTS (SELECT 1 FROM merge_rebuilt AS r
                      WHERE r.team_uuid = t.team_uuid AND {same_r} AND r.valid_from = t.valid_from
                        AND r.valid_to IS NOT DISTINCT FROM t.valid_to)
"""
INSERT_CHANGED = """
    INSERT INTO {table} BY NAME
    SELECT r.*, strftime(timezone('UTC', r.valid_from), '%Y-%m') AS valid_from_month
    FROM merge_rebuilt AS r
    WHERE NOT EXISTS (SELECT 1 FROM merge_affected AS a
                      WHERE a.team_uuid = r.team_uuid AND {same_a}
                        AND a.valid_from = r.valid_from
                        AND a.valid_to IS NOT DISTINCT FROM r.valid_to)
"""
TEMPORARY = ("merge_window", "merge_incoming", "merge_affected", "merge_rebuilt")


@dataclass(frozen=True)
class IntervalRows:
    """One table's rows of the incoming snapshots (one row per key and snapshot), and its key."""

    rows: pd.DataFrame
    key: tuple[str, ...]

    @property
    def state(self) -> tuple[str, ...]:
        """The columns that make a state: every column but the key and the snapshot's own."""
        return tuple(c for c in self.rows.columns if c not in (*SNAPSHOT_COLUMNS, *self.key))


def _name(value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(f"not a warehouse identifier: {value!r}")
    return value


def _statements(table: str, key: Sequence[str], state: Sequence[str]) -> dict[str, str]:
    """The round's statements for one table (names from source declarations, checked)."""
    columns = [_name(c) for c in (*key, *state)]

    def match(alias: str, names: Sequence[str]) -> str:
        return " AND ".join(f"{alias}.{c} IS NOT DISTINCT FROM t.{c}" for c in names)

    def match_rebuilt(names: Sequence[str]) -> str:
        return " AND ".join(f"a.{c} IS NOT DISTINCT FROM r.{c}" for c in names)

    parts = {
        "table": _name(table),
        "columns": ", ".join(columns),
        "incoming_columns": ", ".join(f"i.{c}" for c in columns),
        "span_columns": ", ".join(f"s.{c}" for c in columns),
        "key_match_a": match("a", [_name(c) for c in key]),
        "same_r": match("r", columns),
        "same_a": match_rebuilt(columns),
    }
    return {
        "incoming": INCOMING.format(**parts),
        "affected": AFFECTED.format(**parts),
        "rebuilt": REBUILT.format(**parts),
        "delete": DELETE_CHANGED.format(**parts),
        "insert": INSERT_CHANGED.format(**parts),
        "columns": parts["columns"],
    }


def merge_snapshots(
    con: duckdb.DuckDBPyConnection, snapshots: pd.DataFrame, tables: Mapping[str, IntervalRows]
) -> None:
    """Merge snapshots of one list (team_uuid, source, snapshot_id, snapshot_at, loaded_at; any
    number of teams) and their rows into the list's interval tables and `inventory_snapshots`,
    inside the caller's transaction. A snapshot with no rows is an empty list: it closes every
    interval that held the snapshot before it."""
    if snapshots.empty:
        return
    order = snapshots.drop_duplicates(["team_uuid", "source", "snapshot_id"]).sort_values(
        ["snapshot_at", "snapshot_id"]
    )
    rounds = order.groupby(["team_uuid", "source"], sort=False).cumcount()
    statements = {name: _statements(name, part.key, part.state) for name, part in tables.items()}
    for number in sorted(rounds.unique()):
        chosen = order[rounds == number]
        ids = set(chosen["snapshot_id"])
        con.register("round_snapshots", chosen)
        con.execute(WINDOW)
        con.unregister("round_snapshots")
        for name, part in tables.items():
            sql = statements[name]
            con.execute(sql["incoming"])
            rows = part.rows[part.rows["snapshot_id"].isin(ids)]
            if len(rows):
                con.register("incoming", rows)
                con.execute(
                    "INSERT INTO merge_incoming BY NAME "  # noqa: S608
                    f"SELECT team_uuid, snapshot_id, {sql['columns']} FROM incoming"
                )
                con.unregister("incoming")
            for step in ("affected", "rebuilt", "delete", "insert"):
                con.execute(sql[step])
        con.execute(RECORD)
    # Created in the caller's transaction: a rollback drops them too.
    for temporary in TEMPORARY:
        con.execute(f"DROP TABLE IF EXISTS {temporary}")

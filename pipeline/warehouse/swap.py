"""The month swap: one team's (or several teams') months replaced in every table at once.

Delete and insert in one transaction, so a month holds its old rows or its new rows; a swap
that would empty a closed month is refused before anything is deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.warehouse.frames import as_arrow, identifier, insert, team_list
from pipeline.warehouse.intervals import IntervalRows, merge_snapshots
from pipeline.warehouse.raw import Pruned, prune_raw
from pipeline.warehouse.store import Warehouse

PERIODS = "CAST($periods AS VARCHAR[])"


class EmptiedMonthError(RuntimeError):
    """A swap would leave a closed month that holds rows with none: refused, nothing written.

    DigitalOcean never withdraws a final invoice, so a load that finds none for a month the
    warehouse already holds says more about the load (a malformed list, a wrong period) than
    about the month."""


# The (team, month) pairs of a table that hold closed rows (`$closed`: the table's own
# predicate) and would get no row from the incoming frame.
WOULD_EMPTY = """
    SELECT o.team_uuid, o.month, o.closed
    FROM (SELECT team_uuid, {column} AS month, count(*) AS closed FROM {table}
          WHERE list_contains(CAST($teams AS VARCHAR[]), team_uuid)
            AND list_contains(CAST($periods AS VARCHAR[]), {column}) AND ({closed})
          GROUP BY ALL) AS o
    WHERE NOT EXISTS (SELECT 1 FROM guarded AS i
                      WHERE i.team_uuid = o.team_uuid AND i.{column} = o.month)
    ORDER BY o.team_uuid, o.month
"""


def refuse_emptied_months(
    con: duckdb.DuckDBPyConnection,
    table: str,
    column: str,
    closed: str,
    frame: pd.DataFrame | pa.Table,
    teams: list[str],
    periods: Sequence[str],
) -> None:
    """Raise before the swap deletes anything if it would empty a closed month of `table`."""
    con.register("guarded", frame)
    try:
        emptied = con.execute(
            WOULD_EMPTY.format(table=identifier(table), column=identifier(column), closed=closed),
            {"teams": teams, "periods": list(periods)},
        ).fetchall()
    finally:
        con.unregister("guarded")
    if emptied:
        said = "; ".join(f"team {t}, {m}: {n} row(s) held, none loaded" for t, m, n in emptied)
        raise EmptiedMonthError(
            f"{table}: this load would empty closed month(s) the warehouse holds ({said}). "
            "Nothing was written; the previous rows stay. The API listed nothing for them: "
            "look at the invoice list in raw before trusting it."
        )


def replace_periods(
    store: Warehouse,
    team_uuid: str | Sequence[str],
    periods: Sequence[str],
    tables: dict[str, tuple[pd.DataFrame, str]],
    merges: dict[str, tuple[pd.DataFrame, Sequence[str]]] | None = None,
    *,
    snapshots: pd.DataFrame | None = None,
    intervals: dict[str, IntervalRows] | None = None,
    raw_source: str | None = None,
    closed: dict[str, str] | None = None,
) -> Pruned:
    """Swap one team's (or several teams') rows of these months in every table at once:
    delete and insert in one transaction. Other teams' rows are not touched.

    `tables` maps a table name to its new rows and the column that holds the month;
    `merges` maps a table that keeps history (snapshots) to rows replacing those with the
    same key columns, in the same transaction. `snapshots` (of a list: the inventory) are
    merged with their rows, `intervals`, into tables kept as validity intervals
    (`intervals.merge_snapshots`), in that transaction too. With `raw_source`, the team's
    raw fetches of that source that retention lets go are deleted in that transaction too,
    so raw never loses a fetch the tables were not yet rebuilt from.

    `closed` maps a table to the predicate of its rows that belong to a closed month: a
    month holding such rows is never swapped for none (`EmptiedMonthError`).
    """
    with store.transaction() as con:
        for table, predicate in (closed or {}).items():
            frame, column = tables[table]
            refuse_emptied_months(
                con, table, column, predicate, frame, team_list(team_uuid), periods
            )
        for table, (frame, column) in tables.items():
            con.execute(
                f"DELETE FROM {identifier(table)} "  # noqa: S608
                "WHERE list_contains(CAST($teams AS VARCHAR[]), team_uuid) "
                f"AND list_contains({PERIODS}, {identifier(column)})",
                {"periods": list(periods), "teams": team_list(team_uuid)},
            )
            insert(con, table, as_arrow(frame))
        for table, (frame, key) in (merges or {}).items():
            con.register("incoming", frame)
            match = " AND ".join(f"t.{identifier(c)} = i.{identifier(c)}" for c in key)
            con.execute(
                f"DELETE FROM {identifier(table)} AS t "  # noqa: S608
                f"WHERE EXISTS (SELECT 1 FROM incoming AS i WHERE {match})"
            )
            con.unregister("incoming")
            insert(con, table, frame)
        if snapshots is not None:
            merge_snapshots(con, snapshots, intervals or {})
        if raw_source is None:
            return Pruned()
        return prune_raw(con, store.raw.keep, raw_source, team_uuid)

"""Frames into warehouse tables: identifiers checked, rows inserted by column name.

Shared by raw landing (`raw.py`) and the month swap (`swap.py`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

# Table and column names come from source declarations, never from input; still, only plain
# identifiers are ever interpolated into SQL.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")

# What an INSERT may buffer on top of what DuckDB already holds: it keeps the rows it converts
# until their row groups are written, and unbounded that doubles a big load in memory (1M
# items: +268 MiB; bounded so: about +110 MiB, in the same time).
INSERT_BUFFER_MIB = 256


def identifier(name: str) -> str:
    """`name` as it is, once it is known to be a plain identifier; ValueError otherwise."""
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a warehouse identifier: {name!r}")
    return name


def team_list(team: str | Sequence[str]) -> list[str]:
    """One team uuid or several, as a list (the SQL binds a VARCHAR[])."""
    return [team] if isinstance(team, str) else list(team)


def stacked(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Several teams' rows of one table as one frame (one INSERT); empty frames left out."""
    full = [f for f in frames if len(f)]
    if len(full) == 1:
        return full[0]
    return pd.concat(full, ignore_index=True) if full else frames[0]


def as_arrow(frame: pd.DataFrame) -> pa.Table | pd.DataFrame:
    """The frame as an Arrow table (its Arrow-backed columns as they are, no copy), which
    DuckDB inserts faster than it scans a frame (1M items: 10-30% less time in four
    alternating pairs); the frame itself when a column does not convert."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return frame


def insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame | pa.Table) -> None:
    """Append a DataFrame's (or Arrow table's) rows by column name (one set-based INSERT).

    Rows carry their own order (line numbers, dates) and what the project reads back in order
    sorts, so DuckDB may write the rows on all its threads instead of one, in any order (1M
    items: about half the time)."""
    (held,) = con.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
    ).fetchone()
    con.execute(f"SET memory_limit = '{held // 2**20 + INSERT_BUFFER_MIB}MiB'")
    con.execute("SET preserve_insertion_order = false")
    con.register("incoming", frame)
    try:
        con.execute(f"INSERT INTO {identifier(table)} BY NAME SELECT * FROM incoming")  # noqa: S608
    finally:
        con.unregister("incoming")
        con.execute("RESET preserve_insertion_order")
        con.execute("RESET memory_limit")

"""Sample data or real teams: what a warehouse file records it holds, so the two never mix.

A run with no token loads the built-in sandbox's sample teams; a run with a token, real ones.
The file records which (`sample_data` table, migration 9) before the first write, and a run of
the other kind refuses to write beside it, naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from pipeline.warehouse.connection import WarehouseFile


class SampleDataMixError(RuntimeError):
    """A run would write sample data into a file of real teams, or real teams into the
    sandbox's file; nothing was written."""


def holds_sample_data(con: duckdb.DuckDBPyConnection) -> bool | None:
    """What the file records (`sample_data` table, migration 9); None when nothing is recorded,
    or the file predates the record."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'sample_data'"
    ).fetchone()
    if not found or not found[0]:
        return None
    row = con.execute("SELECT bool_or(sample_data) FROM sample_data").fetchone()
    return None if row is None or row[0] is None else bool(row[0])


def recorded_sample_data(published: Path, working: Path) -> bool | None:
    """What a warehouse records before a run opens it: the working file's mark, else the
    published file's; None when neither says (or the working file is busy: the run checks)."""
    for path in (working, published):
        if path.is_file():
            try:
                with duckdb.connect(str(path), read_only=True) as con:
                    return holds_sample_data(con)
            except duckdb.Error:
                return None
    return None


def mix_message(held: bool, place: str) -> str:
    """One line: which file holds what, and what to do instead of mixing."""
    if held:
        return (
            f"{place} holds the built-in sandbox's sample data, and a token is set: a run with "
            "a token never writes beside sample teams. Set WAREHOUSE_PATH to another file (or "
            "move this one away), then run again."
        )
    return (
        f"{place} holds teams read with a token, and no token is set: the built-in sandbox "
        "never writes sample data beside them. Set SANDBOX_WAREHOUSE_PATH to another file, or "
        "set the token, then run again."
    )


def mark_sample_data(store: WarehouseFile, sample: bool, place: str = "the warehouse") -> None:
    """Before a run writes: record what the file holds, or refuse (`SampleDataMixError`,
    naming `place`) when it holds the other kind, so sample and real teams never share it."""
    with store.transaction() as con:
        held = holds_sample_data(con)
        if held is None:
            con.execute("INSERT INTO sample_data VALUES ($sample, now())", {"sample": sample})
        elif held != sample:
            raise SampleDataMixError(f"{mix_message(held, place)} Nothing was written.")

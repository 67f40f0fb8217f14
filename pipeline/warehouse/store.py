"""The DuckDB warehouse: one object for a file and the jobs done on it.

Every write is one transaction: a month holds its old rows or its new rows. The schema is not
applied here: `migrate()` is the explicit step that brings a file up to date. Each job lives in
a module of its own: `connection.py` (opening, sessions, transactions, the lock),
`raw.py` (raw landing, read-back and retention: `Warehouse.raw`), `registry.py` (the teams
seen: `Warehouse.teams`), `swap.py` (the atomic month swap: `swap.replace_periods`),
`sample_data.py` (sample data or real teams, never both), `publish.py` (the analysts' file)
and `frames.py` (inserts by column name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

# RAW_KEEP's default, for a store opened by hand; the store reads no settings.
from pipeline.settings.fields import DEFAULT_RAW_KEEP
from pipeline.warehouse.connection import WarehouseFile
from pipeline.warehouse.migrate import migrate
from pipeline.warehouse.publish import Published, publish
from pipeline.warehouse.raw import RawArchive
from pipeline.warehouse.registry import TeamRegistry


class Warehouse(WarehouseFile):
    """The warehouse: its file (`WarehouseFile`), with the jobs done on it: the schema
    (`migrate`), raw landing (`raw`), the team registry (`teams`), reads (`query`) and
    publication (`publish`); the month swap is `swap.replace_periods(warehouse, ...)`."""

    def __init__(
        self, path: str | Path, *, lock_timeout: float = 120.0, raw_keep: int = DEFAULT_RAW_KEEP
    ) -> None:
        super().__init__(path, lock_timeout=lock_timeout)
        # Raw retention (RAW_KEEP): older fetches kept per source × team × month besides the
        # latest good one; applied with every swap and by `raw.prune()`.
        self.raw = RawArchive(self, raw_keep)
        self.teams = TeamRegistry(self)

    @property
    def raw_keep(self) -> int:
        """What raw retention keeps (`RawArchive.keep`)."""
        return self.raw.keep

    def migrate(self) -> list[int]:
        """Bring the file's schema up to date (versioned, idempotent); the versions applied.
        The explicit step: the warehouse resource runs it once per run, `make migrate` by hand."""
        with self.connect() as con:
            applied = migrate(con)
        self.changed = True  # the views are rebuilt every time: the published file gets them
        return applied

    def publish(self, published: Path) -> Published:
        """Publish this (working) file as the analysts' file `published` (`publish.publish`),
        holding the file while it copies so publications follow the writes' order."""
        with self.connect() as con:
            done = publish(con, published)
        self.changed = False
        return done

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        """A read query's result with exact types; opened read-only so analysts are not blocked
        longer than the query takes (inside a session, on the session's connection). A missing
        file is `WarehouseMissingError`, never an empty new one."""
        with self.connect(read_only=True) as con:
            # Through Arrow, so DECIMAL stays exact instead of becoming float64.
            table = con.sql(sql, params=params).to_arrow_table()
        return table.to_pandas(types_mapper=pd.ArrowDtype)

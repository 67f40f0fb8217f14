"""The DuckDB warehouse: raw landing, and atomic month-by-month replacement of tables.

DuckDB allows one writer process; a busy file is retried with backoff for a bounded time and
then reported plainly. Every write is one transaction: a month holds its old rows or its new rows.
The schema is not applied here: `migrate()` is the explicit step that brings a file up to date.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from pipeline.warehouse.migrate import migrate

log = logging.getLogger(__name__)

PERIODS = "CAST($periods AS VARCHAR[])"
# The newest good fetch of a source for each wanted month; read once, then joined as `latest`.
LATEST = """
    SELECT partition_key, fetch_id
    FROM raw.latest_fetch($source, CAST($periods AS VARCHAR[]))
"""
RAW_TARGETS = """
    SELECT t.target_key, t.partition_key, t.status, t.entry
    FROM raw.targets AS t JOIN latest USING (fetch_id, partition_key)
    ORDER BY t.partition_key, t.target_key
"""
# A month's own pages, and the pages that serve every month of their fetch (an index, a list
# that spans months: partition_key NULL), read once per fetch.
RAW_PAGES = """
    SELECT p.fetch_id, p.endpoint, p.request_key, p.partition_key, p.page, p.body
    FROM raw.pages AS p JOIN latest USING (fetch_id, partition_key)
    UNION ALL
    SELECT p.fetch_id, p.endpoint, p.request_key, p.partition_key, p.page, p.body
    FROM raw.pages AS p
    WHERE p.partition_key IS NULL AND p.fetch_id IN (SELECT fetch_id FROM latest)
    ORDER BY endpoint, request_key, page
"""
INSERT_FETCH = """
    INSERT INTO raw.fetches (fetch_id, source, run_id, fetched_at, first_period, last_period,
                             api_host, status, error, requests)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Table and column names come from source declarations, never from input; still, only plain
# identifiers are ever interpolated into SQL.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


@dataclass(frozen=True)
class RawRead:
    """What `read_raw` found: the fetch of each month, its targets and pages, what is missing."""

    fetches: pd.DataFrame  # partition_key, fetch_id
    targets: pd.DataFrame  # target_key, partition_key, status, entry
    pages: pd.DataFrame | None  # fetch_id, endpoint, request_key, partition_key, page, body
    missing: list[str]


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file's lock for longer than we are willing to wait."""


@dataclass(frozen=True)
class RawBatch:
    """One fetch of one source, ready to land in `raw`: its record, targets and pages."""

    fetch_id: str
    source: str
    run_id: str | None
    fetched_at: pd.Timestamp
    first_period: str
    last_period: str
    api_host: str
    status: str  # 'ok' or 'incomplete'
    error: str | None
    requests: int
    targets: pd.DataFrame  # target_key, partition_key, status, entry
    pages: pd.DataFrame  # endpoint, request_key, partition_key, page, body


def _identifier(name: str) -> str:
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a warehouse identifier: {name!r}")
    return name


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Append a DataFrame's rows by column name (one set-based INSERT)."""
    con.register("incoming", frame)
    con.execute(f"INSERT INTO {_identifier(table)} BY NAME SELECT * FROM incoming")  # noqa: S608
    con.unregister("incoming")


# Files this process has brought up to date: once per process is enough.
_MIGRATED: set[Path] = set()


class Warehouse:
    """A DuckDB file, opened per unit of work and always closed, even on errors."""

    def __init__(self, path: str | Path, *, lock_timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, waiting (bounded) while another process holds the lock."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.1
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.Error as exc:
                if not _is_lock_error(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise WarehouseBusyError(
                        f"warehouse {self.path} is locked by another process (a run or an open "
                        f"session) and stayed locked for {self.lock_timeout:.0f}s. Close other "
                        "writers or read-write sessions on it, then re-run."
                    ) from None
                log.warning("warehouse %s is locked; retrying in %.1fs", self.path, delay)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside BEGIN … COMMIT; any exception rolls everything back."""
        with self.connect() as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def migrate(self) -> list[int]:
        """Bring the file's schema up to date (versioned, idempotent); the versions applied."""
        key = self.path.resolve()
        if key in _MIGRATED and self.path.exists():
            return []
        with self.connect() as con:
            applied = migrate(con)
        _MIGRATED.add(key)
        return applied

    def land_raw(self, batch: RawBatch) -> None:
        """Keep every page as received, with the fetch's verdict, in one transaction."""
        with self.transaction() as con:
            con.execute(
                INSERT_FETCH,
                [
                    batch.fetch_id,
                    batch.source,
                    batch.run_id,
                    batch.fetched_at,
                    batch.first_period,
                    batch.last_period,
                    batch.api_host,
                    batch.status,
                    batch.error,
                    batch.requests,
                ],
            )
            _insert(con, "raw.targets", batch.targets.assign(fetch_id=batch.fetch_id))
            _insert(con, "raw.pages", batch.pages.assign(fetch_id=batch.fetch_id))

    def read_raw(self, source: str, periods: Sequence[str], *, with_pages: bool = True) -> RawRead:
        """The latest good fetch of `source` for each month: which fetch, its targets, its pages
        (unless `with_pages` is false), and the months no good fetch covers."""
        with self.connect() as con:
            fetches = con.execute(LATEST, {"source": source, "periods": list(periods)}).df()
            con.register("latest", fetches)
            targets = con.execute(RAW_TARGETS).df()
            pages = con.execute(RAW_PAGES).df() if with_pages else None
        covered = set(fetches["partition_key"])
        return RawRead(fetches, targets, pages, [p for p in periods if p not in covered])

    def replace_periods(
        self,
        periods: Sequence[str],
        tables: dict[str, tuple[pd.DataFrame, str]],
        merges: dict[str, tuple[pd.DataFrame, Sequence[str]]] | None = None,
    ) -> None:
        """Swap these months' rows in every table at once: delete and insert in one transaction.

        `tables` maps a table name to its new rows and the column that holds the month;
        `merges` maps a table that keeps history (snapshots) to rows replacing those with the
        same key columns, in the same transaction.
        """
        with self.transaction() as con:
            for table, (frame, column) in tables.items():
                con.execute(
                    f"DELETE FROM {_identifier(table)} "  # noqa: S608
                    f"WHERE list_contains({PERIODS}, {_identifier(column)})",
                    {"periods": list(periods)},
                )
                _insert(con, table, frame)
            for table, (frame, key) in (merges or {}).items():
                con.register("incoming", frame)
                match = " AND ".join(f"t.{_identifier(c)} = i.{_identifier(c)}" for c in key)
                con.execute(
                    f"DELETE FROM {_identifier(table)} AS t "  # noqa: S608
                    f"WHERE EXISTS (SELECT 1 FROM incoming AS i WHERE {match})"
                )
                con.unregister("incoming")
                _insert(con, table, frame)

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        """A read query's result with exact types; opened read-only so analysts are not blocked
        longer than the query takes."""
        with self.connect(read_only=self.path.exists()) as con:
            # Through Arrow, so DECIMAL stays exact instead of becoming float64.
            table = con.sql(sql, params=params).to_arrow_table()
        return table.to_pandas(types_mapper=pd.ArrowDtype)

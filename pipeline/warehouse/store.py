"""The DuckDB warehouse: schema, raw landing, and atomic month-by-month replacement.

DuckDB allows one writer process; a busy file is retried with backoff for a bounded time and
then reported plainly. Every write is one transaction: a month holds its old rows or its new rows.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

if TYPE_CHECKING:
    from pipeline.api.models import InvoiceFetch, InvoiceListing

log = logging.getLogger(__name__)

_SQL = resources.files("pipeline.warehouse")
SCHEMA_SQL = _SQL.joinpath("schema.sql").read_text() + _SQL.joinpath("views.sql").read_text()

PERIODS = "CAST($periods AS VARCHAR[])"
LATEST_FETCH = "SELECT * FROM raw.latest_fetch(CAST($periods AS VARCHAR[]))"
RAW_INVOICES = """
    SELECT i.invoice_uuid, i.invoice_period, i.status, i.items_total, i.entry
    FROM raw.invoices AS i
    JOIN raw.latest_fetch(CAST($periods AS VARCHAR[])) USING (fetch_id, invoice_period)
    ORDER BY i.invoice_period, i.invoice_uuid
"""
RAW_ITEM_PAGES = """
    SELECT p.invoice_uuid, p.invoice_period, p.status, p.page, p.body
    FROM raw.invoice_item_pages AS p
    JOIN raw.latest_fetch(CAST($periods AS VARCHAR[])) USING (fetch_id, invoice_period)
    ORDER BY p.invoice_uuid, p.page
"""
# Table names interpolated into SQL come from this fixed set only, never from input.
WRITABLE_TABLES = frozenset(
    {
        "invoices",
        "invoice_items",
        "raw.invoice_list_pages",
        "raw.invoices",
        "raw.invoice_item_pages",
        "invoice_summaries",
        "raw.invoice_summaries",
    }
)


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file's lock for longer than we are willing to wait."""


@dataclass(frozen=True)
class RawFetch:
    """One run's fetch of the API, ready to land in `raw`."""

    fetch_id: str
    run_id: str | None
    fetched_at: pd.Timestamp
    first_period: str
    last_period: str
    api_host: str
    status: str
    error: str | None
    requests: int
    list_pages: pd.DataFrame  # page, body
    invoices: pd.DataFrame  # invoice_uuid, invoice_period, status, items_total, entry
    item_pages: pd.DataFrame  # invoice_uuid, invoice_period, status, page, body

    @classmethod
    def of(
        cls,
        listing: InvoiceListing,
        fetches: Sequence[InvoiceFetch],
        *,
        periods: Sequence[str],
        api_host: str,
        requests: int,
        problems: Sequence[str] = (),
        run_id: str | None = None,
    ) -> RawFetch:
        """Every page of a fetch, verbatim, with the list entry and `meta.total` of each invoice."""
        list_pages = pd.DataFrame(
            {"page": [p.page for p in listing.pages], "body": [p.body for p in listing.pages]}
        )
        invoices = pd.DataFrame(
            {
                "invoice_uuid": [f.ref.invoice_uuid for f in fetches],
                "invoice_period": [f.ref.invoice_period for f in fetches],
                "status": [f.ref.status for f in fetches],
                "items_total": pd.array([f.expected for f in fetches], dtype="Int64"),
                "entry": [json.dumps(f.ref.entry, ensure_ascii=False) for f in fetches],
            }
        )
        item_pages = pd.DataFrame(
            [
                (f.ref.invoice_uuid, f.ref.invoice_period, f.ref.status, page.page, page.body)
                for f in fetches
                for page in f.pages
            ],
            columns=["invoice_uuid", "invoice_period", "status", "page", "body"],
        )
        return cls(
            fetch_id=uuid.uuid4().hex,
            run_id=run_id,
            fetched_at=pd.Timestamp.now(tz="UTC"),
            first_period=min(periods),
            last_period=max(periods),
            api_host=api_host,
            status="incomplete" if problems else "ok",
            error="\n".join(problems) or None,
            requests=requests,
            list_pages=list_pages,
            invoices=invoices,
            item_pages=item_pages,
        )


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


def _check_table(table: str) -> None:
    if table not in WRITABLE_TABLES:
        raise ValueError(f"not a warehouse table: {table!r}")


# Files whose schema and views this process has already (re)applied: once per process is enough,
# and skipping it saves ~20 ms on every later open (each asset and check opens the file).
_SCHEMA_APPLIED: set[Path] = set()


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Append a DataFrame's rows by column name (one set-based INSERT)."""
    _check_table(table)
    con.register("incoming", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming")  # noqa: S608
    con.unregister("incoming")


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
        fresh_file = not self.path.exists()
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
            key = self.path.resolve()
            if not read_only and (fresh_file or key not in _SCHEMA_APPLIED):
                con.execute(SCHEMA_SQL)
                _SCHEMA_APPLIED.add(key)
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

    def land_raw(self, fetch: RawFetch) -> None:
        """Keep every page as received, with the fetch's verdict, in one transaction."""
        with self.transaction() as con:
            con.execute(
                "INSERT INTO raw.fetches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    fetch.fetch_id,
                    fetch.run_id,
                    fetch.fetched_at,
                    fetch.first_period,
                    fetch.last_period,
                    fetch.api_host,
                    fetch.status,
                    fetch.error,
                    fetch.requests,
                ],
            )
            for table, frame in (
                ("raw.invoice_list_pages", fetch.list_pages),
                ("raw.invoices", fetch.invoices),
                ("raw.invoice_item_pages", fetch.item_pages),
            ):
                _insert(con, table, frame.assign(fetch_id=fetch.fetch_id))

    def raw_invoices(self, periods: Sequence[str]) -> pd.DataFrame:
        """Invoice list entries of the latest good fetch of each period."""
        with self.connect() as con:
            return con.execute(RAW_INVOICES, {"periods": list(periods)}).df()

    def read_raw(self, periods: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """Latest good fetch of each period: invoice entries, item pages, periods never fetched."""
        with self.connect() as con:
            params = {"periods": list(periods)}
            covered = {row[0] for row in con.execute(LATEST_FETCH, params).fetchall()}
            entries = con.execute(RAW_INVOICES, params).df()
            pages = con.execute(RAW_ITEM_PAGES, params).df()
        return entries, pages, [p for p in periods if p not in covered]

    def replace_periods(
        self,
        periods: Sequence[str],
        tables: dict[str, pd.DataFrame],
        append: dict[str, pd.DataFrame] | None = None,
    ) -> None:
        """Swap these months' rows in every table at once: delete and insert in one transaction.

        `append` rows (raw landing) are added in the same transaction.
        """
        with self.transaction() as con:
            for table, frame in (append or {}).items():
                _insert(con, table, frame)
            for table, frame in tables.items():
                _check_table(table)
                con.execute(
                    f"DELETE FROM {table} WHERE list_contains({PERIODS}, invoice_period)",  # noqa: S608
                    {"periods": list(periods)},
                )
                _insert(con, table, frame)

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        """A read query's result with exact types; opened read-only so analysts are not blocked
        longer than the query takes."""
        with self.connect(read_only=self.path.exists()) as con:
            # Through Arrow, so DECIMAL stays exact instead of becoming float64.
            table = con.sql(sql, params=params).to_arrow_table()
        return table.to_pandas(types_mapper=pd.ArrowDtype)

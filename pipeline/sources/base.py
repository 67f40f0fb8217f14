"""What a source declares: its endpoints and how they page, how its rows map to months, its raw
landing, its normalizer, its tables and keys, and the invariants that must hold before commit.

One engine (`pipeline.engine`) runs every source; nothing here calls the API or the warehouse.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from pipeline.api import LINKS, Collection, PageRequest, Paginator

MONTH_COLUMN = "invoice_period"
# The fetch a row was read from, on the rows of a source whose normalizer takes `many_fetches`: the
# engine splits a batch of teams by it, and never writes it.
FETCH = "fetch_id"
Write = Literal["months", "merge", "intervals"]


@dataclass(frozen=True)
class Target:
    """One thing to fetch for a month: an invoice's items, an invoice's summary, a window."""

    key: str  # what the rows are keyed by (raw.pages.request_key): the invoice uuid
    partition: str  # the month (`YYYY-MM`) its rows belong to
    status: str | None = None  # the parent record's state as the source names it
    entry: dict[str, Any] | None = None  # the parent record as received
    path_key: str | None = None  # what fills `{key}` in the path, if not `key`
    label: str = ""  # how messages name it
    path_args: dict[str, str] = field(default_factory=dict)  # other `{names}` in the path


@dataclass(frozen=True)
class Endpoint:
    """A path (with `{key}` filled from a target), how it pages and where its rows are."""

    name: str  # raw.pages.endpoint
    path: str
    paginator: Paginator = LINKS
    records: str | None = None
    noun: str = "records"
    primary_key: str | None = None
    scope: str = "billing:read"  # the token scope the endpoint needs

    def request(self, target: Target | None = None, missing: str = "answers 404") -> PageRequest:
        path = self.path
        if target is not None:
            path = path.format(key=target.path_key or target.key, **target.path_args)
        return PageRequest(
            path=path,
            paginator=self.paginator,
            records=self.records,
            label=target.label if target is not None else "",
            noun=self.noun,
            primary_key=self.primary_key,
            missing=missing,
            scope=self.scope,
        )


@dataclass(frozen=True)
class Targets:
    """What a source may choose its targets from."""

    periods: Sequence[str]
    index: Collection | None = None  # the source's index pages (the invoice list), if any
    parent: pd.DataFrame | None = None  # the parent source's latest raw targets, if any
    team_uuid: str | None = None  # the team whose token fetches (GET /v2/account, read once)


@dataclass(frozen=True)
class RawData:
    """The latest good raw fetch of each month, as landed: what a normalizer reads."""

    periods: Sequence[str]
    fetches: pd.DataFrame  # partition_key, fetch_id, fetched_at: the fetch each month is read from
    # target_key, partition_key, status, entry; and FETCH when several teams' fetches are read
    # at once (as just landed)
    targets: pd.DataFrame
    # fetch_id, endpoint, request_key, partition_key, page, body; pages that serve every month
    # of their fetch (an index, a list spanning months) have no partition_key.
    pages: pd.DataFrame

    def pages_of(self, endpoint: str) -> pd.DataFrame:
        return self.pages[self.pages["endpoint"] == endpoint]

    def read_from(self, months: pd.Series, fetch_ids: pd.Series) -> pd.Series:
        """Whether each row's month is read from the row's fetch (the newest good fetch of
        that month; each team has its own when several teams' raw is read at once)."""
        wanted = pd.MultiIndex.from_arrays(
            [self.fetches["partition_key"].astype(str), self.fetches["fetch_id"].astype(str)]
        )
        rows = pd.MultiIndex.from_arrays([months.astype(str), fetch_ids.astype(str)])
        return pd.Series(rows.isin(wanted), index=months.index)


@dataclass(frozen=True)
class Table:
    """A target table: replaced month by month, keyed by `primary_key`."""

    name: str
    primary_key: tuple[str, ...]
    description: str
    noun: str = ""  # what a row is called in the run log ("items"); the name if empty
    partition_column: str = MONTH_COLUMN
    # What its materialization shows besides the row count and the amount total.
    plot: bool = False  # a bar per month of the run
    spend_by: str | None = None  # amount per this column and month
    totals: tuple[str, ...] = ()  # other money columns to total
    # "months": a run replaces its months' rows; "merge": rows replace those with the same
    # primary key and the rest are kept (snapshots that accumulate, one per fetch);
    # "intervals": a snapshot source's rows, one per key and snapshot, kept as validity
    # intervals of each key's states (`warehouse.intervals`; the key is `primary_key`).
    write: Write = "months"
    # SQL predicate of the rows that belong to a closed month ("status = 'final'"): a swap
    # never replaces such a month's rows with none.
    closed: str | None = None


@dataclass(frozen=True)
class Normalized:
    """A normalizer's output: one frame per table, and what a person should hear about."""

    tables: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    """A query over the stored tables whose rows are the failures; none means it passed."""

    name: str
    table: str  # the asset it checks
    sql: str
    description: str
    passed: str  # what a pass means, shown in the UI
    warn_only: bool = False  # a finding to look at, not an error
    blocking: bool = False  # a failure stops downstream assets
    also_reads: tuple[str, ...] = ()  # other tables the query reads


Normalizer = Callable[[RawData, datetime], Normalized]
Invariants = Callable[[RawData, dict[str, pd.DataFrame], Sequence[str]], list[str]]


def no_invariants(raw: RawData, tables: dict[str, pd.DataFrame], periods: Sequence[str]) -> list:
    return []


@dataclass(frozen=True)
class Source:
    """A source, declared: the engine fetches, lands, normalizes, checks and swaps it."""

    name: str  # raw.fetches.source
    normalize: Normalizer  # pure: raw → one frame per table
    tables: tuple[Table, ...]
    description: str
    index: Endpoint | None = None  # fetched once per run (a list, or what finds the targets)
    endpoint: Endpoint | None = None  # fetched once per target
    targets: Callable[[Targets], list[Target]] | None = None
    parent: Source | None = None  # targets come from the parent's latest raw fetch
    invariants: Invariants = no_invariants
    target_noun: str = "target"  # "invoice": `3 invoice(s) in 2024-01…2024-03`
    progress_name: str = "pages"  # progress lines: `items: 3/41 invoices complete, …`
    missing: str = "answers 404"  # a target the API does not know
    raw_asset: str | None = None  # a separate asset for fetch + raw landing, if wanted
    tables_step: str | None = None  # the name of the step that loads several tables
    checks: tuple[Check, ...] = ()
    kinds: frozenset[str] = field(default_factory=lambda: frozenset({"duckdb", "pandas"}))
    # A snapshot of the account as it is now (the inventory), not of months: its pages serve
    # every month of their fetch, and each fetch is recorded in `inventory_snapshots`.
    snapshot: bool = False
    # Its normalizer takes several teams' fetches in one call and marks every row with its
    # FETCH (a snapshot source's rows carry theirs as snapshot_id): a batch of teams is then
    # normalized at once, its fixed cost paid once per batch instead of once per team.
    many_fetches: bool = False

    @property
    def table_names(self) -> list[str]:
        return [table.name for table in self.tables]

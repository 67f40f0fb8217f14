"""Raw landing: every page as received, each fetch with its verdict; read back, and let go.

A fetch of one source by one team lands in `raw.fetches`, `raw.targets` and `raw.pages` in one
transaction. What it read is read back by month (the latest good fetch covering it) for a
replay or a child source; retention (`RAW_KEEP`) deletes the fetches no month needs any more.
`Warehouse.raw` is this archive of the warehouse's file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from pipeline.warehouse.frames import insert, team_list

if TYPE_CHECKING:
    from pipeline.warehouse.connection import WarehouseFile

# The newest good fetch of a source by one team for each wanted month; read once, then joined
# as `latest`.
LATEST = """
    SELECT l.partition_key, l.fetch_id, f.fetched_at
    FROM raw.latest_team_fetch($source, $team, CAST($periods AS VARCHAR[])) AS l
    JOIN raw.fetches AS f USING (fetch_id)
"""
# The teams with a good fetch of a source that covers any of the months: what a replay rebuilds.
RAW_TEAMS = """
    SELECT DISTINCT team_uuid FROM raw.fetches
    WHERE source = $source AND status = 'ok' AND team_uuid IS NOT NULL
      AND EXISTS (SELECT 1 FROM unnest(CAST($periods AS VARCHAR[])) AS w(m)
                  WHERE w.m BETWEEN first_period AND last_period)
    ORDER BY team_uuid
"""
# The targets of each team's newest good fetch of a source for each month, for many teams in
# one query (the same macro as LATEST, once per team): a child source's step reads its parent's.
TEAMS_TARGETS = """
    SELECT t.team_uuid, l.partition_key AS covered, r.target_key, r.partition_key, r.status,
           r.entry
    FROM unnest(CAST($teams AS VARCHAR[])) AS t(team_uuid),
         raw.latest_team_fetch($source, t.team_uuid, CAST($periods AS VARCHAR[])) AS l
    LEFT JOIN raw.targets AS r USING (fetch_id, partition_key)
    ORDER BY t.team_uuid, r.partition_key, r.target_key
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
# Raw retention: the fetches to delete. Each fetch is expanded to the months it covers
# (first_period..last_period); per source × team × month, the latest good fetch (every one tied
# at the latest time, as replay's arg_max could pick any) and the `$keep` newest of the others,
# whatever their status, are kept. A fetch kept for any month it covers stays whole: its pages
# with partition_key NULL (the invoice list) serve all its months. A fetch whose periods do not
# read as months is never deleted.
RAW_TO_PRUNE = """
    WITH months AS (
        SELECT fetch_id, source, team_uuid, fetched_at, status = 'ok' AS good,
               strftime(unnest(generate_series(
                   try_cast(first_period || '-01' AS DATE),
                   try_cast(last_period || '-01' AS DATE),
                   INTERVAL 1 MONTH)), '%Y-%m') AS month
        FROM raw.fetches
        WHERE (CAST($source AS VARCHAR) IS NULL OR source = $source)
          AND (CAST($teams AS VARCHAR[]) IS NULL
               OR list_contains(CAST($teams AS VARCHAR[]), team_uuid))
    ),
    latest AS (
        SELECT *, good AND rank() OVER (
                PARTITION BY source, team_uuid, month, good ORDER BY fetched_at DESC
            ) = 1 AS latest_good
        FROM months
    ),
    ranked AS (
        SELECT fetch_id, latest_good, row_number() OVER (
                PARTITION BY source, team_uuid, month, latest_good
                ORDER BY fetched_at DESC, fetch_id DESC
            ) AS newest
        FROM latest
    )
    SELECT fetch_id FROM ranked
    GROUP BY fetch_id
    HAVING NOT bool_or(latest_good OR newest <= $keep)
    ORDER BY fetch_id
"""
# raw.fetches' columns, in the order `land` gives them.
FETCH_COLUMNS = [
    "fetch_id",
    "source",
    "team_uuid",
    "run_id",
    "fetched_at",
    "first_period",
    "last_period",
    "api_host",
    "status",
    "error",
    "requests",
]


# A fetch's targets and pages as `RawBatch` holds them: rows of these columns.
TARGET_COLUMNS = ["target_key", "partition_key", "status", "entry"]
# `received`: the exact bytes of a body that was not valid UTF-8 (NULL when `body` is exact).
PAGE_COLUMNS = ["endpoint", "request_key", "partition_key", "page", "body", "received"]
ROW_COLUMNS = {"targets": TARGET_COLUMNS, "pages": PAGE_COLUMNS}
BODY = PAGE_COLUMNS.index("body")


@dataclass(frozen=True)
class RawBatch:
    """One fetch of one source, ready to land in `raw`: its record, targets and pages.

    The targets and pages are kept as rows (`target_rows`, `page_rows`) and made into frames
    for a whole batch of teams at once (`batch_rows`): one frame a team and part cost about
    0.5 ms, paid twice by each of a thousand teams in every step."""

    fetch_id: str
    source: str
    team_uuid: str
    run_id: str | None
    fetched_at: pd.Timestamp
    first_period: str
    last_period: str
    api_host: str
    status: str  # 'ok' or 'incomplete'
    error: str | None
    requests: int
    target_rows: list[tuple]  # rows of TARGET_COLUMNS
    page_rows: list[tuple]  # rows of PAGE_COLUMNS

    def rows(self, part: str) -> list[tuple]:
        """Its targets' rows (`part` "targets") or its pages' ("pages")."""
        return self.target_rows if part == "targets" else self.page_rows

    @property
    def body_chars(self) -> int:
        """The size of its pages, in characters: what holding it in memory costs."""
        return sum(len(row[BODY]) for row in self.page_rows)


def batch_rows(batches: Sequence[RawBatch], part: str) -> pd.DataFrame:
    """The batches' targets (`part` "targets") or pages ("pages") one after the other as one
    frame, each row marked with its `fetch_id`: made column by column from every batch's rows
    at once (`page` as int32)."""
    columns = ROW_COLUMNS[part]
    lists = [b.rows(part) for b in batches]
    rows = [row for rows in lists for row in rows]
    if not rows:
        empty = pd.DataFrame([], columns=[*columns, "fetch_id"])
        return empty.astype({"page": "int32"}) if part == "pages" else empty
    data: dict[str, object] = {
        name: list(column) for name, column in zip(columns, zip(*rows, strict=True), strict=True)
    }
    if part == "pages":
        data["page"] = np.array(data["page"], dtype="int32")
    fetch_ids = np.array([b.fetch_id for b in batches], dtype=object)
    data["fetch_id"] = np.repeat(fetch_ids, [len(r) for r in lists])
    return pd.DataFrame(data)


@dataclass(frozen=True)
class RawRead:
    """What `RawArchive.read` found: the fetch of each month, its targets and pages, what is
    missing."""

    fetches: pd.DataFrame  # partition_key, fetch_id, fetched_at
    targets: pd.DataFrame  # target_key, partition_key, status, entry
    pages: pd.DataFrame | None  # fetch_id, endpoint, request_key, partition_key, page, body
    missing: list[str]


@dataclass(frozen=True)
class Pruned:
    """What a prune of raw deleted: fetches, and the pages and targets that were theirs."""

    fetches: int = 0
    pages: int = 0
    targets: int = 0


def prune_raw(
    con: duckdb.DuckDBPyConnection,
    keep: int,
    source: str | None = None,
    team: str | Sequence[str] | None = None,
) -> Pruned:
    """Delete the raw fetches retention lets go (RAW_TO_PRUNE), on `con`, inside the caller's
    transaction; `source` and `team` (one or several) narrow it (None: every one)."""
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep}")
    teams = None if team is None else team_list(team)
    doomed = [
        fetch_id
        for (fetch_id,) in con.execute(
            RAW_TO_PRUNE, {"source": source, "teams": teams, "keep": keep}
        ).fetchall()
    ]
    if not doomed:
        return Pruned()
    counts = []
    for table in ("raw.pages", "raw.targets", "raw.fetches"):
        counts.append(
            con.execute(
                f"DELETE FROM {table} "  # noqa: S608
                "WHERE list_contains(CAST($ids AS VARCHAR[]), fetch_id)",
                {"ids": doomed},
            ).fetchone()[0]
        )
    pages, targets, fetches = counts
    return Pruned(fetches, pages, targets)


class RawArchive:
    """The `raw` schema of one warehouse file: land fetches, read them back, prune them."""

    def __init__(self, store: WarehouseFile, keep: int) -> None:
        self._store = store
        # Older fetches kept per source × team × month besides the latest good one.
        self.keep = keep

    def land(self, *batches: RawBatch) -> None:
        """Keep every page as received, with each fetch's verdict, in one transaction (several
        teams' fetches land in one write: a batch of teams)."""
        if not batches:
            return
        fetches = [
            [
                b.fetch_id,
                b.source,
                b.team_uuid,
                b.run_id,
                b.fetched_at,
                b.first_period,
                b.last_period,
                b.api_host,
                b.status,
                b.error,
                b.requests,
            ]
            for b in batches
        ]
        with self._store.transaction() as con:
            # One INSERT of the batch's fetches (a prepared INSERT run per fetch took about
            # three times as long for 50 teams, in the one writer every team waits for).
            insert(con, "raw.fetches", pd.DataFrame(fetches, columns=FETCH_COLUMNS))
            for table, part in (("raw.targets", "targets"), ("raw.pages", "pages")):
                insert(con, table, batch_rows(batches, part))

    def read(
        self, source: str, team_uuid: str, periods: Sequence[str], *, with_pages: bool = True
    ) -> RawRead:
        """The team's latest good fetch of `source` for each month: which fetch, its targets, its
        pages (unless `with_pages` is false), and the months no good fetch covers."""
        params = {"source": source, "team": team_uuid, "periods": list(periods)}
        with self._store.connect() as con:
            fetches = con.execute(LATEST, params).df()
            con.register("latest", fetches)
            targets = con.execute(RAW_TARGETS).df()
            pages = con.execute(RAW_PAGES).df() if with_pages else None
        covered = set(fetches["partition_key"])
        return RawRead(fetches, targets, pages, [p for p in periods if p not in covered])

    def read_targets(
        self, source: str, teams: Sequence[str], periods: Sequence[str]
    ) -> dict[str, RawRead]:
        """`read(..., with_pages=False)` for many teams in one query: each team's targets
        and missing months (fetches are not read)."""
        params = {"source": source, "teams": list(teams), "periods": list(periods)}
        with self._store.connect() as con:
            found = con.execute(TEAMS_TARGETS, params).df()
        columns = ["target_key", "partition_key", "status", "entry"]
        by_team = dict(tuple(found.groupby("team_uuid", sort=False)))
        reads = {}
        for team in teams:
            rows = by_team.get(team, found.iloc[0:0])
            covered = set(rows["covered"])
            targets = rows.dropna(subset=["target_key"])[columns].reset_index(drop=True)
            missing = [p for p in periods if p not in covered]
            reads[team] = RawRead(found.iloc[0:0, :0], targets, None, missing)
        return reads

    def teams(self, source: str, periods: Sequence[str]) -> list[str]:
        """The teams whose good fetches of `source` cover any of the months."""
        with self._store.connect() as con:
            found = con.execute(RAW_TEAMS, {"source": source, "periods": list(periods)})
            return [team for (team,) in found.fetchall()]

    def prune(self, keep: int | None = None) -> Pruned:
        """Apply raw retention to every source and team in one transaction (`make prune`), then
        checkpoint so the freed blocks can be reused."""
        with self._store.transaction() as con:
            pruned = prune_raw(con, self.keep if keep is None else keep)
        with self._store.connect() as con:
            con.execute("CHECKPOINT")
        return pruned

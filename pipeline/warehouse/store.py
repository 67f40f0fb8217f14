"""The DuckDB warehouse: raw landing, and atomic month-by-month replacement of tables.

DuckDB allows one writer process; a busy file is retried with backoff for a bounded time and
then reported plainly. Every write is one transaction: a month holds its old rows or its new rows.
The schema is not applied here: `migrate()` is the explicit step that brings a file up to date.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.warehouse.intervals import IntervalRows, merge_snapshots
from pipeline.warehouse.migrate import migrate
from pipeline.warehouse.publish import Published, publish

log = logging.getLogger(__name__)

# The setting's default (pipeline.settings.DEFAULT_RAW_KEEP); the store does not read settings.
DEFAULT_RAW_KEEP = 3

PERIODS = "CAST($periods AS VARCHAR[])"
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
SEE_TEAMS = """
    MERGE INTO teams AS t
    USING (SELECT team_uuid, team_name, token_position, $now AS seen_at FROM seen) AS s
    ON t.team_uuid = s.team_uuid
    WHEN MATCHED THEN UPDATE SET team_name = s.team_name, token_position = s.token_position,
                                 last_seen_at = s.seen_at
    WHEN NOT MATCHED THEN INSERT (team_uuid, team_name, token_position, first_seen_at,
                                  last_seen_at)
        VALUES (s.team_uuid, s.team_name, s.token_position, s.seen_at, s.seen_at)
"""
LAST_SEEN_AT = """
    SELECT team_uuid, team_name FROM teams
    WHERE token_position = $position ORDER BY last_seen_at DESC LIMIT 1
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
INSERT_FETCH = """
    INSERT INTO raw.fetches (fetch_id, source, team_uuid, run_id, fetched_at, first_period,
                             last_period, api_host, status, error, requests)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Table and column names come from source declarations, never from input; still, only plain
# identifiers are ever interpolated into SQL.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


@dataclass(frozen=True)
class RawRead:
    """What `read_raw` found: the fetch of each month, its targets and pages, what is missing."""

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
    teams = None if team is None else _teams(team)
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


class WarehouseBusyError(RuntimeError):
    """Another process holds the DuckDB file's lock for longer than we are willing to wait."""


class WarehouseMissingError(RuntimeError):
    """A reader asked for a file that does not exist: reading never creates one (only a
    publication makes the analysts' file), so the reader says so instead."""


@dataclass(frozen=True)
class RawBatch:
    """One fetch of one source, ready to land in `raw`: its record, targets and pages."""

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
    targets: pd.DataFrame  # target_key, partition_key, status, entry
    pages: pd.DataFrame  # endpoint, request_key, partition_key, page, body


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
            WOULD_EMPTY.format(table=_identifier(table), column=_identifier(column), closed=closed),
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


def _teams(team: str | Sequence[str]) -> list[str]:
    return [team] if isinstance(team, str) else list(team)


def stacked(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Several teams' rows of one table as one frame (one INSERT); empty frames left out."""
    full = [f for f in frames if len(f)]
    if len(full) == 1:
        return full[0]
    return pd.concat(full, ignore_index=True) if full else frames[0]


def _identifier(name: str) -> str:
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a warehouse identifier: {name!r}")
    return name


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


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


def _as_arrow(frame: pd.DataFrame) -> pa.Table | pd.DataFrame:
    """The frame as an Arrow table (its Arrow-backed columns as they are, no copy), which
    DuckDB inserts faster than it scans a frame (1M items: 10-30% less time in four
    alternating pairs); the frame itself when a column does not convert."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return frame


# What an INSERT may buffer on top of what DuckDB already holds: it keeps the rows it converts
# until their row groups are written, and unbounded that doubles a big load in memory (1M
# items: +268 MiB; bounded so: about +110 MiB, in the same time).
_INSERT_BUFFER_MIB = 256


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame | pa.Table) -> None:
    """Append a DataFrame's (or Arrow table's) rows by column name (one set-based INSERT).

    Rows carry their own order (line numbers, dates) and what the project reads back in order
    sorts, so DuckDB may write the rows on all its threads instead of one, in any order (1M
    items: about half the time)."""
    (held,) = con.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
    ).fetchone()
    con.execute(f"SET memory_limit = '{held // 2**20 + _INSERT_BUFFER_MIB}MiB'")
    con.execute("SET preserve_insertion_order = false")
    con.register("incoming", frame)
    try:
        con.execute(f"INSERT INTO {_identifier(table)} BY NAME SELECT * FROM incoming")  # noqa: S608
    finally:
        con.unregister("incoming")
        con.execute("RESET preserve_insertion_order")
        con.execute("RESET memory_limit")


@dataclass
class _Held:
    """A file held open by `Warehouse.session()`: its connection, and how many sessions share it."""

    con: duckdb.DuckDBPyConnection
    sessions: int = 0


class Warehouse:
    """A DuckDB file, opened per unit of work (or held for a step's session) and always
    closed, even on errors.

    Teams load side by side in threads of one process and share one `Warehouse`: its lock lets
    one of them at a time use the file, so no two connections (or a read-only and a read-write
    one) meet inside DuckDB."""

    def __init__(
        self, path: str | Path, *, lock_timeout: float = 120.0, raw_keep: int = DEFAULT_RAW_KEEP
    ) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._lock = threading.RLock()
        self._held: _Held | None = None
        # Whether a write committed since this object was made (or last published), and how
        # many write transactions committed (a step's count shows in its metadata).
        self.changed = False
        self.commits = 0
        # Raw retention (RAW_KEEP): older fetches kept per source × team × month besides the
        # latest good one; applied with every swap and by `prune()`.
        self.raw_keep = raw_keep

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, waiting (bounded) while another process holds the lock; inside a
        session, a cursor of the session's connection."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._held is not None:
                with self._held.con.cursor() as con:
                    yield con
                return
            if read_only and not self.path.is_file():
                raise WarehouseMissingError(
                    f"no warehouse file at {self.path}: nothing has been published there yet "
                    "(`make run` loads and publishes it)"
                )
            con = self._open(read_only)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """Keep the file open for the units of work inside (a step's), read-write.

        Each open of a DuckDB file builds a database instance and each close checkpoints it,
        so a step's dozen units of work share one connection: inside a session `connect()`
        hands out cursors, each unit still its own transaction. Other processes wait for the
        file until the session ends, as they wait for a write.
        """
        with self._lock:
            if self._held is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._held = _Held(self._open(read_only=False))
            held = self._held
            held.sessions += 1
        try:
            yield self
        finally:
            with self._lock:
                held.sessions -= 1
                if held.sessions == 0:
                    self._held = None
                    held.con.close()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.1
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
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
            self.changed = True
            self.commits += 1

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

    def land_raw(self, *batches: RawBatch) -> None:
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
        with self.transaction() as con:
            con.executemany(INSERT_FETCH, fetches)
            for table, part in (("raw.targets", "targets"), ("raw.pages", "pages")):
                # Each row marked with its fetch once on the whole, not frame by frame.
                full = [b for b in batches if len(getattr(b, part))] or list(batches[:1])
                rows = pd.concat([getattr(b, part) for b in full], ignore_index=True)
                fetch_ids = pd.Index([b.fetch_id for b in full], dtype=object)
                rows["fetch_id"] = fetch_ids.repeat([len(getattr(b, part)) for b in full])
                _insert(con, table, rows)

    def read_raw(
        self, source: str, team_uuid: str, periods: Sequence[str], *, with_pages: bool = True
    ) -> RawRead:
        """The team's latest good fetch of `source` for each month: which fetch, its targets, its
        pages (unless `with_pages` is false), and the months no good fetch covers."""
        params = {"source": source, "team": team_uuid, "periods": list(periods)}
        with self.connect() as con:
            fetches = con.execute(LATEST, params).df()
            con.register("latest", fetches)
            targets = con.execute(RAW_TARGETS).df()
            pages = con.execute(RAW_PAGES).df() if with_pages else None
        covered = set(fetches["partition_key"])
        return RawRead(fetches, targets, pages, [p for p in periods if p not in covered])

    def read_teams_targets(
        self, source: str, teams: Sequence[str], periods: Sequence[str]
    ) -> dict[str, RawRead]:
        """`read_raw(..., with_pages=False)` for many teams in one query: each team's targets
        and missing months (fetches are not read)."""
        params = {"source": source, "teams": list(teams), "periods": list(periods)}
        with self.connect() as con:
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

    def raw_teams(self, source: str, periods: Sequence[str]) -> list[str]:
        """The teams whose good fetches of `source` cover any of the months."""
        with self.connect() as con:
            found = con.execute(RAW_TEAMS, {"source": source, "periods": list(periods)})
            return [team for (team,) in found.fetchall()]

    def see_team(self, team_uuid: str, name: str, position: int) -> None:
        """Record a team as `GET /v2/account` named it, and where its token sits in the list."""
        self.see_teams([(team_uuid, name, position)])

    def see_teams(self, teams: Sequence[tuple[str, str, int]]) -> None:
        """Record teams (uuid, name, token position) in one transaction: a run of a thousand
        teams records them in one write, not a thousand."""
        if not teams:
            return
        seen = pd.DataFrame(list(teams), columns=["team_uuid", "team_name", "token_position"])
        with self.transaction() as con:
            con.register("seen", seen)
            con.execute(SEE_TEAMS, {"now": pd.Timestamp.now(tz="UTC")})
            con.unregister("seen")

    def team_names(self, uuids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """uuid → (name, token position) as last seen, for the given teams that are recorded."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT team_uuid, team_name, token_position FROM teams "
                "WHERE list_contains(CAST($uuids AS VARCHAR[]), team_uuid)",
                {"uuids": list(uuids)},
            ).fetchall()
        return {uuid: (name, position) for uuid, name, position in rows}

    def holds_sample_data(self) -> bool | None:
        """Whether the file holds the built-in sandbox's sample data (True) or teams read with
        a token (False); None for a file no run has marked yet (or none at all)."""
        if not self.path.exists():
            return None
        with self.connect(read_only=self._held is None) as con:
            return holds_sample_data(con)

    def mark_sample_data(self, sample: bool, place: str = "the warehouse") -> None:
        """Before a run writes: record what the file holds, or refuse (`SampleDataMixError`,
        naming `place`) when it holds the other kind, so sample and real teams never share it."""
        with self.transaction() as con:
            held = holds_sample_data(con)
            if held is None:
                con.execute("INSERT INTO sample_data VALUES ($sample, now())", {"sample": sample})
            elif held != sample:
                raise SampleDataMixError(f"{mix_message(held, place)} Nothing was written.")

    def team_last_seen_at(self, position: int) -> tuple[str, str] | None:
        """(uuid, name) of the team whose token last sat at this place in the list, if any."""
        if not self.path.exists():
            return None
        with self.connect() as con:
            return con.execute(LAST_SEEN_AT, {"position": position}).fetchone()

    def rows_before_teams(self, tables: Sequence[str]) -> int:
        """Rows loaded before teams were recorded (team_uuid NULL), in these tables and raw."""
        with self.connect() as con:
            return sum(
                con.execute(
                    f"SELECT count(*) FROM {_identifier(t)} WHERE team_uuid IS NULL"  # noqa: S608
                ).fetchone()[0]
                for t in [*tables, "raw.fetches"]
            )

    def claim_rows_before_teams(self, tables: Sequence[str], team_uuid: str) -> int:
        """Make every row loaded before teams this team's, in one transaction; rows changed."""
        changed = 0
        with self.transaction() as con:
            for table in [*tables, "raw.fetches"]:
                changed += con.execute(
                    f"UPDATE {_identifier(table)} SET team_uuid = $team "  # noqa: S608
                    "WHERE team_uuid IS NULL",
                    {"team": team_uuid},
                ).fetchone()[0]
        return changed

    def replace_periods(
        self,
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
        with self.transaction() as con:
            for table, predicate in (closed or {}).items():
                frame, column = tables[table]
                refuse_emptied_months(
                    con, table, column, predicate, frame, _teams(team_uuid), periods
                )
            for table, (frame, column) in tables.items():
                con.execute(
                    f"DELETE FROM {_identifier(table)} "  # noqa: S608
                    "WHERE list_contains(CAST($teams AS VARCHAR[]), team_uuid) "
                    f"AND list_contains({PERIODS}, {_identifier(column)})",
                    {"periods": list(periods), "teams": _teams(team_uuid)},
                )
                _insert(con, table, _as_arrow(frame))
            for table, (frame, key) in (merges or {}).items():
                con.register("incoming", frame)
                match = " AND ".join(f"t.{_identifier(c)} = i.{_identifier(c)}" for c in key)
                con.execute(
                    f"DELETE FROM {_identifier(table)} AS t "  # noqa: S608
                    f"WHERE EXISTS (SELECT 1 FROM incoming AS i WHERE {match})"
                )
                con.unregister("incoming")
                _insert(con, table, frame)
            if snapshots is not None:
                merge_snapshots(con, snapshots, intervals or {})
            if raw_source is None:
                return Pruned()
            return prune_raw(con, self.raw_keep, raw_source, team_uuid)

    def prune(self, keep: int | None = None) -> Pruned:
        """Apply raw retention to every source and team in one transaction (`make prune`), then
        checkpoint so the freed blocks can be reused."""
        with self.transaction() as con:
            pruned = prune_raw(con, self.raw_keep if keep is None else keep)
        with self.connect() as con:
            con.execute("CHECKPOINT")
        return pruned

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        """A read query's result with exact types; opened read-only so analysts are not blocked
        longer than the query takes (inside a session, on the session's connection). A missing
        file is `WarehouseMissingError`, never an empty new one."""
        with self.connect(read_only=True) as con:
            # Through Arrow, so DECIMAL stays exact instead of becoming float64.
            table = con.sql(sql, params=params).to_arrow_table()
        return table.to_pandas(types_mapper=pd.ArrowDtype)

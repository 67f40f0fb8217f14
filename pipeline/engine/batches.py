"""Every team of a step through the stages of `pipeline.engine.stages`, their writes in batches.

Teams fetch side by side on a bounded pool; as they finish, a `BatchWriter` writes their
fetches `WRITE_BATCH` at a time: one transaction lands the batch's pages, the batch is
normalized, one transaction swaps its teams' months. A failed team fails alone and keeps its
previous rows. The Dagster assets, `make replay` and `make bench` call `load_teams` and
`replay_teams`; a single team is a step of one team.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from pipeline.api import ApiError, DigitalOceanClient
from pipeline.api.log import Log
from pipeline.engine.progress import TeamsProgress, team_log
from pipeline.engine.stages import (
    InvariantError,
    RawNotFetchedError,
    fetch,
    incomplete,
    landed_raw,
    normalized,
    replay,
    swap_teams,
)
from pipeline.engine.together import QueuedFetch, Tables, normalized_batch
from pipeline.sources import TABLES
from pipeline.sources.base import Normalized, Source
from pipeline.sources.fields import InvalidPayloadError
from pipeline.teams import DEFAULT_TEAM_WORKERS, Account, Outcome, Team, for_each_team, identify
from pipeline.warehouse.frames import stacked
from pipeline.warehouse.raw import RawBatch, RawRead
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.swap import EmptiedMonthError

# Teams whose fetches are written in one batch: one landing and one swap transaction for this
# many teams, not one each, and one normalizer call. Each batch has fixed costs (its
# transactions, the normalizer's frames, the raw retention of its teams): 1,000 teams took
# 86 s in batches of 50 and 70 s in batches of 200 or 500, the same run. Their pages wait in
# memory meanwhile, so the batch is also written as soon as its pages reach WRITE_BATCH_CHARS.
WRITE_BATCH = 250
WRITE_BATCH_CHARS = 64 * 2**20


@dataclass(frozen=True)
class Landed:
    """What a team's fetch landed, kept after its pages are written (not the pages: a step of a
    thousand teams must not hold every team's pages until it ends)."""

    fetch_id: str
    targets: int
    pages: int
    requests: int

    @classmethod
    def of(cls, batch: RawBatch) -> Landed:
        return cls(batch.fetch_id, len(batch.target_rows), len(batch.page_rows), batch.requests)


@dataclass(frozen=True)
class TeamLoad:
    """One team's part of a step: the fetch it landed (if it fetched) and the rows it swapped."""

    batch: Landed | None
    result: Normalized | None
    retries: int = 0
    rate_limited: int = 0


@dataclass(frozen=True)
class StepOutcome(Outcome[TeamLoad]):
    """A step's teams (`Outcome`), with the rows its swaps wrote, a few frames a table (one
    a batch), so what describes the step reads them without a frame a team."""

    written: dict[str, list[pd.DataFrame]] = field(default_factory=dict)

    def rows(self, table: str) -> pd.DataFrame:
        """Every swapped team's rows of `table` in one frame, the teams in their order."""
        loads = [load for load in self.results.values() if load.result is not None]
        if not loads:
            return pd.DataFrame()
        parts = self.written.get(table)
        if parts is None:  # not written in batches (a replay): each team's own frame
            return stacked([load.result.tables[table] for load in loads])  # type: ignore[union-attr]
        frame = stacked(parts)
        order = pd.Index([team.uuid for team in self.results])
        codes = order.get_indexer(frame["team_uuid"].to_numpy())
        return frame.take(np.argsort(codes, kind="stable")).reset_index(drop=True)


@dataclass
class StageSeconds:
    """Seconds the writer spent in each stage, summed over its batches (`make bench` reads
    them; a step does not)."""

    land: float = 0.0
    normalize: float = 0.0
    swap: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                setattr(self, stage, getattr(self, stage) + time.perf_counter() - start)


class BatchWriter:
    """Teams' fetches written a batch at a time, as they finish fetching (from whichever team
    thread fills the batch, and `flush()` for the rest).

    Each batch: its pages land in one transaction, its teams are normalized in one call where
    the source allows (`normalized_batch`; else, or if that call fails, each team on its own),
    and the teams that normalized swap their months in one transaction. Isolation holds: a
    team whose fetch did not add up or whose rows break an invariant fails alone, before the
    swap; if a batch's transaction itself fails, its teams are written one by one, so only the
    team that causes it fails. A failed team keeps its previous rows."""

    def __init__(
        self,
        source: Source,
        store: Warehouse,
        periods: Sequence[str],
        tables: bool,
        size: int,
        done: Callable[[bool], None],
        seconds: StageSeconds | None = None,
        max_chars: int = WRITE_BATCH_CHARS,
    ) -> None:
        self.source, self.store, self.periods, self.tables = source, store, list(periods), tables
        self.size = max(1, size)
        self.max_chars = max_chars
        self._chars = 0  # the queued pages' size
        self.seconds = seconds or StageSeconds()
        self._done = done
        self._lock = threading.Lock()
        self._queued: list[QueuedFetch] = []
        self.results: dict[Team, TeamLoad] = {}
        # Each swap's rows, by table: the step's metadata describes them without a frame a team.
        self.written: dict[str, list[pd.DataFrame]] = {}
        self.failures: list[tuple[str, BaseException]] = []
        self._failed: set[Team] = set()  # the teams of `failures`, by the key `results` uses

    def add(self, queued: QueuedFetch) -> None:
        """Queue a team's fetch; the thread that fills a batch (by teams or by the size of
        their pages) writes it."""
        with self._lock:
            self._queued.append(queued)
            self._chars += queued.batch.body_chars
            if len(self._queued) < self.size and self._chars < self.max_chars:
                return
            group, self._queued, self._chars = self._queued, [], 0
        self._write(group)

    def flush(self) -> None:
        """Write what is queued: the last batch, not full."""
        with self._lock:
            group, self._queued, self._chars = self._queued, [], 0
        self._write(group)

    def _fail(self, queued: QueuedFetch, error: BaseException) -> None:
        with self._lock:
            self.failures.append((queued.label, error))
            self._failed.add(queued.team)
        self._done(False)

    def _write(self, group: list[QueuedFetch]) -> None:
        """Write the group; if the file cannot be had at all (locked, unreadable), every team
        of the group not yet settled fails, named, and the other groups carry on."""
        if not group:
            return
        try:
            self._write_group(group)
        except (duckdb.Error, RuntimeError, OSError) as exc:
            with self._lock:
                settled = self.results.keys() | self._failed
            for queued in group:
                if queued.team not in settled:
                    self._fail(queued, exc)

    def _write_group(self, group: list[QueuedFetch]) -> None:
        with self.store.session():
            with self.seconds.timing("land"):
                landed = self._land(group)
            good = []
            for queued in landed:
                error = incomplete(queued.batch)
                if error is None:
                    good.append(queued)
                else:
                    self._fail(queued, error)
            with self.seconds.timing("normalize"):
                results, whole = (
                    self._normalize(good) if self.tables else ({f.team: None for f in good}, None)
                )
            with self.seconds.timing("swap"):
                swapped = self._swap([f for f in good if f.team in results], results, whole)
        for queued in swapped:
            load = TeamLoad(
                Landed.of(queued.batch), results[queued.team], queued.retries, queued.rate_limited
            )
            with self._lock:
                self.results[queued.team] = load
            self._done(True)

    def _whole_or_each(
        self, group: list[QueuedFetch], write: Callable[[list[QueuedFetch]], None]
    ) -> list[QueuedFetch]:
        """`write` the whole group in one transaction; if that fails, each team alone, so only
        the team that causes the failure fails. The teams written."""
        if not group:
            return group
        try:
            write(group)
            return group
        except (duckdb.Error, EmptiedMonthError) as exc:
            if len(group) == 1:
                self._fail(group[0], exc)
                return []
        written = []
        for queued in group:
            try:
                write([queued])
                written.append(queued)
            except (duckdb.Error, EmptiedMonthError) as exc:
                self._fail(queued, exc)
        return written

    def _land(self, group: list[QueuedFetch]) -> list[QueuedFetch]:
        """Land the group's pages in one transaction (or each team's in its own)."""
        return self._whole_or_each(
            group, lambda part: self.store.raw.land(*(f.batch for f in part))
        )

    def _normalize(
        self, group: list[QueuedFetch]
    ) -> tuple[dict[Team, Normalized | None], Tables | None]:
        """Each team's rows, and the whole group's when one call normalized every team."""
        if (self.source.snapshot or self.source.many_fetches) and len(group) > 1:
            in_one_call = normalized_batch(self.source, group, self.periods)
            if in_one_call is not None:
                return dict(in_one_call.teams), in_one_call.tables
        results: dict[Team, Normalized | None] = {}
        for queued in group:
            try:
                raw = landed_raw(queued.batch, self.periods)
                results[queued.team] = normalized(
                    self.source, raw, queued.team.uuid, queued.batch.fetched_at
                )
            except (RawNotFetchedError, InvalidPayloadError, InvariantError, duckdb.Error) as exc:
                self._fail(queued, exc)
        return results, None

    def _swap(
        self,
        group: list[QueuedFetch],
        results: dict[Team, Normalized | None],
        whole: Tables | None = None,
    ) -> list[QueuedFetch]:
        """Swap the group's months in one transaction (or each team's in its own); `whole`:
        the group's rows already in one frame a table, when the group is all they hold."""
        if not self.tables:
            return group

        def write(part: list[QueuedFetch]) -> None:
            rows = {f.team.uuid: results[f.team] for f in part}
            tables = whole if len(part) == len(group) else None
            done = swap_teams(self.source, self.store, self.periods, rows, tables)  # type: ignore[arg-type]
            with self._lock:
                for name, frame in done.items():
                    self.written.setdefault(name, []).append(frame)

        return self._whole_or_each(group, write)


def load_teams(
    source: Source,
    accounts: Sequence[Account],
    store: Warehouse,
    periods: Sequence[str],
    log: Log,
    *,
    run_id: str | None = None,
    tables: bool = True,
    known: dict[int, Team | ApiError] | None = None,
    workers: int = DEFAULT_TEAM_WORKERS,
    write_batch: int = WRITE_BATCH,
    seconds: StageSeconds | None = None,
) -> StepOutcome:
    """Fetch every team's pages, `workers` teams at a time, and land (and, with `tables`, swap)
    them `write_batch` teams per transaction as they finish fetching; each team all or
    nothing, the others unaffected by its failure. `known`: the teams this run already read
    (`teams.identify`); `seconds`: where to add the time each write stage took."""
    teams, failures = identify(accounts, store, list(TABLES), log, known, workers)
    progress = TeamsProgress(log, len(teams) + len(failures), source.name)
    for _ in failures:
        progress.done(False)
    writer = BatchWriter(source, store, periods, tables, write_batch, progress.done, seconds)
    # A child source's parent targets, every team's in one read (one per team would scan raw
    # once per team).
    parents: dict[str, RawRead] = {}
    if source.parent is not None and teams:
        parents = store.raw.read_targets(
            source.parent.name, [team.uuid for team, _ in teams], periods
        )
    places = {team: account.place for team, account in teams}

    def work(team: Team, api: DigitalOceanClient) -> None:
        # A team's own lines are the step's when it is alone, DEBUG among many.
        api.log = team_log(log, team.name, len(teams))
        try:
            batch = fetch(source, api, store, periods, team.uuid, run_id, parents.get(team.uuid))
        except BaseException:
            progress.done(False)
            raise
        label = f"{team} ({places[team]})"
        writer.add(QueuedFetch(team, label, batch, api.stats.retries, api.stats.rate_limited))

    fetched = for_each_team(teams, work, failures, workers)
    writer.flush()
    order = {team: n for n, (team, _) in enumerate(teams)}
    results = dict(sorted(writer.results.items(), key=lambda pair: order[pair[0]]))
    return StepOutcome(results, [*fetched.failures, *writer.failures], writer.written)


def replay_teams(
    source: Source, store: Warehouse, periods: Sequence[str], *, now: datetime
) -> StepOutcome:
    """Rebuild every team's months that raw holds, from raw alone: zero requests. `now`: the
    rows' loaded_at."""
    uuids = store.raw.teams(source.name, periods)
    if not uuids:
        step = source.raw_asset or source.name
        raise RawNotFetchedError(
            f"no team has a good raw fetch of {source.name} for {periods[0]}…{periods[-1]}: "
            f"materialize {step} first"
        )
    names = store.teams.names(uuids)
    teams = [Team(uuid, *names.get(uuid, (uuid, 0)), place="raw") for uuid in uuids]
    outcome = StepOutcome({}, [])
    for team in teams:
        try:
            result = replay(source, store, periods, team.uuid, now=now)
            outcome.results[team] = TeamLoad(None, result)
        except (RawNotFetchedError, InvalidPayloadError, InvariantError, EmptiedMonthError) as exc:
            outcome.failures.append((str(team), exc))
    return outcome

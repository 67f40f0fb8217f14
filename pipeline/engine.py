"""One recipe for every source: fetch → land raw → normalize the latest good fetch → check → swap.

The raw landing is its own transaction and happens before anything is parsed, so a bad value or
a bug in a normalizer loses nothing: fix it and `replay` from raw with zero requests. The
Dagster assets call these steps, and so does `make bench`, so the benchmark measures a run's work.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pandas as pd

from pipeline.api import ApiError, Collection, DigitalOceanClient, IncompleteFetchError, Progress
from pipeline.api.log import Log
from pipeline.api.progress import TeamsProgress, team_log
from pipeline.sources import TABLES
from pipeline.sources.base import FETCH, Normalized, RawData, Source, Target, Targets
from pipeline.sources.fields import InvalidPayloadError
from pipeline.teams import (
    DEFAULT_TEAM_WORKERS,
    Account,
    Outcome,
    Team,
    for_each_team,
    identify,
)
from pipeline.warehouse.intervals import IntervalRows
from pipeline.warehouse.store import EmptiedMonthError, RawBatch, RawRead, Warehouse, together

# Teams whose fetches are written together: one landing and one swap transaction for this many
# teams, not one each. Their pages wait in memory meanwhile, so it also bounds what is held.
WRITE_BATCH = 50
TARGET_COLUMNS = ["target_key", "partition_key", "status", "entry"]
# `received`: the exact bytes of a body that was not valid UTF-8 (NULL when `body` is exact).
PAGE_COLUMNS = ["endpoint", "request_key", "partition_key", "page", "body", "received"]
# Every fetch of a snapshot source (the inventory), kept after raw retention lets its pages go.
SNAPSHOTS = "inventory_snapshots"


class RawNotFetchedError(RuntimeError):
    """A month has no successful raw fetch to work from."""


class InvariantError(RuntimeError):
    """The normalized rows break one of the source's invariants (incomplete invoices,
    duplicates, months out of range): nothing is written, the previous rows stay."""


@dataclass
class _Fetched:
    """What a fetch gathered so far: pages as landed rows, and why it does not add up."""

    pages: list[tuple] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def fetch_index(source: Source, api: DigitalOceanClient, got: _Fetched) -> Collection | None:
    """The source's index (the invoice list), all its pages, once per run."""
    if source.index is None:
        return None
    (index,) = api.fetch([source.index.request()])
    got.pages += [(source.index.name, None, None, p.page, p.body, p.received) for p in index.pages]
    got.problems += index.problems()
    api.log.info(
        f"{source.index.name.replace('_', ' ')}: {len(index.records)} {source.index.noun} "
        f"in {len(index.pages)} page(s)"
    )
    return index


def choose_targets(
    source: Source,
    periods: list[str],
    index: Collection | None,
    parent: pd.DataFrame | None,
    team_uuid: str,
    got: _Fetched,
) -> list[Target]:
    """What to fetch for the months, chosen by the source from its index or its parent."""
    if got.problems or source.targets is None:
        return []
    try:
        return source.targets(Targets(periods, index, parent, team_uuid))
    except InvalidPayloadError as exc:
        got.problems.append(str(exc))
        return []


def fetch_pages(
    source: Source,
    api: DigitalOceanClient,
    periods: list[str],
    targets: list[Target],
    got: _Fetched,
) -> None:
    """Every page of the source's endpoint for every target, all at once on the client's pool."""
    endpoint = source.endpoint
    if got.problems or endpoint is None:
        return
    api.log.info(
        f"{len(targets)} {source.target_noun}(s) in {periods[0]}…{periods[-1]}; "
        f"fetching their {endpoint.noun}"
    )
    collections = api.fetch(
        [endpoint.request(target, source.missing) for target in targets],
        Progress(source.progress_name, source.target_noun),
    )
    got.problems += [problem for c in collections for problem in c.problems()]
    for target, collection in zip(targets, collections, strict=True):
        # A snapshot's pages are of now, so they serve every month of the fetch.
        partition = None if source.snapshot else target.partition
        got.pages += [
            (endpoint.name, target.key, partition, p.page, p.body, p.received)
            for p in collection.pages
        ]


def raw_batch(
    source: Source,
    api: DigitalOceanClient,
    periods: list[str],
    team_uuid: str,
    run_id: str | None,
    targets: list[Target],
    got: _Fetched,
    requests: int,
) -> RawBatch:
    """The fetch as rows for `raw`, with its verdict."""
    return RawBatch(
        fetch_id=uuid.uuid4().hex,
        source=source.name,
        team_uuid=team_uuid,
        run_id=run_id,
        fetched_at=pd.Timestamp.now(tz="UTC"),
        first_period=min(periods),
        last_period=max(periods),
        api_host=api.host,
        status="incomplete" if got.problems else "ok",
        error="\n".join(got.problems) or None,
        requests=requests,
        targets=pd.DataFrame(
            [
                (
                    t.key,
                    t.partition,
                    t.status,
                    json.dumps(t.entry, ensure_ascii=False) if t.entry is not None else None,
                )
                for t in targets
            ],
            columns=TARGET_COLUMNS,
        ),
        pages=pd.DataFrame(got.pages, columns=PAGE_COLUMNS).astype({"page": "int32"}),
    )


def fetch(
    source: Source,
    api: DigitalOceanClient,
    store: Warehouse,
    periods: Sequence[str],
    team_uuid: str,
    run_id: str | None = None,
    parent: RawRead | None = None,
) -> RawBatch:
    """Every page the source needs for these months from one team's token, as received, ready
    to land. `parent`: the parent source's targets for the team, if already read (a step reads
    every team's at once).

    Pages that do not add up are recorded in the batch (`status` incomplete) rather than raised
    here, so they are landed before the run fails.
    """
    periods = list(periods)
    requests_before = api.stats.requests
    targets_of_parent = None
    if source.parent:
        if parent is None:
            parent = store.read_raw(source.parent.name, team_uuid, periods, with_pages=False)
        targets_of_parent = parent_targets(source.parent, parent)
    got = _Fetched()
    index = fetch_index(source, api, got)
    targets = choose_targets(source, periods, index, targets_of_parent, team_uuid, got)
    fetch_pages(source, api, periods, targets, got)
    requests = api.stats.requests - requests_before
    return raw_batch(source, api, periods, team_uuid, run_id, targets, got, requests)


def incomplete(batch: RawBatch) -> IncompleteFetchError | None:
    """Why a landed batch cannot be used, if it does not add up."""
    if not batch.error:
        return None
    return IncompleteFetchError(
        batch.error.replace(":\n- ", ": ").replace("\n- ", "; ").replace("\n", "; ")
        + f". The pages are kept in raw (fetch {batch.fetch_id}); the tables still hold the "
        "previous rows of these months. Re-run the months."
    )


def land(store: Warehouse, batch: RawBatch) -> None:
    """Land the batch in its own transaction, then fail if it did not add up."""
    store.land_raw(batch)
    error = incomplete(batch)
    if error is not None:
        raise error


def parent_targets(source: Source, found: RawRead) -> pd.DataFrame:
    """The targets of the team's latest good fetch of the (parent) source for each month."""
    if found.missing:
        raise RawNotFetchedError(
            f"no successful {source.name} fetch covers {found.missing}: load {source.name} first"
        )
    return found.targets


def normalize(
    source: Source, store: Warehouse, periods: Sequence[str], team_uuid: str, *, now: datetime
) -> Normalized:
    """The team's latest good raw fetch of each month, normalized and checked before any write;
    every row is marked with the team and `now` as its loaded_at."""
    found = store.read_raw(source.name, team_uuid, periods)
    if found.missing or found.pages is None:
        step = source.raw_asset or source.name
        raise RawNotFetchedError(
            f"no successful raw fetch of {source.name} covers {found.missing}: "
            f"materialize {step} first"
        )
    return normalized(
        source, RawData(periods, found.fetches, found.targets, found.pages), team_uuid, now
    )


def landed_raw(batch: RawBatch, periods: Sequence[str]) -> RawData:
    """A good fetch just landed, as `read_raw` would read it back: it is the newest good fetch
    of every month it covers. Reading it back instead would scan every team's pages, once per
    team (a thousand teams: a million page reads per step)."""
    return landed_together([batch], periods)


def landed_together(batches: Sequence[RawBatch], periods: Sequence[str]) -> RawData:
    """Several teams' good fetches just landed, as `landed_raw` gives each, one after the other
    (in one sort, not one per team)."""
    periods = list(periods)
    fetches = pd.DataFrame(
        {
            "partition_key": periods * len(batches),
            "fetch_id": [b.fetch_id for b in batches for _ in periods],
            "fetched_at": [b.fetched_at for b in batches for _ in periods],
        }
    )
    order = "_batch"
    targets = pd.concat([b.targets.assign(**{order: n}) for n, b in enumerate(batches)])
    targets = targets.sort_values([order, "partition_key", "target_key"])
    pages = pd.concat(
        [b.pages.assign(fetch_id=b.fetch_id, **{order: n}) for n, b in enumerate(batches)]
    )
    pages = pages.sort_values([order, "endpoint", "request_key", "page"], na_position="first")
    return RawData(
        periods,
        fetches,
        targets[TARGET_COLUMNS].reset_index(drop=True),
        pages[["fetch_id", *PAGE_COLUMNS]].reset_index(drop=True),
    )


def normalized(source: Source, raw: RawData, team_uuid: str, loaded_at: datetime) -> Normalized:
    """The source's rows from its raw fetch, checked against its invariants, marked with the
    team; nothing is written here."""
    result = source.normalize(raw, loaded_at)
    problems = source.invariants(raw, result.tables, raw.periods)
    if problems:
        raise InvariantError("; ".join(problems) + ". Nothing was written.")
    tables = {
        name: _unmarked(source, frame).assign(team_uuid=team_uuid)
        for name, frame in result.tables.items()
    }
    if source.snapshot:
        tables[SNAPSHOTS] = snapshots_of(source, raw.fetches, team_uuid, loaded_at)
    return Normalized(tables, result.warnings)


def _unmarked(source: Source, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without the FETCH a `together` source marks them with (never written)."""
    return frame.drop(columns=FETCH) if source.together and FETCH in frame else frame


def snapshots_of(
    source: Source, fetches: pd.DataFrame, team_uuid: str, loaded_at: datetime
) -> pd.DataFrame:
    """The fetches a snapshot source was normalized from, one row each: which inventory a month
    is allocated with is chosen from these, so a list that came back empty still counts (it
    closes every resource's interval). `loaded_at` marks the intervals it writes."""
    taken = fetches.drop_duplicates("fetch_id")
    return pd.DataFrame(
        {
            "team_uuid": team_uuid,
            "source": source.name,
            "snapshot_id": taken["fetch_id"].to_numpy(),
            "snapshot_at": pd.to_datetime(taken["fetched_at"].to_numpy(), utc=True),
            "loaded_at": pd.Timestamp(loaded_at),
        }
    )


def swap(
    source: Source, store: Warehouse, periods: Sequence[str], result: Normalized, team_uuid: str
) -> None:
    """Replace one team's rows of the months in every table of the source, and prune its raw
    fetches (RAW_KEEP), in one transaction."""
    swap_teams(source, store, periods, {team_uuid: result})


def swap_teams(
    source: Source, store: Warehouse, periods: Sequence[str], results: dict[str, Normalized]
) -> None:
    """Replace several teams' rows of the months in every table of the source, and prune their
    raw fetches (RAW_KEEP), in one transaction: one DELETE and one INSERT per table (a
    snapshot source's interval tables: one set-based merge of every team's snapshot)."""
    teams = list(results)

    def rows(name: str) -> list[pd.DataFrame]:
        return [results[team].tables[name] for team in teams]

    store.replace_periods(
        teams,
        periods,
        {
            t.name: (together(rows(t.name)), t.partition_column)
            for t in source.tables
            if t.write == "months"
        },
        {
            t.name: (together(rows(t.name)), ("team_uuid", *t.primary_key))
            for t in source.tables
            if t.write == "merge"
        },
        snapshots=together(rows(SNAPSHOTS)) if source.snapshot else None,
        intervals={
            t.name: IntervalRows(together(rows(t.name)), t.primary_key)
            for t in source.tables
            if t.write == "intervals"
        },
        raw_source=source.name,
        closed={t.name: t.closed for t in source.tables if t.write == "months" and t.closed},
    )


def replay(
    source: Source, store: Warehouse, periods: Sequence[str], team_uuid: str, *, now: datetime
) -> Normalized:
    """Normalize and swap one team's months from raw alone: zero requests. `now`: the rows'
    loaded_at."""
    result = normalize(source, store, periods, team_uuid, now=now)
    swap(source, store, periods, result, team_uuid)
    return result


def load(
    source: Source,
    api: DigitalOceanClient,
    store: Warehouse,
    periods: Sequence[str],
    team_uuid: str,
    run_id: str | None = None,
    *,
    tables: bool = True,
) -> tuple[RawBatch, Normalized | None]:
    """The whole recipe for one source, one team and a set of months; without `tables`, only
    fetch and land (the raw asset selected alone)."""
    batch = fetch(source, api, store, periods, team_uuid, run_id)
    # One open of the file for the writes (each still its own transaction), after the fetch.
    with store.session():
        land(store, batch)
        if not tables:
            return batch, None
        # Normalized from the batch as landed, not read back (as a step's batches are).
        result = normalized(source, landed_raw(batch, periods), team_uuid, batch.fetched_at)
        swap(source, store, periods, result, team_uuid)
        return batch, result


def normalized_together(
    source: Source, group: Sequence[Fetched], periods: Sequence[str]
) -> dict[Team, Normalized] | None:
    """A batch of teams normalized in one call, then split by fetch (a snapshot source's rows
    carry theirs as `snapshot_id`, a `together` source's as FETCH): a normalizer's fixed cost
    is most of the work for one team's few rows, paid once per batch instead of once per team.
    Each team's rows carry its own fetch's time as loaded_at, as when it is normalized alone.
    None when anything is wrong or worth a warning, or two teams' targets share a key: then
    each team is normalized alone, so only the team that causes it fails, and its warnings are
    its own."""
    combined = landed_together([f.batch for f in group], periods)
    if combined.targets.duplicated(["target_key", "partition_key"]).any():
        return None
    try:
        result = source.normalize(combined, max(f.batch.fetched_at for f in group))
    except InvalidPayloadError:
        return None
    if result.warnings or source.invariants(combined, result.tables, periods):
        return None
    split = "snapshot_id" if source.snapshot else FETCH
    parts = {
        name: dict(tuple(frame.groupby(split, sort=False))) for name, frame in result.tables.items()
    }
    fetches = dict(tuple(combined.fetches.groupby("fetch_id", sort=False)))
    out = {}
    for fetched in group:
        batch, team_uuid = fetched.batch, fetched.team.uuid
        tables = {}
        for name, frame in result.tables.items():
            rows = _unmarked(source, parts[name].get(batch.fetch_id, frame.iloc[0:0]))
            rows = rows.assign(team_uuid=team_uuid)
            if "loaded_at" in rows:
                rows["loaded_at"] = pd.Timestamp(batch.fetched_at)
            tables[name] = rows
        if source.snapshot:
            tables[SNAPSHOTS] = snapshots_of(
                source, fetches[batch.fetch_id], team_uuid, batch.fetched_at
            )
        out[fetched.team] = Normalized(tables)
    return out


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
        return cls(batch.fetch_id, len(batch.targets), len(batch.pages), batch.requests)


@dataclass(frozen=True)
class TeamLoad:
    """One team's part of a step: the fetch it landed (if it fetched) and the rows it swapped."""

    batch: Landed | None
    result: Normalized | None
    retries: int = 0
    rate_limited: int = 0


@dataclass(frozen=True)
class Fetched:
    """A team's fetch waiting to be written with others."""

    team: Team
    named: str  # how failures name it: `team 'Acme' (uuid) (token 2 of DIGITALOCEAN_TOKENS)`
    batch: RawBatch
    retries: int
    rate_limited: int


class TeamWrites:
    """Teams' fetches written a batch at a time, as they finish fetching (from whichever team
    thread fills the batch, and `flush()` for the rest).

    Each batch: its pages land in one transaction, its teams are normalized in one call where
    the source allows (`normalized_together`; else, or if that call fails, each team on its
    own), and the teams that normalized swap their months in one transaction. Isolation
    holds: a team whose fetch did not add up or whose rows break an invariant fails alone,
    before the swap; if a batch's transaction itself fails, its teams are written one by one,
    so only the team that causes it fails. A failed team keeps its previous rows."""

    def __init__(
        self,
        source: Source,
        store: Warehouse,
        periods: Sequence[str],
        tables: bool,
        size: int,
        done: Callable[[bool], None],
    ) -> None:
        self.source, self.store, self.periods, self.tables = source, store, list(periods), tables
        self.size = max(1, size)
        self._done = done
        self._lock = threading.Lock()
        self._pending: list[Fetched] = []
        self.results: dict[Team, TeamLoad] = {}
        self.failures: list[tuple[str, BaseException]] = []

    def add(self, fetched: Fetched) -> None:
        with self._lock:
            self._pending.append(fetched)
            if len(self._pending) < self.size:
                return
            group, self._pending = self._pending, []
        self._write(group)

    def flush(self) -> None:
        with self._lock:
            group, self._pending = self._pending, []
        self._write(group)

    def _fail(self, fetched: Fetched, error: BaseException) -> None:
        with self._lock:
            self.failures.append((fetched.named, error))
        self._done(False)

    def _write(self, group: list[Fetched]) -> None:
        """Write the group; if the file cannot be had at all (locked, unreadable), every team
        of the group fails, named, and the other groups carry on."""
        if not group:
            return
        try:
            self._write_group(group)
        except (duckdb.Error, RuntimeError, OSError) as exc:
            with self._lock:
                written = set(self.results) | {named for named, _ in self.failures}
            for fetched in group:
                if fetched.team not in written and fetched.named not in written:
                    self._fail(fetched, exc)

    def _write_group(self, group: list[Fetched]) -> None:
        with self.store.session():
            landed = self._land(group)
            good = []
            for fetched in landed:
                error = incomplete(fetched.batch)
                if error is None:
                    good.append(fetched)
                else:
                    self._fail(fetched, error)
            results = self._normalize(good) if self.tables else {f.team: None for f in good}
            swapped = self._swap([f for f in good if f.team in results], results)
        for fetched in swapped:
            load = TeamLoad(
                Landed.of(fetched.batch),
                results[fetched.team],
                fetched.retries,
                fetched.rate_limited,
            )
            with self._lock:
                self.results[fetched.team] = load
            self._done(True)

    def _together(
        self, group: list[Fetched], write: Callable[[list[Fetched]], None]
    ) -> list[Fetched]:
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
        for fetched in group:
            try:
                write([fetched])
                written.append(fetched)
            except (duckdb.Error, EmptiedMonthError) as exc:
                self._fail(fetched, exc)
        return written

    def _land(self, group: list[Fetched]) -> list[Fetched]:
        """Land the group's pages together."""
        return self._together(group, lambda part: self.store.land_raw(*(f.batch for f in part)))

    def _normalize(self, group: list[Fetched]) -> dict[Team, Normalized | None]:
        if (self.source.snapshot or self.source.together) and len(group) > 1:
            together = normalized_together(self.source, group, self.periods)
            if together is not None:
                return together  # type: ignore[return-value]
        results: dict[Team, Normalized | None] = {}
        for fetched in group:
            try:
                raw = landed_raw(fetched.batch, self.periods)
                results[fetched.team] = normalized(
                    self.source, raw, fetched.team.uuid, fetched.batch.fetched_at
                )
            except (RawNotFetchedError, InvalidPayloadError, InvariantError, duckdb.Error) as exc:
                self._fail(fetched, exc)
        return results

    def _swap(self, group: list[Fetched], results: dict[Team, Normalized | None]) -> list[Fetched]:
        """Swap the group's months together."""
        if not self.tables:
            return group

        def write(part: list[Fetched]) -> None:
            rows = {f.team.uuid: results[f.team] for f in part}
            swap_teams(self.source, self.store, self.periods, rows)  # type: ignore[arg-type]

        return self._together(group, write)


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
) -> Outcome[TeamLoad]:
    """Fetch every team's pages, `workers` teams at a time, and land (and, with `tables`, swap)
    them `write_batch` teams per transaction as they finish fetching; each team all or
    nothing, the others unaffected by its failure. `known`: the teams this run already read
    (`teams.identify`)."""
    teams, failures = identify(accounts, store, list(TABLES), log, known, workers)
    progress = TeamsProgress(log, len(teams) + len(failures), source.name)
    for _ in failures:
        progress.done(False)
    writes = TeamWrites(source, store, periods, tables, write_batch, progress.done)
    # A child source's parent targets, every team's in one read (one per team would scan raw
    # once per team).
    parents: dict[str, RawRead] = {}
    if source.parent is not None and teams:
        parents = store.read_teams_targets(
            source.parent.name, [team.uuid for team, _ in teams], periods
        )

    def work(team: Team, api: DigitalOceanClient) -> None:
        # A team's own lines are the step's when it is alone, DEBUG among many.
        api.log = team_log(log, team.name, len(teams))
        try:
            batch = fetch(source, api, store, periods, team.uuid, run_id, parents.get(team.uuid))
        except BaseException:
            progress.done(False)
            raise
        writes.add(Fetched(team, place_of(team), batch, api.stats.retries, api.stats.rate_limited))

    places = {team: account.place for team, account in teams}

    def place_of(team: Team) -> str:
        return f"{team} ({places[team]})"

    fetched = for_each_team(teams, work, failures, workers)
    writes.flush()
    order = {team: n for n, (team, _) in enumerate(teams)}
    results = dict(sorted(writes.results.items(), key=lambda pair: order[pair[0]]))
    return Outcome(results, [*fetched.failures, *writes.failures])


def replay_teams(
    source: Source, store: Warehouse, periods: Sequence[str], *, now: datetime
) -> Outcome[TeamLoad]:
    """Rebuild every team's months that raw holds, from raw alone: zero requests. `now`: the
    rows' loaded_at."""
    uuids = store.raw_teams(source.name, periods)
    if not uuids:
        step = source.raw_asset or source.name
        raise RawNotFetchedError(
            f"no team has a good raw fetch of {source.name} for {periods[0]}…{periods[-1]}: "
            f"materialize {step} first"
        )
    names = store.team_names(uuids)
    teams = [Team(uuid, *names.get(uuid, (uuid, 0)), place="raw") for uuid in uuids]
    outcome: Outcome[TeamLoad] = Outcome({}, [])
    for team in teams:
        try:
            result = replay(source, store, periods, team.uuid, now=now)
            outcome.results[team] = TeamLoad(None, result)
        except (RawNotFetchedError, InvalidPayloadError, InvariantError, EmptiedMonthError) as exc:
            outcome.failures.append((str(team), exc))
    return outcome

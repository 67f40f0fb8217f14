"""The stages of one team's load, the same for every source: fetch → land raw → normalize → swap.

The raw landing is its own transaction and happens before anything is parsed, so a bad value or
a bug in a normalizer loses nothing: fix it and `replay` from raw with zero requests. Each stage
is one team's; `pipeline.engine.batches` runs them for every team of a step, in batches.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from pipeline.api import Collection, DigitalOceanClient, IncompleteFetchError, Progress
from pipeline.sources.base import FETCH, Normalized, RawData, Source, Target, Targets
from pipeline.sources.fields import InvalidPayloadError
from pipeline.warehouse.frames import stacked
from pipeline.warehouse.intervals import IntervalRows
from pipeline.warehouse.raw import PAGE_COLUMNS, TARGET_COLUMNS, RawBatch, RawRead, batch_rows
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.swap import replace_periods

# Every fetch of a snapshot source (the inventory), kept after raw retention lets its pages go.
SNAPSHOTS = "inventory_snapshots"


class RawNotFetchedError(RuntimeError):
    """A month has no successful raw fetch to work from."""


class InvariantError(RuntimeError):
    """The normalized rows break one of the source's invariants (incomplete invoices,
    duplicates, months out of range): nothing is written, the previous rows stay."""


@dataclass
class FetchedPages:
    """One team's fetch while it runs: the pages so far, as rows for `raw.pages`, and why they
    do not add up."""

    pages: list[tuple] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def fetch_index(source: Source, api: DigitalOceanClient, got: FetchedPages) -> Collection | None:
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
    got: FetchedPages,
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
    got: FetchedPages,
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
    got: FetchedPages,
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
        target_rows=[
            (
                t.key,
                t.partition,
                t.status,
                json.dumps(t.entry, ensure_ascii=False) if t.entry is not None else None,
            )
            for t in targets
        ],
        page_rows=got.pages,
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
            parent = store.raw.read(source.parent.name, team_uuid, periods, with_pages=False)
        targets_of_parent = parent_targets(source.parent, parent)
    got = FetchedPages()
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
    found = store.raw.read(source.name, team_uuid, periods)
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
    """A good fetch just landed, as `store.raw.read` would read it back: it is the newest good fetch
    of every month it covers. Reading it back instead would scan every team's pages, once per
    team (a thousand teams: a million page reads per step)."""
    return landed_batches([batch], periods)


def landed_batches(batches: Sequence[RawBatch], periods: Sequence[str]) -> RawData:
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
    targets = _of_batches(batches, "targets").sort_values([order, "partition_key", "target_key"])
    pages = _of_batches(batches, "pages").sort_values(
        [order, "endpoint", "request_key", "page"], na_position="first"
    )
    return RawData(
        periods,
        fetches,
        targets[[*TARGET_COLUMNS, FETCH]].reset_index(drop=True),
        pages[["fetch_id", *PAGE_COLUMNS]].reset_index(drop=True),
    )


def _of_batches(batches: Sequence[RawBatch], part: str) -> pd.DataFrame:
    """The batches' targets (or pages) one after the other, each row marked with its fetch and
    its batch's place (`_batch`): one frame made from every batch's rows."""
    out = batch_rows(batches, part)
    sizes = [len(b.rows(part)) for b in batches]
    out["_batch"] = np.repeat(np.arange(len(batches)), sizes)
    return out


def normalized(source: Source, raw: RawData, team_uuid: str, loaded_at: datetime) -> Normalized:
    """The source's rows from its raw fetch, checked against its invariants, marked with the
    team; nothing is written here."""
    result = source.normalize(raw, loaded_at)
    problems = source.invariants(raw, result.tables, raw.periods)
    if problems:
        raise InvariantError("; ".join(problems) + ". Nothing was written.")
    tables = {
        name: unmarked(source, frame).assign(team_uuid=team_uuid)
        for name, frame in result.tables.items()
    }
    if source.snapshot:
        tables[SNAPSHOTS] = snapshots_of(source, raw.fetches, team_uuid, loaded_at)
    return Normalized(tables, result.warnings)


def unmarked(source: Source, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows without the FETCH a `many_fetches` source marks them with (never written)."""
    return frame.drop(columns=FETCH) if source.many_fetches and FETCH in frame else frame


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
    source: Source,
    store: Warehouse,
    periods: Sequence[str],
    results: dict[str, Normalized],
    tables: dict[str, pd.DataFrame] | None = None,
) -> dict[str, pd.DataFrame]:
    """Replace several teams' rows of the months in every table of the source, and prune their
    raw fetches (RAW_KEEP), in one transaction: one DELETE and one INSERT per table (a
    snapshot source's interval tables: one set-based merge of every team's snapshot).
    `tables`: the same rows as `results`' already in one frame a table (a batch normalized in
    one call), so they are not stacked again. The rows written, one frame a table."""
    teams = list(results)
    names = [t.name for t in source.tables] + ([SNAPSHOTS] if source.snapshot else [])
    rows = tables or {
        name: stacked([results[team].tables[name] for team in teams]) for name in names
    }
    replace_periods(
        store,
        teams,
        periods,
        {t.name: (rows[t.name], t.partition_column) for t in source.tables if t.write == "months"},
        {
            t.name: (rows[t.name], ("team_uuid", *t.primary_key))
            for t in source.tables
            if t.write == "merge"
        },
        snapshots=rows[SNAPSHOTS] if source.snapshot else None,
        intervals={
            t.name: IntervalRows(rows[t.name], t.primary_key)
            for t in source.tables
            if t.write == "intervals"
        },
        raw_source=source.name,
        closed={t.name: t.closed for t in source.tables if t.write == "months" and t.closed},
    )
    return {name: rows[name] for name in names}


def replay(
    source: Source, store: Warehouse, periods: Sequence[str], team_uuid: str, *, now: datetime
) -> Normalized:
    """Normalize and swap one team's months from raw alone: zero requests. `now`: the rows'
    loaded_at."""
    result = normalize(source, store, periods, team_uuid, now=now)
    swap(source, store, periods, result, team_uuid)
    return result

"""A batch of teams' fetches normalized in one call, then cut by team.

A normalizer's fixed cost (its frames, its checks) was most of the work for one team's few
rows; a batch pays it once. `BatchWriter` (`batches.py`) calls `normalized_batch` first and
normalizes each team alone when it returns None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.engine.stages import SNAPSHOTS, landed_batches, unmarked
from pipeline.sources.base import FETCH, Normalized, Source
from pipeline.sources.fields import InvalidPayloadError
from pipeline.teams import Team
from pipeline.warehouse.raw import RawBatch


@dataclass(frozen=True)
class QueuedFetch:
    """A team's fetch, done, queued to be written with the other teams of its batch."""

    team: Team
    label: str  # how failures name it: `team 'Acme' (uuid) (token 2 of DIGITALOCEAN_TOKENS)`
    batch: RawBatch
    retries: int
    rate_limited: int


# Every table's rows of a batch of teams, in one frame each, marked with their team (and
# `inventory_snapshots` for a snapshot source): what one swap writes.
Tables = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class BatchNormalized:
    """A batch of teams normalized in one call: each team's rows, and the whole batch's."""

    teams: dict[Team, Normalized]
    tables: Tables


def normalized_batch(
    source: Source, group: Sequence[QueuedFetch], periods: Sequence[str]
) -> BatchNormalized | None:
    """A batch of teams normalized in one call, then split by fetch (a snapshot source's rows
    carry theirs as `snapshot_id`, a `many_fetches` source's as FETCH): a normalizer's fixed
    cost is most of the work for one team's few rows, paid once per batch instead of once per
    team. Each team's rows carry its own fetch's time as loaded_at, as when it is normalized
    alone. None when anything is wrong or worth a warning, or two teams' targets share a key:
    then each team is normalized alone, so only the team that causes it fails, and its warnings
    are its own."""
    combined = landed_batches([f.batch for f in group], periods)
    if combined.targets.duplicated(["target_key", "partition_key"]).any():
        return None
    try:
        result = source.normalize(combined, max(f.batch.fetched_at for f in group))
    except InvalidPayloadError:
        return None
    if result.warnings or source.invariants(combined, result.tables, periods):
        return None
    marked = _by_team(source, group, result.tables)
    if marked is None:
        return None
    whole, parts = marked
    if source.snapshot:
        whole[SNAPSHOTS], parts[SNAPSHOTS] = _snapshots_by_team(source, group, combined.fetches)
    teams = {
        queued.team: Normalized({name: rows[n] for name, rows in parts.items()})
        for n, queued in enumerate(group)
    }
    return BatchNormalized(teams, whole)


def _by_team(
    source: Source, group: Sequence[QueuedFetch], tables: dict[str, pd.DataFrame]
) -> tuple[Tables, dict[str, list[pd.DataFrame]]] | None:
    """Each table's rows marked with their team and their fetch's time (loaded_at), in the
    group's order, whole and cut by team: the marking done once on the whole batch's rows, the
    cut one slice a team. None when a row's fetch is not one of the group's."""
    split = "snapshot_id" if source.snapshot else FETCH
    fetch_ids = pd.Index([f.batch.fetch_id for f in group])
    uuids = np.array([f.team.uuid for f in group], dtype=object)
    fetched_at = pd.DatetimeIndex([pd.Timestamp(f.batch.fetched_at) for f in group])
    whole, parts = {}, {}
    for name, frame in tables.items():
        codes = fetch_ids.get_indexer(frame[split].to_numpy())
        if (codes < 0).any():
            return None
        order = np.argsort(codes, kind="stable")
        codes = codes[order]
        rows = unmarked(source, frame.take(order)).assign(team_uuid=uuids[codes])
        if "loaded_at" in rows:
            rows["loaded_at"] = fetched_at.take(codes)
        rows = rows.reset_index(drop=True)
        edges = np.searchsorted(codes, np.arange(len(group) + 1))
        whole[name] = rows
        parts[name] = [rows.iloc[lo:hi] for lo, hi in zip(edges, edges[1:], strict=False)]
    return whole, parts


def _snapshots_by_team(
    source: Source, group: Sequence[QueuedFetch], fetches: pd.DataFrame
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """`snapshots_of` every team of the group, made as one frame and cut one slice a team, in
    the group's order (one small frame a team cost about 2 ms each, most of a batch's
    normalization for a snapshot list)."""
    taken = fetches.drop_duplicates("fetch_id")
    codes = pd.Index([f.batch.fetch_id for f in group]).get_indexer(taken["fetch_id"].to_numpy())
    order = np.argsort(codes, kind="stable")
    codes, taken = codes[order], taken.take(order)
    fetched_at = pd.DatetimeIndex([pd.Timestamp(f.batch.fetched_at) for f in group])
    frame = pd.DataFrame(
        {
            "team_uuid": np.array([f.team.uuid for f in group], dtype=object)[codes],
            "source": source.name,
            "snapshot_id": taken["fetch_id"].to_numpy(),
            "snapshot_at": pd.to_datetime(taken["fetched_at"].to_numpy(), utc=True),
            "loaded_at": fetched_at.take(codes),
        }
    )
    edges = np.searchsorted(codes, np.arange(len(group) + 1))
    return frame, [frame.iloc[lo:hi] for lo, hi in zip(edges, edges[1:], strict=False)]

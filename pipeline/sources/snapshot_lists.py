"""What every inventory list shares: a list read once per run as a snapshot, its rows with the
snapshot they came from, the common resource columns (id, name, region, status, project, tags),
and `inventory_source`, which declares one list (path, record key, scope, its own columns).

The tables keep each state of a resource once, with the snapshots it held in (valid_from,
valid_to; `warehouse.intervals`), so an unchanged account does not grow them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from pipeline.api import LINKS
from pipeline.sources.base import (
    Endpoint,
    Normalized,
    RawData,
    Source,
    Table,
)
from pipeline.sources.fields import PLACE, InvalidPayloadError, records, text, timestamp, where

SNAPSHOT_COLUMNS = ["snapshot_id", "snapshot_at", "snapshot_month"]
# The tables keep each state once, with the snapshots it held in (valid_from, valid_to); the
# month it was first read is each export folder.
INTERVAL_MONTH = "valid_from_month"
RESOURCE_COLUMNS = [
    *SNAPSHOT_COLUMNS,
    "resource_id",
    "name",
    "region",
    "status",
    "project_id",
    "tags",
    "created_at",
    "loaded_at",
]


def _inner(value: Any, key: str) -> Any:
    """A value some lists nest: a region is a slug, or (droplets, volumes) an object with one;
    a status is a string, or (Kubernetes) an object with a `state`."""
    return value.get(key) if isinstance(value, dict) else value


def id_text(value: Any) -> Any:
    """Ids as text: droplets' are integers, the others uuids; invoices carry both as strings."""
    if isinstance(value, bool) or value is None:
        return value
    return str(value) if isinstance(value, int | str) else value


def _tags(frame: pd.DataFrame, field: str, problems: list[str]) -> pd.Series:
    """A list of tag strings as received, in the API's order; absent is no tags."""
    if field not in frame.columns:
        return pd.Series([[] for _ in range(len(frame))], index=frame.index, dtype=object)
    col = frame[field]
    bad = col.map(
        lambda v: (
            v is not None
            and not (isinstance(v, list) and all(isinstance(t, str) for t in v))
            and not (isinstance(v, float) and pd.isna(v))
        )
    )
    problems += where(frame, bad, field, "is not a list of tag strings")
    return col.map(lambda v: list(v) if isinstance(v, list) else [])


def snapshot_rows(raw: RawData, endpoint: str, key: str, noun: str) -> pd.DataFrame:
    """Every record of the endpoint's pages with the snapshot (fetch) it was read in."""
    rows = records(raw.pages_of(endpoint), key)
    taken = raw.fetches.drop_duplicates("fetch_id").set_index("fetch_id")["fetched_at"]
    if rows.empty:
        return pd.DataFrame(columns=[*rows.columns, *SNAPSHOT_COLUMNS, PLACE])
    rows["snapshot_id"] = rows["fetch_id"]
    rows["snapshot_at"] = pd.to_datetime(rows["fetch_id"].map(taken), utc=True)
    rows["snapshot_month"] = rows["snapshot_at"].dt.strftime("%Y-%m").astype("string")
    ids = rows["id"] if "id" in rows.columns else pd.Series(None, index=rows.index)
    rows[PLACE] = [
        f"{noun} {i!r} (snapshot {f})" for i, f in zip(ids, rows["fetch_id"], strict=True)
    ]
    return rows


def resource_frame(
    rows: pd.DataFrame,
    loaded_at: datetime,
    problems: list[str],
    project_field: str | None,
    id_field: str = "id",
) -> pd.DataFrame:
    """The columns every kind of resource has, checked: an id is required, tags are strings."""
    out = pd.DataFrame(index=rows.index)
    for column in SNAPSHOT_COLUMNS:
        out[column] = rows[column]
    ids = (
        rows[id_field].map(id_text)
        if id_field in rows.columns
        else pd.Series(None, index=rows.index)
    )
    out["resource_id"] = text(rows.assign(**{id_field: ids}), id_field, problems)
    problems += where(
        rows.assign(**{id_field: ids}), out["resource_id"].isna(), id_field, "is missing"
    )
    out["name"] = text(rows, "name", problems)
    for field, key in (("region", "slug"), ("status", "state")):
        nested = rows[field].map(lambda v, k=key: _inner(v, k)) if field in rows.columns else None
        out[field] = text(rows.assign(**{field: nested}), field, problems)
    out["project_id"] = (
        text(rows, project_field, problems)
        if project_field
        else pd.Series(pd.NA, index=rows.index, dtype="string")
    )
    out["tags"] = _tags(rows, "tags", problems)
    out["created_at"] = timestamp(rows, "created_at", problems)
    out["loaded_at"] = pd.Timestamp(loaded_at)
    return out


# A list's own columns beyond the common ones (what makes a resource idle): column → its values.
Columns = Callable[[pd.DataFrame, list[str]], dict[str, pd.Series]]


def id_list(rows: pd.DataFrame, field: str, problems: list[str]) -> pd.Series:
    """A list of ids (`droplet_ids`) as text, in the API's order; absent or null is NULL."""
    if field not in rows.columns:
        return pd.Series([None] * len(rows), index=rows.index, dtype=object)
    col = rows[field]
    bad = col.map(
        lambda v: (
            v is not None
            and not (isinstance(v, float) and pd.isna(v))
            and not (
                isinstance(v, list)
                and all(isinstance(i, int | str) and not isinstance(i, bool) for i in v)
            )
        )
    )
    problems += where(rows, bad, field, "is not a list of ids")
    return col.map(lambda v: [str(i) for i in v] if isinstance(v, list) else None)


def resources_normalizer(
    endpoint: str,
    key: str,
    table: str,
    noun: str,
    project_field: str | None = None,
    extra: Callable[[pd.DataFrame, datetime, list[str]], dict[str, pd.DataFrame]] | None = None,
    *,
    id_field: str = "id",
    columns: Columns | None = None,
) -> Callable[[RawData, datetime], Normalized]:
    """A normalizer for one list of resources: one row per resource and snapshot."""

    def normalize(raw: RawData, loaded_at: datetime) -> Normalized:
        rows = snapshot_rows(raw, endpoint, key, noun)
        problems: list[str] = []
        out = resource_frame(rows, loaded_at, problems, project_field, id_field)
        own = columns(rows, problems) if columns else {}
        for column, values in own.items():
            out[column] = values
        more = extra(rows, loaded_at, problems) if extra else {}
        if problems:
            raise InvalidPayloadError(problems)
        out = out.drop_duplicates(["snapshot_id", "resource_id"])
        names = [*RESOURCE_COLUMNS, *(c for c in own if c not in RESOURCE_COLUMNS)]
        return Normalized({table: out[names].reset_index(drop=True), **more})

    return normalize


def resource_table(name: str, what: str) -> Table:
    return Table(
        name,
        ("resource_id",),
        f"One row per state of a {what} (id, name, region, status, project, tags) and the "
        "snapshots it held in: valid_from, valid_to.",
        noun=name.replace("_", " "),
        partition_column=INTERVAL_MONTH,
        write="intervals",
    )


def inventory_source(
    name: str,
    path: str,
    key: str,
    scope: str,
    what: str,
    *,
    project_field: str | None = None,
    paged: bool = True,
    extra_tables: tuple[Table, ...] = (),
    extra: Callable[[pd.DataFrame, datetime, list[str]], dict[str, pd.DataFrame]] | None = None,
    id_field: str = "id",
    columns: Columns | None = None,
) -> Source:
    """One list of resources, declared: its path, record key, scope and table."""
    return Source(
        name=name,
        description=f"The team's {what}s as they are at each run (a snapshot per fetch).",
        index=Endpoint(name, path, LINKS, records=key, noun=f"{what}s", scope=scope),
        normalize=resources_normalizer(
            name, key, name, what, project_field, extra, id_field=id_field, columns=columns
        ),
        tables=(resource_table(name, what), *extra_tables),
        snapshot=True,
        kinds=frozenset({"duckdb", "pandas", "digitalocean"}),
    )

"""The resource inventory: projects and what is in them, droplets, volumes, Kubernetes clusters
with their node pools, database clusters, load balancers, reserved IPs and snapshots, as the
team has them now.

Invoices name resources (`resource_id`, `resource_uuid`); tags and projects live on the
resources, and only their current state is served. So each list is read once per run as a
snapshot (one per fetch, `inventory_snapshots` says when): a closed month is allocated with
the inventory it had, not today's. The tables keep each state of a resource once, with the
snapshots it held in (`warehouse.intervals`), so an unchanged account does not grow them.
Each kind is its own source with its own token scope, so a token that lacks one scope loses
that list only.
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
    Target,
    Targets,
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


def _id_text(value: Any) -> Any:
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
        rows[id_field].map(_id_text)
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


# -- Kubernetes: the clusters, and their node pools (whose nodes are droplets) ---------------
NODE_POOL_COLUMNS = [
    *SNAPSHOT_COLUMNS,
    "cluster_id",
    "node_pool_id",
    "name",
    "size",
    "count",
    "tags",
    "droplet_ids",
    "loaded_at",
]


def node_pools(rows: pd.DataFrame, loaded_at: datetime, problems: list[str]) -> dict:
    """Each cluster's node pools, with the droplet ids of their nodes."""
    pools: list[dict[str, Any]] = []
    for row in rows.to_dict("records"):
        for pool in row.get("node_pools") or []:
            if not isinstance(pool, dict):
                continue
            nodes = [n for n in pool.get("nodes") or [] if isinstance(n, dict)]
            pools.append(
                {
                    **{c: row[c] for c in SNAPSHOT_COLUMNS},
                    "cluster_id": _id_text(row.get("id")),
                    "node_pool_id": _id_text(pool.get("id")),
                    "name": pool.get("name"),
                    "size": pool.get("size"),
                    "count": pool.get("count") if isinstance(pool.get("count"), int) else None,
                    "tags": [t for t in pool.get("tags") or [] if isinstance(t, str)],
                    "droplet_ids": [
                        str(n["droplet_id"]) for n in nodes if n.get("droplet_id") is not None
                    ],
                    PLACE: f"node pool {pool.get('id')!r} of cluster {row.get('id')!r}",
                }
            )
    frame = pd.DataFrame(pools, columns=[*NODE_POOL_COLUMNS[:-1], PLACE])
    problems += where(frame, frame["node_pool_id"].isna(), "node_pool_id", "is missing")
    frame["count"] = frame["count"].astype("Int32")
    frame["loaded_at"] = pd.Timestamp(loaded_at)
    frame = frame.drop_duplicates(["snapshot_id", "node_pool_id"])
    return {"kubernetes_node_pools": frame[NODE_POOL_COLUMNS].reset_index(drop=True)}


NODE_POOLS = Table(
    "kubernetes_node_pools",
    ("node_pool_id",),
    "One row per state of a Kubernetes node pool (its cluster, size, count, tags and the "
    "droplets that are its nodes) and the snapshots it held in: valid_from, valid_to.",
    noun="node pools",
    partition_column=INTERVAL_MONTH,
    write="intervals",
)


def attached(rows: pd.DataFrame, problems: list[str]) -> dict[str, pd.Series]:
    """A volume's droplets: none is an unattached volume."""
    return {"droplet_ids": id_list(rows, "droplet_ids", problems)}


def balanced(rows: pd.DataFrame, problems: list[str]) -> dict[str, pd.Series]:
    """A load balancer's targets: its droplets, and the tag that selects droplets (`tag`)."""
    return {
        "droplet_ids": id_list(rows, "droplet_ids", problems),
        "target_tag": text(rows, "tag", problems),
    }


def assigned_droplet(rows: pd.DataFrame, problems: list[str]) -> dict[str, pd.Series]:
    """A reserved IP's droplet (the whole droplet object, or null when assigned to nothing)."""
    if "droplet" not in rows.columns:
        return {"droplet_id": pd.Series(pd.NA, index=rows.index, dtype="string")}
    droplet = rows["droplet"]
    ids = droplet.map(lambda v: _id_text(v.get("id")) if isinstance(v, dict) else None)
    bad = droplet.map(lambda v: v is not None and not isinstance(v, dict) and not pd.isna(v))
    problems += where(rows, bad, "droplet", "is not a droplet object")
    return {"droplet_id": text(rows.assign(droplet=ids), "droplet", problems)}


def snapshot_origin(rows: pd.DataFrame, problems: list[str]) -> dict[str, pd.Series]:
    """A snapshot's regions (the first is its `region`), what it was taken of, and its size."""
    regions = rows["regions"] if "regions" in rows.columns else pd.Series(None, index=rows.index)
    bad = regions.map(
        lambda v: v is not None and not (isinstance(v, list) and all(isinstance(r, str) for r in v))
    )
    problems += where(rows.assign(regions=regions), bad, "regions", "is not a list of slugs")
    first = regions.map(lambda v: v[0] if isinstance(v, list) and v else None)
    size = rows["size_gigabytes"] if "size_gigabytes" in rows.columns else None
    sizes = (
        pd.Series(pd.NA, index=rows.index, dtype="Float64")
        if size is None
        else pd.to_numeric(
            size.map(
                lambda v: v if isinstance(v, int | float) and not isinstance(v, bool) else None
            ),
            errors="coerce",
        ).astype("Float64")
    )
    if size is not None:
        problems += where(rows, size.notna() & sizes.isna(), "size_gigabytes", "is not a number")
    return {
        "region": text(rows.assign(regions=first), "regions", problems),
        "regions": regions.map(lambda v: list(v) if isinstance(v, list) else []),
        "origin_id": text(
            rows.assign(
                resource_id=rows.get("resource_id", pd.Series(None, index=rows.index)).map(_id_text)
            ),
            "resource_id",
            problems,
        ),
        "origin_type": text(rows, "resource_type", problems),
        "size_gigabytes": sizes,
    }


DROPLETS = inventory_source("droplets", "/v2/droplets", "droplets", "droplet:read", "droplet")
VOLUMES = inventory_source(
    "volumes", "/v2/volumes", "volumes", "block_storage:read", "volume", columns=attached
)
KUBERNETES = inventory_source(
    "kubernetes_clusters",
    "/v2/kubernetes/clusters",
    "kubernetes_clusters",
    "kubernetes:read",
    "Kubernetes cluster",
    extra_tables=(NODE_POOLS,),
    extra=node_pools,
)
DATABASES = inventory_source(
    "database_clusters",
    "/v2/databases",
    "databases",
    "database:read",
    "database cluster",
    project_field="project_id",
)
LOAD_BALANCERS = inventory_source(
    "load_balancers",
    "/v2/load_balancers",
    "load_balancers",
    "load_balancer:read",
    "load balancer",
    project_field="project_id",
    columns=balanced,
)
RESERVED_IPS = inventory_source(
    "reserved_ips",
    "/v2/reserved_ips",
    "reserved_ips",
    "reserved_ip:read",
    "reserved IP",
    project_field="project_id",
    id_field="ip",
    columns=assigned_droplet,
)
SNAPSHOTS = inventory_source(
    "snapshots", "/v2/snapshots", "snapshots", "snapshot:read", "snapshot", columns=snapshot_origin
)


# -- Projects, and the resources assigned to each -------------------------------------------
PROJECT_COLUMNS = [
    *SNAPSHOT_COLUMNS,
    "project_id",
    "name",
    "description",
    "purpose",
    "environment",
    "is_default",
    "created_at",
    "loaded_at",
]
ASSIGNMENT_COLUMNS = [
    *SNAPSHOT_COLUMNS,
    "project_id",
    "urn",
    "resource_kind",
    "resource_id",
    "assigned_at",
    "status",
    "loaded_at",
]


def project_targets(targets: Targets) -> list[Target]:
    """Every project of the list: its resources are read next."""
    assert targets.index is not None
    found = []
    for entry in targets.index.records:
        project_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(project_id, str) or not project_id:
            raise InvalidPayloadError([f"project list entry {entry!r}: field 'id' is missing"])
        found.append(
            Target(
                key=project_id,
                partition=targets.periods[-1],
                label=f"project {entry.get('name') or project_id}",
            )
        )
    return found


def normalize_projects(raw: RawData, loaded_at: datetime) -> Normalized:
    problems: list[str] = []
    rows = snapshot_rows(raw, "projects", "projects", "project")
    projects = pd.DataFrame(index=rows.index)
    for column in SNAPSHOT_COLUMNS:
        projects[column] = rows[column]
    projects["project_id"] = text(rows, "id", problems)
    problems += where(rows, projects["project_id"].isna(), "id", "is missing")
    for field in ("name", "description", "purpose", "environment"):
        projects[field] = text(rows, field, problems)
    defaults = rows["is_default"] if "is_default" in rows.columns else None
    projects["is_default"] = (
        defaults.map(lambda v: v if isinstance(v, bool) else None).astype("boolean")
        if defaults is not None
        else pd.Series(pd.NA, index=rows.index, dtype="boolean")
    )
    projects["created_at"] = timestamp(rows, "created_at", problems)
    projects["loaded_at"] = pd.Timestamp(loaded_at)

    assigned = snapshot_rows(raw, "project_resources", "resources", "project resource")
    out = pd.DataFrame(index=assigned.index)
    for column in SNAPSHOT_COLUMNS:
        out[column] = assigned[column]
    out["project_id"] = assigned["request_key"].astype("string") if len(assigned) else None
    out["urn"] = text(assigned, "urn", problems)
    problems += where(assigned, out["urn"].isna(), "urn", "is missing")
    # `do:<kind>:<id>`; the id may itself hold colons, so split at the first two only.
    parts = [u.split(":", 2) if isinstance(u, str) else [] for u in out["urn"]]
    good = [len(p) == 3 and p[0] == "do" and bool(p[1]) and bool(p[2]) for p in parts]
    out["resource_kind"] = pd.array(
        [p[1] if g else None for p, g in zip(parts, good, strict=True)], dtype="string"
    )
    out["resource_id"] = pd.array(
        [p[2] if g else None for p, g in zip(parts, good, strict=True)], dtype="string"
    )
    bad_urn = out["urn"].notna() & ~pd.Series(good, index=out.index, dtype=bool)
    problems += where(
        assigned.assign(urn=out["urn"]), bad_urn, "urn", "is not a URN like 'do:droplet:1'"
    )
    out["assigned_at"] = timestamp(assigned, "assigned_at", problems)
    out["status"] = text(assigned, "status", problems)
    out["loaded_at"] = pd.Timestamp(loaded_at)
    if problems:
        raise InvalidPayloadError(problems)
    return Normalized(
        {
            "projects": projects.drop_duplicates(["snapshot_id", "project_id"])[
                PROJECT_COLUMNS
            ].reset_index(drop=True),
            "project_resources": out.drop_duplicates(["snapshot_id", "urn"])[
                ASSIGNMENT_COLUMNS
            ].reset_index(drop=True),
        }
    )


PROJECTS = Source(
    name="projects",
    description="The team's projects and the resources assigned to each, at each run.",
    index=Endpoint(
        "projects", "/v2/projects", LINKS, records="projects", noun="projects", scope="project:read"
    ),
    endpoint=Endpoint(
        "project_resources",
        "/v2/projects/{key}/resources",
        LINKS,
        records="resources",
        noun="resources",
        scope="project:read",
    ),
    targets=project_targets,
    target_noun="project",
    progress_name="project resources",
    normalize=normalize_projects,
    tables=(
        Table(
            "projects",
            ("project_id",),
            "One row per state of a project (name, purpose, environment, default) and the "
            "snapshots it held in: valid_from, valid_to.",
            noun="projects",
            partition_column=INTERVAL_MONTH,
            write="intervals",
        ),
        Table(
            "project_resources",
            ("urn",),
            "One row per assignment of a resource to a project (the URN `do:<kind>:<id>`) and "
            "the snapshots it held in: valid_from, valid_to.",
            noun="assignments",
            partition_column=INTERVAL_MONTH,
            write="intervals",
        ),
    ),
    snapshot=True,
    kinds=frozenset({"duckdb", "pandas", "digitalocean"}),
)

INVENTORY: tuple[Source, ...] = (
    PROJECTS,
    DROPLETS,
    VOLUMES,
    KUBERNETES,
    DATABASES,
    LOAD_BALANCERS,
    RESERVED_IPS,
    SNAPSHOTS,
)
# The scope each inventory list needs, by source: what `make doctor` checks too.
INVENTORY_SCOPES: dict[str, str] = {s.name: s.index.scope for s in INVENTORY if s.index is not None}

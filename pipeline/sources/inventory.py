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

from datetime import datetime
from typing import Any

import pandas as pd

from pipeline.sources.base import Source, Table
from pipeline.sources.fields import PLACE, text, where
from pipeline.sources.projects import PROJECTS
from pipeline.sources.snapshot_lists import (
    INTERVAL_MONTH,
    SNAPSHOT_COLUMNS,
    id_list,
    id_text,
    inventory_source,
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
                    "cluster_id": id_text(row.get("id")),
                    "node_pool_id": id_text(pool.get("id")),
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
    ids = droplet.map(lambda v: id_text(v.get("id")) if isinstance(v, dict) else None)
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
                resource_id=rows.get("resource_id", pd.Series(None, index=rows.index)).map(id_text)
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

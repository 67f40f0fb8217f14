"""The sandbox's resource inventory, built from the invoice items it serves.

Items point at resources by `resource_id` (droplets) and `resource_uuid` (volumes, clusters,
databases, load balancers). About a quarter of those resources are deleted since (the items
stay, the resource is gone from the lists); items of other products point at nothing listed.
Tags mix `key:value`, plain keys, a plain key beside a valued one, DOKS's own `k8s` and
`k8s:<cluster id>`, and non-ASCII values; one project has no resources.

Some resources are idle, as `idle_resources` finds them (`plant_idle`): every fifth volume is
attached to no droplet, every fourth load balancer has neither droplets nor a `tag` (absent or
empty), the last droplet not in a node pool is powered off, two of four reserved IPs are assigned
to nothing, and the snapshots (of snapshot ids the items name, a quarter deleted since) are of
every age in `IDLE_AGES`, from days to over a year, two exactly at the default limit.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

NAMESPACE = uuid.UUID("0b7e4d2a-5c3f-4e1b-9a8d-77665544aa11")
DELETED_SHARE = 0.25
# By the products whose items name the resource, and the field that names it.
KINDS = {
    "Droplets": ("droplets", "resource_id"),
    "Backups": ("droplets", "resource_id"),
    "Volumes": ("volumes", "resource_uuid"),
    "Kubernetes Clusters": ("kubernetes_clusters", "resource_uuid"),
    "Managed Databases": ("databases", "resource_uuid"),
    "Load Balancers": ("load_balancers", "resource_uuid"),
}
# Snapshots are listed apart (their own seed), so the other lists stay as they were.
SNAPSHOT_PRODUCT = "Snapshots"
# A snapshot's age in days when its list is generated, by its place in the list, in turn: the
# default limit (SNAPSHOT_MAX_AGE_DAYS, 90) is among them, exactly.
IDLE_AGES = (3, 45, 90, 91, 120, 400)
RESERVED_IPS = 4
# The sample lists the first this many snapshots still kept, two of each age.
SNAPSHOTS = 2 * len(IDLE_AGES)
URN_KIND = {
    "droplets": "droplet",
    "volumes": "volume",
    "kubernetes_clusters": "kubernetes",
    "databases": "dbaas",
    "load_balancers": "loadbalancer",
}
TAG_SETS = [
    ["env:prod", "team:web"],
    ["env:staging", "team:data", "billing"],
    ["env:prod", "owner:Zoë", "env"],  # the plain `env` loses to `env:prod`
    ["team:データ", "cost-center:東京-42"],
    ["env:dev"],
    ["billing"],  # a plain tag only: billing = 'true'
    [],
    [],
]
REGIONS = ["nyc3", "fra1", "sgp1", "ams3"]
EMPTY_PROJECT = "Archive (empty)"


@dataclass
class Inventory:
    """What the inventory lists serve, by record key, and each project's resources."""

    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    project_resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def resources(self, key: str) -> list[dict[str, Any]]:
        return self.lists.get(key, [])


def _region(kind: str, slug: str) -> Any:
    """Droplets and volumes give their region as an object, the others as a slug."""
    return {"slug": slug, "name": slug.upper()} if kind in ("droplets", "volumes") else slug


def build_inventory(
    seed: int,
    items: dict[str, list[dict[str, Any]]],
    created: str,
    now: datetime,
) -> Inventory:
    """The team's resources as of `now`, from every item it was billed for."""
    rng = random.Random(f"{seed}:inventory")
    first_project: dict[tuple[str, str], str | None] = {}
    for month_items in items.values():
        for item in month_items:
            kind_field = KINDS.get(item.get("product", ""))
            if kind_field is None or kind_field[1] not in item:
                continue
            key = (kind_field[0], item[kind_field[1]])
            first_project.setdefault(key, item.get("project_name") or None)
    names = sorted({p for p in first_project.values() if p and p != "default"})
    projects = [
        {
            "id": str(uuid.uuid5(NAMESPACE, f"{seed}:project:{name}")),
            "owner_uuid": str(uuid.uuid5(NAMESPACE, f"{seed}:owner")),
            "owner_id": 258992,
            "name": name,
            "description": f"{name} resources",
            "purpose": "Web Application",
            "environment": "Production" if n % 2 == 0 else "Development",
            "is_default": name == "default",
            "created_at": created,
            "updated_at": created,
        }
        for n, name in enumerate(["default", *names, EMPTY_PROJECT])
    ]
    project_ids = {p["name"]: p["id"] for p in projects}
    inventory = Inventory(
        lists={k: [] for k in URN_KIND}
        | {"projects": projects, "reserved_ips": [], "snapshots": []},
        project_resources={p["id"]: [] for p in projects},
    )
    for (kind, resource), project in sorted(first_project.items()):
        if rng.random() < DELETED_SHARE:
            continue  # deleted since: its items stay on the invoices
        region = rng.choice(REGIONS)
        n = len(inventory.lists[kind])
        record: dict[str, Any] = {
            "id": int(resource) if kind == "droplets" else resource,
            "name": f"{URN_KIND[kind]}-{seed}-{n}",
            "region": _region(kind, region),
            "status": "active" if kind != "kubernetes_clusters" else None,
            "created_at": created,
            "tags": list(rng.choice(TAG_SETS)),
        }
        project_id = project_ids.get(project or "default", project_ids["default"])
        if kind in ("databases", "load_balancers"):
            record["project_id"] = project_id
        if kind == "load_balancers":
            # Its `tag` picks the droplets it balances; it is not the balancer's own tag.
            del record["tags"]
            record["tag"] = "web"
        if kind == "kubernetes_clusters":
            record["status"] = {"state": "running"}
            record["tags"] = ["k8s", f"k8s:{resource}", *record["tags"]]
        inventory.lists[kind].append(record)
        inventory.project_resources[project_id].append(
            {
                "urn": f"do:{URN_KIND[kind]}:{resource}",
                "assigned_at": created,
                "links": {"self": f"https://api.digitalocean.com/v2/{kind}/{resource}"},
                "status": "ok",
            }
        )
    _node_pools(inventory)
    plant_idle(inventory, seed)
    inventory.lists["snapshots"] = _snapshots(seed, items, now)
    return inventory


def plant_idle(inventory: Inventory, seed: int) -> None:
    """Attach volumes and load balancers to live droplets, power one droplet off, reserve IPs:
    idle resources of every kind but snapshots, by place in their list (no random draw, so the
    other lists stay as they were)."""
    lists = inventory.lists
    nodes = {
        n["droplet_id"]
        for c in lists["kubernetes_clusters"]
        for p in c["node_pools"]
        for n in p["nodes"]
    }
    droplets = [d for d in lists["droplets"] if str(d["id"]) not in nodes] or lists["droplets"]
    if droplets:
        droplets[-1]["status"] = "off"

    def droplet(n: int) -> list[int]:
        return [droplets[n % len(droplets)]["id"]] if droplets else []

    for n, volume in enumerate(lists["volumes"]):
        volume["droplet_ids"] = [] if n % 5 == 4 else droplet(n)
    for n, balancer in enumerate(lists["load_balancers"]):
        if n % 4 == 3:  # neither droplets nor a tag: absent, then empty, in turn
            balancer["droplet_ids"] = []
            if n % 8 == 3:
                del balancer["tag"]
            else:
                balancer["tag"] = ""
        elif n % 2 == 0:  # the tag picks its droplets
            balancer["droplet_ids"] = []
        else:
            balancer["droplet_ids"] = droplet(n)
            balancer["tag"] = ""
    for n in range(RESERVED_IPS):
        region = REGIONS[n % len(REGIONS)]
        assigned = copy.deepcopy(droplets[n % len(droplets)]) if droplets and n % 2 == 0 else None
        lists["reserved_ips"].append(
            {
                "ip": f"45.{seed // 256 % 256}.{seed % 256}.{10 + n}",
                "region": {
                    "name": region.upper(),
                    "slug": region,
                    "features": ["reserved_ips"],
                    "available": True,
                    "sizes": ["s-1vcpu-1gb"],
                },
                "droplet": assigned,
                "locked": False,
                "project_id": inventory.lists["projects"][0]["id"],
            }
        )


def _snapshots(seed: int, items: dict[str, list[dict[str, Any]]], now: datetime) -> list[dict]:
    """A snapshot for each of the first SNAPSHOTS snapshot ids the items name (a quarter deleted
    since), of the ages of IDLE_AGES in turn, created that many days before `now`, to the
    second."""
    rng = random.Random(f"{seed}:snapshots")
    named = sorted(
        {
            item["resource_uuid"]
            for month_items in items.values()
            for item in month_items
            if item.get("product") == SNAPSHOT_PRODUCT and "resource_uuid" in item
        }
    )
    taken = now.replace(microsecond=0)
    found: list[dict[str, Any]] = []
    for snapshot_id in named:
        if rng.random() < DELETED_SHARE:
            continue
        if len(found) == SNAPSHOTS:
            break
        n = len(found)
        kind = "droplet" if n % 2 == 0 else "volume"
        regions = [REGIONS[n % len(REGIONS)], REGIONS[(n + 1) % len(REGIONS)]][: 1 + n % 2]
        found.append(
            {
                "id": snapshot_id,
                "name": f"snapshot-{seed}-{n}",
                "created_at": (taken - timedelta(days=IDLE_AGES[n % len(IDLE_AGES)])).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "regions": regions,
                "min_disk_size": 25,
                "size_gigabytes": round(1.5 + n * 0.75, 2),
                "resource_id": str(seed * 10_000_000 + 1_000 + n),
                "resource_type": kind,
                "tags": ["env:prod"] if n % 3 == 0 else [],
            }
        )
    return found


def _node_pools(inventory: Inventory) -> None:
    """Each cluster gets a pool whose nodes are some of the live droplets, tagged as DOKS tags
    its nodes (`k8s`, `k8s:<cluster id>`, `k8s:worker`, then the pool's tags)."""
    droplets = inventory.lists["droplets"]
    for n, cluster in enumerate(inventory.lists["kubernetes_clusters"]):
        nodes = droplets[2 * n : 2 * n + 2]
        pool_tags = ["team:platform"] if n % 2 == 0 else []
        for droplet in nodes:
            droplet["tags"] = ["k8s", f"k8s:{cluster['id']}", "k8s:worker", *pool_tags]
        cluster["node_pools"] = [
            {
                "id": str(uuid.uuid5(NAMESPACE, f"pool:{cluster['id']}")),
                "name": "pool-1",
                "size": "s-2vcpu-4gb",
                "count": len(nodes),
                "tags": ["k8s", f"k8s:{cluster['id']}", "k8s:worker", *pool_tags],
                "nodes": [
                    {
                        "id": str(uuid.uuid5(NAMESPACE, f"node:{d['id']}")),
                        "name": f"pool-1-{d['id']}",
                        "status": {"state": "running"},
                        "droplet_id": str(d["id"]),
                    }
                    for d in nodes
                ],
            }
        ]

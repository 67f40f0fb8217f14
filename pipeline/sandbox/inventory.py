"""The sandbox's resource inventory, built from the invoice items it serves.

Items point at resources by `resource_id` (droplets) and `resource_uuid` (volumes, clusters,
databases, load balancers). About a quarter of those resources are deleted since (the items
stay, the resource is gone from the lists); items of other products point at nothing listed.
Tags mix `key:value`, plain keys, a plain key beside a valued one, DOKS's own `k8s` and
`k8s:<cluster id>`, and non-ASCII values; one project has no resources.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
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


def build_inventory(seed: int, items: dict[str, list[dict[str, Any]]], created: str) -> Inventory:
    """The team's resources as of now, from every item it was billed for."""
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
        lists={k: [] for k in URN_KIND} | {"projects": projects},
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
    return inventory


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

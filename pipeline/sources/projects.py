"""The team's projects and the resources assigned to each (`do:<kind>:<id>` URNs), read once per
run as a snapshot like the other inventory lists: allocation by project reads them."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from pipeline.api import LINKS
from pipeline.sources.base import Endpoint, Normalized, RawData, Source, Table, Target, Targets
from pipeline.sources.fields import InvalidPayloadError, text, timestamp, where
from pipeline.sources.snapshot_lists import INTERVAL_MONTH, SNAPSHOT_COLUMNS, snapshot_rows

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

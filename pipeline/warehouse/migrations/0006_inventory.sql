-- Migration 6: the resource inventory, for allocation. Each list is a snapshot of the team's
-- resources at one fetch; snapshots accumulate (one per run), so a closed month is allocated
-- with the tags and projects it had. Tags are kept as received, in the API's order; the views
-- read them as key → value (`resource_tags`).

-- One row per fetch of an inventory list, even one that came back empty: what a month's
-- allocation chooses from, kept after raw retention lets the pages go.
CREATE TABLE inventory_snapshots (
    team_uuid    VARCHAR NOT NULL,
    source       VARCHAR NOT NULL,     -- droplets, volumes, kubernetes_clusters, …, projects
    snapshot_id  VARCHAR NOT NULL,     -- the fetch (raw.fetches.fetch_id)
    snapshot_at  TIMESTAMPTZ NOT NULL  -- when it was read
);

CREATE TABLE droplets (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    resource_id     VARCHAR NOT NULL,  -- the droplet's integer id, as text: items' resource_id
    name            VARCHAR,
    region          VARCHAR,
    status          VARCHAR,
    project_id      VARCHAR,
    tags            VARCHAR[] NOT NULL,
    created_at      TIMESTAMPTZ,
    loaded_at       TIMESTAMPTZ NOT NULL
);
CREATE TABLE volumes (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    resource_id     VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name            VARCHAR,
    region          VARCHAR,
    status          VARCHAR,
    project_id      VARCHAR,
    tags            VARCHAR[] NOT NULL,
    created_at      TIMESTAMPTZ,
    loaded_at       TIMESTAMPTZ NOT NULL
);
CREATE TABLE kubernetes_clusters (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    resource_id     VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name            VARCHAR,
    region          VARCHAR,
    status          VARCHAR,
    project_id      VARCHAR,
    tags            VARCHAR[] NOT NULL,
    created_at      TIMESTAMPTZ,
    loaded_at       TIMESTAMPTZ NOT NULL
);
CREATE TABLE database_clusters (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    resource_id     VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name            VARCHAR,
    region          VARCHAR,
    status          VARCHAR,
    project_id      VARCHAR,
    tags            VARCHAR[] NOT NULL,
    created_at      TIMESTAMPTZ,
    loaded_at       TIMESTAMPTZ NOT NULL
);
CREATE TABLE load_balancers (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    resource_id     VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name            VARCHAR,
    region          VARCHAR,
    status          VARCHAR,
    project_id      VARCHAR,
    tags            VARCHAR[] NOT NULL,  -- always empty: a balancer's `tag` selects droplets
    created_at      TIMESTAMPTZ,
    loaded_at       TIMESTAMPTZ NOT NULL
);
CREATE TABLE kubernetes_node_pools (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    cluster_id      VARCHAR,
    node_pool_id    VARCHAR NOT NULL,
    name            VARCHAR,
    size            VARCHAR,
    count           INTEGER,
    tags            VARCHAR[] NOT NULL,
    droplet_ids     VARCHAR[] NOT NULL,  -- the droplets that are its nodes
    loaded_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE projects (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    project_id      VARCHAR NOT NULL,
    name            VARCHAR,
    description     VARCHAR,
    purpose         VARCHAR,
    environment     VARCHAR,
    is_default      BOOLEAN,
    created_at      TIMESTAMPTZ,
    loaded_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE project_resources (
    team_uuid       VARCHAR NOT NULL,
    snapshot_id     VARCHAR NOT NULL,
    snapshot_at     TIMESTAMPTZ NOT NULL,
    snapshot_month  VARCHAR NOT NULL,
    project_id      VARCHAR NOT NULL,
    urn             VARCHAR NOT NULL,  -- do:<kind>:<id>
    resource_kind   VARCHAR,           -- droplet, volume, kubernetes, dbaas, loadbalancer, …
    resource_id     VARCHAR,
    assigned_at     TIMESTAMPTZ,
    status          VARCHAR,
    loaded_at       TIMESTAMPTZ NOT NULL
);

-- Migration 7: the inventory kept as validity intervals. Migration 6 stored every resource again
-- in every snapshot, so an unchanged account grew the tables by a whole inventory per run. Now a
-- row is one state of a resource (every column but the key and loaded_at): valid from the
-- snapshot that first read it (`valid_from`, that snapshot's `snapshot_at`) until the first
-- later snapshot of its list that did not (`valid_to`; NULL while the newest one still has it).
-- `inventory_snapshots` keeps one row per fetch, as before, so the resources of any snapshot are
-- the rows with valid_from <= snapshot_at < coalesce(valid_to, infinity): nothing is lost but
-- each snapshot row's own loaded_at (a state keeps the newest of its rows').
--
-- Each list's timeline is its snapshots in time order (those `inventory_snapshots` records, and
-- any a table names that it does not); a state's rows in consecutive snapshots of the timeline
-- become one interval, so A → B → A gives three.

CREATE TEMP TABLE timeline AS
WITH seen AS (
    SELECT team_uuid, source, snapshot_id, snapshot_at FROM inventory_snapshots
    UNION
    SELECT team_uuid, 'droplets', snapshot_id, snapshot_at FROM droplets
    UNION
    SELECT team_uuid, 'volumes', snapshot_id, snapshot_at FROM volumes
    UNION
    SELECT team_uuid, 'kubernetes_clusters', snapshot_id, snapshot_at FROM kubernetes_clusters
    UNION
    SELECT team_uuid, 'kubernetes_clusters', snapshot_id, snapshot_at FROM kubernetes_node_pools
    UNION
    SELECT team_uuid, 'database_clusters', snapshot_id, snapshot_at FROM database_clusters
    UNION
    SELECT team_uuid, 'load_balancers', snapshot_id, snapshot_at FROM load_balancers
    UNION
    SELECT team_uuid, 'projects', snapshot_id, snapshot_at FROM projects
    UNION
    SELECT team_uuid, 'projects', snapshot_id, snapshot_at FROM project_resources
)
SELECT team_uuid, source, snapshot_id, snapshot_at,
       row_number() OVER (PARTITION BY team_uuid, source ORDER BY snapshot_at, snapshot_id) AS n,
       lead(snapshot_at) OVER (PARTITION BY team_uuid, source ORDER BY snapshot_at, snapshot_id)
           AS next_at
FROM seen;

-- The five resource lists share one shape: their rows, each with its place in its timeline.
CREATE TEMP TABLE old_resources AS
WITH stored AS (
    SELECT 'droplets' AS source, * FROM droplets
    UNION ALL BY NAME SELECT 'volumes' AS source, * FROM volumes
    UNION ALL BY NAME SELECT 'kubernetes_clusters' AS source, * FROM kubernetes_clusters
    UNION ALL BY NAME SELECT 'database_clusters' AS source, * FROM database_clusters
    UNION ALL BY NAME SELECT 'load_balancers' AS source, * FROM load_balancers
)
SELECT r.*, t.n FROM stored AS r JOIN timeline AS t USING (team_uuid, source, snapshot_id);

CREATE TEMP TABLE resource_intervals AS
WITH islands AS (
    SELECT *, n - row_number() OVER (
        PARTITION BY team_uuid, source, resource_id, name, region, status, project_id, tags,
                     created_at
        ORDER BY n) AS island
    FROM old_resources
), spans AS (
    SELECT team_uuid, source, resource_id, name, region, status, project_id, tags, created_at,
           min(snapshot_at) AS valid_from, max(n) AS last_n, max(loaded_at) AS loaded_at
    FROM islands
    GROUP BY team_uuid, source, resource_id, name, region, status, project_id, tags, created_at,
             island
)
SELECT s.* EXCLUDE (last_n), t.next_at AS valid_to
FROM spans AS s
JOIN timeline AS t ON t.team_uuid = s.team_uuid AND t.source = s.source AND t.n = s.last_n;

CREATE TEMP TABLE node_pool_intervals AS
WITH stored AS (
    SELECT p.*, t.n FROM kubernetes_node_pools AS p
    JOIN timeline AS t
      ON t.team_uuid = p.team_uuid AND t.source = 'kubernetes_clusters'
     AND t.snapshot_id = p.snapshot_id
), islands AS (
    SELECT *, n - row_number() OVER (
        PARTITION BY team_uuid, node_pool_id, cluster_id, name, size, count, tags, droplet_ids
        ORDER BY n) AS island
    FROM stored
), spans AS (
    SELECT team_uuid, node_pool_id, cluster_id, name, size, count, tags, droplet_ids,
           min(snapshot_at) AS valid_from, max(n) AS last_n, max(loaded_at) AS loaded_at
    FROM islands
    GROUP BY team_uuid, node_pool_id, cluster_id, name, size, count, tags, droplet_ids, island
)
SELECT s.* EXCLUDE (last_n), t.next_at AS valid_to
FROM spans AS s
JOIN timeline AS t
  ON t.team_uuid = s.team_uuid AND t.source = 'kubernetes_clusters' AND t.n = s.last_n;

CREATE TEMP TABLE project_intervals AS
WITH stored AS (
    SELECT p.*, t.n FROM projects AS p
    JOIN timeline AS t
      ON t.team_uuid = p.team_uuid AND t.source = 'projects' AND t.snapshot_id = p.snapshot_id
), islands AS (
    SELECT *, n - row_number() OVER (
        PARTITION BY team_uuid, project_id, name, description, purpose, environment, is_default,
                     created_at
        ORDER BY n) AS island
    FROM stored
), spans AS (
    SELECT team_uuid, project_id, name, description, purpose, environment, is_default,
           created_at, min(snapshot_at) AS valid_from, max(n) AS last_n,
           max(loaded_at) AS loaded_at
    FROM islands
    GROUP BY team_uuid, project_id, name, description, purpose, environment, is_default,
             created_at, island
)
SELECT s.* EXCLUDE (last_n), t.next_at AS valid_to
FROM spans AS s
JOIN timeline AS t ON t.team_uuid = s.team_uuid AND t.source = 'projects' AND t.n = s.last_n;

CREATE TEMP TABLE assignment_intervals AS
WITH stored AS (
    SELECT p.*, t.n FROM project_resources AS p
    JOIN timeline AS t
      ON t.team_uuid = p.team_uuid AND t.source = 'projects' AND t.snapshot_id = p.snapshot_id
), islands AS (
    SELECT *, n - row_number() OVER (
        PARTITION BY team_uuid, urn, project_id, resource_kind, resource_id, assigned_at, status
        ORDER BY n) AS island
    FROM stored
), spans AS (
    SELECT team_uuid, urn, project_id, resource_kind, resource_id, assigned_at, status,
           min(snapshot_at) AS valid_from, max(n) AS last_n, max(loaded_at) AS loaded_at
    FROM islands
    GROUP BY team_uuid, urn, project_id, resource_kind, resource_id, assigned_at, status, island
)
SELECT s.* EXCLUDE (last_n), t.next_at AS valid_to
FROM spans AS s
JOIN timeline AS t ON t.team_uuid = s.team_uuid AND t.source = 'projects' AND t.n = s.last_n;

DROP TABLE droplets;
DROP TABLE volumes;
DROP TABLE kubernetes_clusters;
DROP TABLE database_clusters;
DROP TABLE load_balancers;
DROP TABLE kubernetes_node_pools;
DROP TABLE projects;
DROP TABLE project_resources;

-- Primary key of every table: team_uuid, its key (resource_id, node_pool_id, project_id, urn)
-- and valid_from. valid_from_month (`YYYY-MM` of valid_from, UTC) is the export's folder.
CREATE TABLE droplets (
    team_uuid         VARCHAR NOT NULL,
    resource_id       VARCHAR NOT NULL,  -- the droplet's integer id, as text: items' resource_id
    name              VARCHAR,
    region            VARCHAR,
    status            VARCHAR,
    project_id        VARCHAR,
    tags              VARCHAR[] NOT NULL,
    created_at        TIMESTAMPTZ,
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE volumes (
    team_uuid         VARCHAR NOT NULL,
    resource_id       VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name              VARCHAR,
    region            VARCHAR,
    status            VARCHAR,
    project_id        VARCHAR,
    tags              VARCHAR[] NOT NULL,
    created_at        TIMESTAMPTZ,
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE kubernetes_clusters (
    team_uuid         VARCHAR NOT NULL,
    resource_id       VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name              VARCHAR,
    region            VARCHAR,
    status            VARCHAR,
    project_id        VARCHAR,
    tags              VARCHAR[] NOT NULL,
    created_at        TIMESTAMPTZ,
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE database_clusters (
    team_uuid         VARCHAR NOT NULL,
    resource_id       VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name              VARCHAR,
    region            VARCHAR,
    status            VARCHAR,
    project_id        VARCHAR,
    tags              VARCHAR[] NOT NULL,
    created_at        TIMESTAMPTZ,
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE load_balancers (
    team_uuid         VARCHAR NOT NULL,
    resource_id       VARCHAR NOT NULL,  -- uuid: items' resource_uuid
    name              VARCHAR,
    region            VARCHAR,
    status            VARCHAR,
    project_id        VARCHAR,
    tags              VARCHAR[] NOT NULL,  -- always empty: a balancer's `tag` selects droplets
    created_at        TIMESTAMPTZ,
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE kubernetes_node_pools (
    team_uuid         VARCHAR NOT NULL,
    node_pool_id      VARCHAR NOT NULL,
    cluster_id        VARCHAR,
    name              VARCHAR,
    size              VARCHAR,
    count             INTEGER,
    tags              VARCHAR[] NOT NULL,
    droplet_ids       VARCHAR[] NOT NULL,  -- the droplets that are its nodes
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE projects (
    team_uuid         VARCHAR NOT NULL,
    project_id        VARCHAR NOT NULL,
    name              VARCHAR,
    description       VARCHAR,
    purpose           VARCHAR,
    environment       VARCHAR,
    is_default        BOOLEAN,
    created_at        TIMESTAMPTZ,
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE project_resources (
    team_uuid         VARCHAR NOT NULL,
    urn               VARCHAR NOT NULL,  -- do:<kind>:<id>
    project_id        VARCHAR NOT NULL,
    resource_kind     VARCHAR,           -- droplet, volume, kubernetes, dbaas, loadbalancer, …
    resource_id       VARCHAR,
    assigned_at       TIMESTAMPTZ,
    status            VARCHAR,
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);

INSERT INTO droplets BY NAME
SELECT * EXCLUDE (source), strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM resource_intervals WHERE source = 'droplets';
INSERT INTO volumes BY NAME
SELECT * EXCLUDE (source), strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM resource_intervals WHERE source = 'volumes';
INSERT INTO kubernetes_clusters BY NAME
SELECT * EXCLUDE (source), strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM resource_intervals WHERE source = 'kubernetes_clusters';
INSERT INTO database_clusters BY NAME
SELECT * EXCLUDE (source), strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM resource_intervals WHERE source = 'database_clusters';
INSERT INTO load_balancers BY NAME
SELECT * EXCLUDE (source), strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM resource_intervals WHERE source = 'load_balancers';
INSERT INTO kubernetes_node_pools BY NAME
SELECT *, strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM node_pool_intervals;
INSERT INTO projects BY NAME
SELECT *, strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM project_intervals;
INSERT INTO project_resources BY NAME
SELECT *, strftime(timezone('UTC', valid_from), '%Y-%m') AS valid_from_month
FROM assignment_intervals;

DROP TABLE timeline;
DROP TABLE old_resources;
DROP TABLE resource_intervals;
DROP TABLE node_pool_intervals;
DROP TABLE project_intervals;
DROP TABLE assignment_intervals;

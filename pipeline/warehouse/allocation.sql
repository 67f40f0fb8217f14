-- Allocation: who spent it. Invoice items are joined to the inventory resources they name, with
-- the inventory as it was in the item's month, and split by project and tag so that every split
-- adds up to the month's items. Documented in docs/data-dictionary.md.
--
-- Join rules, from the API's own fields only (never from names):
--   droplets: item.resource_id = droplet id; volumes, Kubernetes clusters, database clusters and
--   load balancers: item.resource_uuid = their id. An item of a resource deleted since, or of
--   none, is unallocated.
-- Snapshot rule: a month uses, per inventory list, the newest snapshot taken on or before the
-- month's end, else the oldest one taken after it. The tables keep each state of a resource
-- once, valid from the snapshot that first read it until the first later one that did not: the
-- resources of a snapshot taken at t are those with valid_from <= t < coalesce(valid_to, ∞).
-- Tag rule: `k:v` is key k, value v (split at the first colon); a plain `k` is value 'true'
-- unless the resource also has a valued tag of key k, which wins; of several valued tags of one
-- key (DOKS nodes carry `k8s:<cluster id>` and `k8s:worker`) the first in the API's order wins.

-- Every state of every resource, all kinds in one shape, with the snapshots it held in
-- (valid_from, valid_to); tags as received.
CREATE OR REPLACE VIEW inventory_resources AS
SELECT 'droplet' AS resource_kind, 'droplets' AS source, 'droplet' AS urn_kind, *
FROM droplets
UNION ALL BY NAME
SELECT 'volume' AS resource_kind, 'volumes' AS source, 'volume' AS urn_kind, * FROM volumes
UNION ALL BY NAME
SELECT 'kubernetes_cluster' AS resource_kind, 'kubernetes_clusters' AS source, 'kubernetes' AS urn_kind, * FROM kubernetes_clusters
UNION ALL BY NAME
SELECT 'database_cluster' AS resource_kind, 'database_clusters' AS source, 'dbaas' AS urn_kind, * FROM database_clusters
UNION ALL BY NAME
SELECT 'load_balancer' AS resource_kind, 'load_balancers' AS source, 'loadbalancer' AS urn_kind, * FROM load_balancers;

-- Each resource's tags as key → value, per state (the tag rule above).
CREATE OR REPLACE VIEW resource_tags AS
WITH each_tag AS (
    SELECT team_uuid, source, valid_from, resource_kind, resource_id,
           unnest(tags) AS tag, unnest(range(1, len(tags) + 1)) AS position
    FROM inventory_resources
), split AS (
    SELECT *,
           CASE WHEN strpos(tag, ':') > 0 THEN left(tag, strpos(tag, ':') - 1) ELSE tag END
               AS tag_key,
           CASE WHEN strpos(tag, ':') > 0 THEN substr(tag, strpos(tag, ':') + 1) END AS valued
    FROM each_tag
)
SELECT team_uuid, source, valid_from, resource_kind, resource_id, tag_key,
       coalesce(arg_min(valued, position) FILTER (WHERE valued IS NOT NULL), 'true') AS tag_value,
       bool_or(valued IS NOT NULL) AS is_valued  -- false: a plain tag, 'true' by the rule
FROM split
WHERE tag_key <> ''
GROUP BY team_uuid, source, valid_from, resource_kind, resource_id, tag_key;

-- Each snapshot of each inventory list as a validity interval: from when it was read until the
-- next snapshot of the same list (NULL: the newest, still current).
CREATE OR REPLACE VIEW inventory_validity AS
SELECT team_uuid, source, snapshot_id,
       snapshot_at AS valid_from,
       lead(snapshot_at) OVER (PARTITION BY team_uuid, source ORDER BY snapshot_at, snapshot_id)
           AS valid_to
FROM inventory_snapshots;

-- Which snapshot of each inventory list each team's month is allocated with.
CREATE OR REPLACE VIEW allocation_snapshots AS
WITH months AS (
    SELECT DISTINCT team_uuid, invoice_period,
           CAST(CAST(invoice_period || '-01' AS DATE) + INTERVAL 1 MONTH AS TIMESTAMP) AS month_end
    FROM invoice_items
    WHERE team_uuid IS NOT NULL
), candidates AS (
    SELECT m.team_uuid, m.invoice_period, s.source, s.snapshot_id, s.snapshot_at,
           (s.snapshot_at AT TIME ZONE 'UTC') <= m.month_end AS by_month_end
    FROM months AS m JOIN inventory_snapshots AS s USING (team_uuid)
)
SELECT team_uuid, invoice_period, source, snapshot_id, snapshot_at, by_month_end
FROM candidates
QUALIFY row_number() OVER (
    PARTITION BY team_uuid, invoice_period, source
    ORDER BY by_month_end DESC,
             CASE WHEN by_month_end THEN snapshot_at END DESC,
             snapshot_at ASC,
             snapshot_id
) = 1;

-- Every invoice item with the resource it is allocated to (NULLs when unallocated), the
-- snapshot that resource was read from (and the state it had in it: resource_valid_from), and
-- its project.
CREATE OR REPLACE VIEW item_allocation AS
WITH month_resources AS (
    SELECT a.invoice_period, a.snapshot_id, a.snapshot_at, r.*
    FROM inventory_resources AS r
    JOIN allocation_snapshots AS a
      ON a.team_uuid = r.team_uuid AND a.source = r.source
     AND r.valid_from <= a.snapshot_at AND (r.valid_to IS NULL OR a.snapshot_at < r.valid_to)
), month_projects AS (
    SELECT a.invoice_period, p.team_uuid, p.project_id, p.name AS project_name
    FROM projects AS p
    JOIN allocation_snapshots AS a
      ON a.team_uuid = p.team_uuid AND a.source = 'projects'
     AND p.valid_from <= a.snapshot_at AND (p.valid_to IS NULL OR a.snapshot_at < p.valid_to)
), month_assignments AS (
    SELECT a.invoice_period, pr.team_uuid, pr.resource_kind AS urn_kind, pr.resource_id,
           any_value(pr.project_id) AS project_id
    FROM project_resources AS pr
    JOIN allocation_snapshots AS a
      ON a.team_uuid = pr.team_uuid AND a.source = 'projects'
     AND pr.valid_from <= a.snapshot_at AND (pr.valid_to IS NULL OR a.snapshot_at < pr.valid_to)
    GROUP BY ALL
), matched AS (
    SELECT i.team_uuid, i.invoice_period, i.invoice_uuid, i.line_number, i.status, i.product,
           i.description, i.group_description, i.amount, i.project_name AS item_project_name,
           r.resource_kind, r.source, r.urn_kind, r.resource_id, r.name AS resource_name,
           r.region, r.tags, r.project_id AS resource_project_id, r.snapshot_id, r.snapshot_at,
           r.valid_from AS resource_valid_from
    FROM invoice_items AS i
    LEFT JOIN month_resources AS r
      ON r.team_uuid = i.team_uuid AND r.invoice_period = i.invoice_period
     AND ((r.source = 'droplets' AND r.resource_id = i.resource_id)
          OR (r.source <> 'droplets' AND r.resource_id = i.resource_uuid))
    -- An item names at most one resource; should ids ever collide, a droplet id wins.
    QUALIFY row_number() OVER (
        PARTITION BY i.team_uuid, i.invoice_uuid, i.line_number
        ORDER BY r.source = 'droplets' DESC, r.source
    ) = 1
)
SELECT m.team_uuid, m.invoice_period, m.invoice_uuid, m.line_number, m.status, m.product,
       m.description, m.group_description, m.amount, m.resource_kind, m.source, m.resource_id, m.resource_name, m.region, m.tags,
       coalesce(a.project_id, m.resource_project_id) AS project_id,
       coalesce(p.project_name, m.item_project_name) AS project_name,
       m.item_project_name,
       m.snapshot_id, m.snapshot_at,
       m.resource_id IS NOT NULL AS allocated,
       coalesce(len(m.tags) > 0, false) AS tagged,
       m.resource_valid_from
FROM matched AS m
LEFT JOIN month_assignments AS a
  ON a.team_uuid = m.team_uuid AND a.invoice_period = m.invoice_period
 AND a.urn_kind = m.urn_kind AND a.resource_id = m.resource_id
LEFT JOIN month_projects AS p
  ON p.team_uuid = m.team_uuid AND p.invoice_period = m.invoice_period
 AND p.project_id = coalesce(a.project_id, m.resource_project_id);

-- Spend per month and resource of the inventory: kind, id, name, project, tags (a JSON object
-- key → value, as of the month's snapshot) and the snapshot used. Unallocated spend is not
-- here: allocation_coverage holds it.
CREATE OR REPLACE VIEW cost_by_resource AS
WITH tag_objects AS (
    SELECT team_uuid, source, valid_from, resource_id,
           CAST(json_group_object(tag_key, tag_value) AS VARCHAR) AS tags
    FROM resource_tags
    GROUP BY ALL
)
SELECT i.team_uuid, i.invoice_period, i.resource_kind, i.resource_id, i.resource_name,
       i.project_id, i.project_name, coalesce(t.tags, '{}') AS tags, i.region,
       sum(i.amount) AS amount, count(*) AS items, bool_or(i.status = 'preview') AS is_partial,
       i.snapshot_id, i.snapshot_at,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM item_allocation AS i
LEFT JOIN tag_objects AS t
  ON t.team_uuid = i.team_uuid AND t.source = i.source AND t.valid_from = i.resource_valid_from
 AND t.resource_id = i.resource_id
LEFT JOIN teams AS n ON n.team_uuid = i.team_uuid
WHERE i.allocated
GROUP BY i.team_uuid, i.invoice_period, i.resource_kind, i.resource_id, i.resource_name,
         i.project_id, i.project_name, t.tags, i.region, i.snapshot_id, i.snapshot_at;

-- Spend per month, tag key and value. For every tag key any of the team's resources has ever
-- had, a month's rows add up exactly to its items: what no resource with that key explains
-- (untagged, deleted since, no resource at all, credits and taxes) is the row whose tag_value
-- is NULL. So `WHERE tag_key = 'env'` always splits a whole month.
CREATE OR REPLACE VIEW cost_by_tag AS
WITH tag_keys AS (
    SELECT DISTINCT team_uuid, tag_key FROM resource_tags
)
SELECT i.team_uuid, i.invoice_period, k.tag_key, t.tag_value,
       sum(i.amount) AS amount, count(*) AS items, bool_or(i.status = 'preview') AS is_partial,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM item_allocation AS i
JOIN tag_keys AS k ON k.team_uuid = i.team_uuid
LEFT JOIN resource_tags AS t
  ON t.team_uuid = i.team_uuid AND t.source = i.source AND t.valid_from = i.resource_valid_from
 AND t.resource_id = i.resource_id AND t.tag_key = k.tag_key
LEFT JOIN teams AS n ON n.team_uuid = i.team_uuid
GROUP BY i.team_uuid, i.invoice_period, k.tag_key, t.tag_value;

-- FinOps' allocation KPI per team and month: how much of the month's items names a live
-- resource (allocated), how much of it a tagged one, and the allocated share.
CREATE OR REPLACE VIEW allocation_coverage AS
SELECT i.team_uuid, i.invoice_period,
       sum(i.amount) AS amount,
       coalesce(sum(i.amount) FILTER (WHERE i.allocated), 0) AS allocated_amount,
       coalesce(sum(i.amount) FILTER (WHERE i.tagged), 0) AS tagged_amount,
       CASE WHEN sum(i.amount) <> 0
            THEN CAST(round(coalesce(sum(i.amount) FILTER (WHERE i.allocated), 0)
                            / sum(i.amount), 4) AS DECIMAL(9, 4))
       END AS share,
       bool_or(i.status = 'preview') AS is_partial,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM item_allocation AS i
LEFT JOIN teams AS n ON n.team_uuid = i.team_uuid
GROUP BY i.team_uuid, i.invoice_period;

-- Spend per month and DigitalOcean project, as the items name it, with the project's id from
-- the projects source (the month's snapshot) where a project of that name exists.
CREATE OR REPLACE VIEW monthly_spend_by_project AS
WITH month_projects AS (
    SELECT a.invoice_period, p.team_uuid, p.name, any_value(p.project_id) AS project_id
    FROM projects AS p
    JOIN allocation_snapshots AS a
      ON a.team_uuid = p.team_uuid AND a.source = 'projects'
     AND p.valid_from <= a.snapshot_at AND (p.valid_to IS NULL OR a.snapshot_at < p.valid_to)
    GROUP BY ALL
)
SELECT i.invoice_period,
       coalesce(i.project_name, '(no project)') AS project_name,
       sum(i.amount) AS amount,
       count(*) AS items,
       bool_or(i.status = 'preview') AS is_partial,
       any_value(p.project_id) AS project_id,
       i.team_uuid,
       coalesce(any_value(n.team_name), '(before teams)') AS team_name
FROM invoice_items AS i
LEFT JOIN month_projects AS p
  ON p.team_uuid = i.team_uuid AND p.invoice_period = i.invoice_period
 AND p.name = i.project_name
LEFT JOIN teams AS n ON n.team_uuid = i.team_uuid
GROUP BY i.invoice_period, coalesce(i.project_name, '(no project)'), i.team_uuid;

-- The projects and tag values behind each Billing Insights SKU in a month: the month's invoice
-- lines whose description and group its points carry (the Insights tie, as in focus_costs),
-- allocated to their resources. What spike alerts name; `owner` is `project:<name>` or
-- `tag:<key>:<value>`.
CREATE OR REPLACE VIEW sku_owners AS
WITH points AS (
    SELECT DISTINCT team_uuid, usage_month, sku, description,
           coalesce(group_description, '') AS group_key
    FROM daily_costs
    WHERE sku IS NOT NULL AND description IS NOT NULL
), lines AS (
    SELECT p.team_uuid, p.usage_month AS invoice_period, p.sku, a.project_name, a.source,
           a.resource_valid_from, a.resource_id, a.allocated, a.amount
    FROM points AS p
    JOIN item_allocation AS a
      ON a.team_uuid = p.team_uuid AND a.invoice_period = p.usage_month
     AND a.description = p.description AND coalesce(a.group_description, '') = p.group_key
)
SELECT team_uuid, invoice_period, sku, 'project:' || project_name AS owner, sum(amount) AS amount
FROM lines WHERE project_name IS NOT NULL
GROUP BY ALL
UNION ALL
SELECT l.team_uuid, l.invoice_period, l.sku, 'tag:' || t.tag_key || ':' || t.tag_value,
       sum(l.amount)
FROM lines AS l
JOIN resource_tags AS t
  ON t.team_uuid = l.team_uuid AND t.source = l.source AND t.valid_from = l.resource_valid_from
 AND t.resource_id = l.resource_id
GROUP BY ALL;

-- What to cut: each team's idle resources in its latest inventory (the newest snapshot of each
-- list), what each cost in the team's latest closed month and so far in the open one, and since
-- when it is idle. Idle, in a snapshot: a droplet whose status is `off`; a volume attached to
-- no droplet (`droplet_ids` empty); a load balancer with no droplets and no `tag` (absent or
-- empty); a reserved IP assigned to no droplet; a snapshot created more than `max_age_days`
-- days (of 24 hours) before that snapshot of its list was read. A state read before migration 10
-- (no `droplet_ids`) is never idle: what it did not record is not guessed.
-- Items match as allocation matches them: a droplet's by `resource_id`, the others' by
-- `resource_uuid` = their id; a reserved IP's and a snapshot's by `resource_uuid` = the address
-- or the snapshot id, an assumption (DigitalOcean does not document it).
-- idle_since: the first snapshot of its list in which it was idle, after the last one in which
-- it was in use (as far as the kept snapshots go back).
CREATE OR REPLACE MACRO idle_resources_at(max_age_days) AS TABLE
WITH states AS (
    SELECT 'powered_off_droplet' AS kind, 'droplets' AS source, 'droplet' AS urn_kind,
           team_uuid, resource_id, name, region, project_id, tags, valid_from, valid_to,
           coalesce(status = 'off', false) AS idle_state, CAST(NULL AS TIMESTAMPTZ) AS created_at
    FROM droplets
    UNION ALL
    SELECT 'unattached_volume', 'volumes', 'volume', team_uuid, resource_id, name, region,
           project_id, tags, valid_from, valid_to, coalesce(len(droplet_ids) = 0, false), NULL
    FROM volumes
    UNION ALL
    SELECT 'load_balancer_without_targets', 'load_balancers', 'loadbalancer', team_uuid,
           resource_id, name, region, project_id, tags, valid_from, valid_to,
           coalesce(len(droplet_ids) = 0 AND coalesce(target_tag, '') = '', false), NULL
    FROM load_balancers
    UNION ALL
    SELECT 'unassigned_reserved_ip', 'reserved_ips', NULL, team_uuid, resource_id, NULL, region,
           project_id, tags, valid_from, valid_to, droplet_id IS NULL, NULL
    FROM reserved_ips
    UNION ALL
    SELECT 'old_snapshot', 'snapshots', NULL, team_uuid, resource_id, name, region, project_id,
           tags, valid_from, valid_to, false, created_at
    FROM snapshots
), seen AS (
    -- When each resource was idle or in use: a state of the first four kinds is idle or not in
    -- every snapshot it held in (one row, seen at its valid_from); a snapshot ages, so it is
    -- judged in each snapshot of its list (one row each).
    SELECT s.*, s.valid_from AS seen_at, s.idle_state AS idle
    FROM states AS s WHERE s.source <> 'snapshots'
    UNION ALL
    SELECT s.*, i.snapshot_at,
           coalesce(epoch_us(i.snapshot_at) - epoch_us(s.created_at)
                    > CAST(max_age_days AS BIGINT) * 86400000000, false)
    FROM states AS s
    JOIN inventory_snapshots AS i
      ON i.team_uuid = s.team_uuid AND i.source = s.source
     AND s.valid_from <= i.snapshot_at AND (s.valid_to IS NULL OR i.snapshot_at < s.valid_to)
    WHERE s.source = 'snapshots'
), latest_lists AS (
    -- A list's newest snapshot, even an empty one (every resource gone: nothing of it is idle).
    SELECT team_uuid, source, max(snapshot_at) AS latest_at FROM inventory_snapshots GROUP BY ALL
), stretches AS (
    SELECT team_uuid, source, resource_id, max(seen_at) FILTER (WHERE NOT idle) AS last_in_use
    FROM seen GROUP BY ALL
), idle_since AS (
    -- The first snapshot in which it was idle, after the last one in which it was in use.
    SELECT e.team_uuid, e.source, e.resource_id, min(e.seen_at) AS idle_since
    FROM seen AS e
    JOIN stretches AS t
      ON t.team_uuid = e.team_uuid AND t.source = e.source AND t.resource_id = e.resource_id
    WHERE e.idle AND (t.last_in_use IS NULL OR e.seen_at > t.last_in_use)
    GROUP BY ALL
), current AS (
    -- Its state in its list's newest snapshot, idle there.
    SELECT s.*, d.idle_since
    FROM seen AS s
    JOIN latest_lists AS l ON l.team_uuid = s.team_uuid AND l.source = s.source
    JOIN idle_since AS d
      ON d.team_uuid = s.team_uuid AND d.source = s.source AND d.resource_id = s.resource_id
    WHERE s.idle
      AND CASE WHEN s.source = 'snapshots' THEN s.seen_at = l.latest_at
               ELSE s.valid_from <= l.latest_at
                    AND (s.valid_to IS NULL OR l.latest_at < s.valid_to) END
), latest_projects AS (
    SELECT p.team_uuid, p.project_id, p.name AS project_name
    FROM projects AS p JOIN latest_lists AS l ON l.team_uuid = p.team_uuid AND l.source = 'projects'
    WHERE p.valid_from <= l.latest_at AND (p.valid_to IS NULL OR l.latest_at < p.valid_to)
), latest_assignments AS (
    SELECT pr.team_uuid, pr.resource_kind AS urn_kind, pr.resource_id,
           any_value(pr.project_id) AS project_id
    FROM project_resources AS pr
    JOIN latest_lists AS l ON l.team_uuid = pr.team_uuid AND l.source = 'projects'
    WHERE pr.valid_from <= l.latest_at AND (pr.valid_to IS NULL OR l.latest_at < pr.valid_to)
    GROUP BY ALL
), closed AS (
    SELECT team_uuid, max(invoice_period) AS invoice_period
    FROM invoices WHERE status = 'final' AND team_uuid IS NOT NULL GROUP BY ALL
), costs AS (
    SELECT c.team_uuid, c.source, c.resource_id,
           coalesce(sum(i.amount) FILTER (WHERE i.status = 'final'
                                          AND i.invoice_period = m.invoice_period), 0)
               AS cost_last_month,
           coalesce(sum(i.amount) FILTER (WHERE i.status = 'preview'), 0) AS month_to_date
    FROM current AS c
    LEFT JOIN closed AS m ON m.team_uuid = c.team_uuid
    LEFT JOIN invoice_items AS i
      ON i.team_uuid = c.team_uuid
     AND ((i.status = 'final' AND i.invoice_period = m.invoice_period) OR i.status = 'preview')
     AND CASE WHEN c.source = 'droplets' THEN i.resource_id ELSE i.resource_uuid END
         = c.resource_id
    GROUP BY ALL
)
SELECT c.team_uuid, c.kind, c.resource_id,
       c.name AS resource_name, c.region,
       m.invoice_period,
       CAST(k.cost_last_month AS DECIMAL(18, 2)) AS cost_last_month,
       CAST(k.month_to_date AS DECIMAL(18, 2)) AS month_to_date,
       c.idle_since,
       coalesce(a.project_id, c.project_id) AS project_id,
       p.project_name,
       c.tags,
       c.source,
       coalesce(n.team_name, '(before teams)') AS team_name
FROM current AS c
JOIN costs AS k USING (team_uuid, source, resource_id)
LEFT JOIN closed AS m ON m.team_uuid = c.team_uuid
LEFT JOIN latest_assignments AS a
  ON a.team_uuid = c.team_uuid AND a.urn_kind = c.urn_kind AND a.resource_id = c.resource_id
LEFT JOIN latest_projects AS p
  ON p.team_uuid = c.team_uuid AND p.project_id = coalesce(a.project_id, c.project_id)
LEFT JOIN teams AS n ON n.team_uuid = c.team_uuid;

-- Every idle resource at the default age limit for snapshots (SNAPSHOT_MAX_AGE_DAYS, 90 days);
-- `idle_resources_at(days)` takes another.
CREATE OR REPLACE VIEW idle_resources AS
SELECT * FROM idle_resources_at(90)
ORDER BY team_uuid, cost_last_month DESC, kind, resource_id;

-- What idle resources cost in each team's latest closed month, by project, and their share of
-- that month's bill (every item of the month's invoices, credits and taxes included).
CREATE OR REPLACE MACRO idle_cost_by_project_at(max_age_days) AS TABLE
WITH bills AS (
    SELECT team_uuid, invoice_period, sum(amount) AS bill_amount
    FROM invoice_items WHERE status = 'final' GROUP BY ALL
)
SELECT r.team_uuid, r.invoice_period,
       coalesce(r.project_name, '(no project)') AS project_name,
       any_value(r.project_id) AS project_id,
       count(*) AS resources,
       CAST(sum(r.cost_last_month) AS DECIMAL(18, 2)) AS idle_amount,
       CAST(sum(r.month_to_date) AS DECIMAL(18, 2)) AS idle_month_to_date,
       CAST(coalesce(any_value(b.bill_amount), 0) AS DECIMAL(18, 2)) AS bill_amount,
       CASE WHEN any_value(b.bill_amount) <> 0
            THEN CAST(round(sum(r.cost_last_month) / any_value(b.bill_amount), 4) AS DECIMAL(9, 4))
       END AS share,
       any_value(r.team_name) AS team_name
FROM idle_resources_at(max_age_days) AS r
LEFT JOIN bills AS b ON b.team_uuid = r.team_uuid AND b.invoice_period = r.invoice_period
GROUP BY r.team_uuid, r.invoice_period, coalesce(r.project_name, '(no project)');

CREATE OR REPLACE VIEW idle_cost_by_project AS
SELECT * FROM idle_cost_by_project_at(90)
ORDER BY team_uuid, idle_amount DESC, project_name;

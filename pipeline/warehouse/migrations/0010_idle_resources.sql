-- Migration 10: what makes a resource idle, and two more inventory lists (reserved IPs and
-- snapshots), for the `idle_resources` view (allocation.sql). Kept as validity intervals like
-- the other lists (migration 7). The new columns are NULL in states read before this migration
-- (the lists did not keep them): the next run's snapshot starts a new state with them.

-- The droplets a volume is attached to (empty: attached to none), as text.
ALTER TABLE volumes ADD COLUMN droplet_ids VARCHAR[];
-- The droplets a load balancer balances, and the tag that selects its droplets (the API's
-- `tag`; not the balancer's own tag).
ALTER TABLE load_balancers ADD COLUMN droplet_ids VARCHAR[];
ALTER TABLE load_balancers ADD COLUMN target_tag VARCHAR;

CREATE TABLE reserved_ips (
    team_uuid         VARCHAR NOT NULL,
    resource_id       VARCHAR NOT NULL,  -- the address (`ip`): its id, and items' resource_uuid
    name              VARCHAR,           -- always NULL: a reserved IP has no name
    region            VARCHAR,
    status            VARCHAR,           -- always NULL
    project_id        VARCHAR,
    tags              VARCHAR[] NOT NULL,  -- always empty
    created_at        TIMESTAMPTZ,       -- always NULL: the API does not say
    droplet_id        VARCHAR,           -- the droplet it is assigned to; NULL: none
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);
CREATE TABLE snapshots (
    team_uuid         VARCHAR NOT NULL,
    resource_id       VARCHAR NOT NULL,  -- the snapshot's id: items' resource_uuid (assumed)
    name              VARCHAR,
    region            VARCHAR,           -- the first of `regions`
    status            VARCHAR,           -- always NULL
    project_id        VARCHAR,           -- always NULL: the list does not say
    tags              VARCHAR[] NOT NULL,
    created_at        TIMESTAMPTZ,
    regions           VARCHAR[] NOT NULL,
    origin_id         VARCHAR,           -- the droplet or volume it was taken of (`resource_id`)
    origin_type       VARCHAR,           -- droplet or volume (`resource_type`)
    size_gigabytes    DOUBLE,            -- the billable size
    valid_from        TIMESTAMPTZ NOT NULL,
    valid_to          TIMESTAMPTZ,
    valid_from_month  VARCHAR NOT NULL,
    loaded_at         TIMESTAMPTZ NOT NULL
);

-- Billing Insights (daily costs by SKU and region), billing history and balance snapshots.

-- One row per data point. Points have no id: identical points on one day are distinct charges,
-- told apart by their position in the month's window (point_number).
CREATE TABLE IF NOT EXISTS daily_costs (
    team_urn           VARCHAR NOT NULL,
    usage_month        VARCHAR NOT NULL,   -- YYYY-MM of usage_date: the partition
    point_number       INTEGER NOT NULL,
    usage_date         DATE NOT NULL,
    region             VARCHAR,
    sku                VARCHAR,
    description        VARCHAR,
    group_description  VARCHAR,
    amount             DECIMAL(18, 2) NOT NULL,
    loaded_at          TIMESTAMPTZ NOT NULL
);

-- One row per billing history entry; type as the API sends it, known to the spec or not.
CREATE TABLE IF NOT EXISTS billing_history (
    entry_month   VARCHAR NOT NULL,   -- YYYY-MM of date (UTC): the partition
    entry_number  INTEGER NOT NULL,   -- position in the list as fetched, 1 = newest
    date          TIMESTAMPTZ NOT NULL,
    type          VARCHAR NOT NULL,
    description   VARCHAR,
    amount        DECIMAL(18, 2) NOT NULL,
    invoice_uuid  VARCHAR,
    invoice_id    VARCHAR,
    loaded_at     TIMESTAMPTZ NOT NULL
);

-- One row per balance snapshot, kept as history (a fetch adds its snapshot).
CREATE TABLE IF NOT EXISTS balance (
    generated_at           TIMESTAMPTZ NOT NULL,
    balance_month          VARCHAR NOT NULL,
    month_to_date_balance  DECIMAL(18, 2) NOT NULL,
    account_balance        DECIMAL(18, 2) NOT NULL,
    month_to_date_usage    DECIMAL(18, 2) NOT NULL,
    loaded_at              TIMESTAMPTZ NOT NULL
);

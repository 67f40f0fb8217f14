-- Migration 1: the schema as pipeline/warehouse/schema.sql had it before versioned migrations.
-- Every statement is idempotent, so on a file made by that code this changes nothing.
-- Raw landing: every page exactly as received, so normalization can be replayed offline.
CREATE SCHEMA IF NOT EXISTS raw;

CREATE TABLE IF NOT EXISTS raw.fetches (
    fetch_id      VARCHAR PRIMARY KEY,
    run_id        VARCHAR,
    fetched_at    TIMESTAMPTZ NOT NULL,
    first_period  VARCHAR NOT NULL,
    last_period   VARCHAR NOT NULL,
    api_host      VARCHAR NOT NULL,
    status        VARCHAR NOT NULL,   -- 'ok' or 'incomplete'
    error         VARCHAR,
    requests      INTEGER
);

CREATE TABLE IF NOT EXISTS raw.invoice_list_pages (
    fetch_id  VARCHAR NOT NULL,
    page      INTEGER NOT NULL,
    body      VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.invoices (
    fetch_id        VARCHAR NOT NULL,
    invoice_uuid    VARCHAR NOT NULL,
    invoice_period  VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,
    items_total     INTEGER,
    entry           VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.invoice_item_pages (
    fetch_id        VARCHAR NOT NULL,
    invoice_uuid    VARCHAR NOT NULL,
    invoice_period  VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,
    page            INTEGER NOT NULL,
    body            VARCHAR NOT NULL
);

-- Normalized tables, one row per invoice and per invoice line.
CREATE TABLE IF NOT EXISTS invoices (
    invoice_uuid    VARCHAR NOT NULL,
    invoice_id      VARCHAR,
    invoice_period  VARCHAR NOT NULL,
    amount          DECIMAL(18, 2) NOT NULL,
    status          VARCHAR NOT NULL,
    updated_at      TIMESTAMPTZ,
    items_total     INTEGER,
    loaded_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS invoice_items (
    invoice_uuid       VARCHAR NOT NULL,
    invoice_period     VARCHAR NOT NULL,
    line_number        INTEGER NOT NULL,
    product            VARCHAR,
    category           VARCHAR,
    project_name       VARCHAR,
    resource_uuid      VARCHAR,
    resource_id        VARCHAR,
    group_description  VARCHAR,
    description        VARCHAR,
    amount             DECIMAL(18, 2) NOT NULL,
    duration           DECIMAL(18, 6),
    duration_unit      VARCHAR,
    duration_hours     DOUBLE,
    start_time         TIMESTAMPTZ,
    end_time           TIMESTAMPTZ,
    status             VARCHAR NOT NULL,
    loaded_at          TIMESTAMPTZ NOT NULL
);

-- The newest good fetch of each wanted period; normalization replays from it.
CREATE OR REPLACE MACRO raw.latest_fetch(periods) AS TABLE
    SELECT w.invoice_period, arg_max(f.fetch_id, f.fetched_at) AS fetch_id
    FROM (SELECT unnest(periods) AS invoice_period) AS w
    JOIN raw.fetches AS f
      ON w.invoice_period BETWEEN f.first_period AND f.last_period AND f.status = 'ok'
    GROUP BY w.invoice_period;

CREATE TABLE IF NOT EXISTS raw.invoice_summaries (
    fetched_at      TIMESTAMPTZ NOT NULL,
    invoice_uuid    VARCHAR NOT NULL,
    invoice_period  VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,
    body            VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS invoice_summaries (
    invoice_uuid             VARCHAR NOT NULL,
    invoice_id               VARCHAR,
    invoice_period           VARCHAR NOT NULL,
    status                   VARCHAR NOT NULL,
    amount                   DECIMAL(18, 2) NOT NULL,
    product_charges          DECIMAL(18, 2),
    overages                 DECIMAL(18, 2),
    taxes                    DECIMAL(18, 2),
    credits_and_adjustments  DECIMAL(18, 2),
    user_name                VARCHAR,
    user_company             VARCHAR,
    user_email               VARCHAR,
    loaded_at                TIMESTAMPTZ NOT NULL
);

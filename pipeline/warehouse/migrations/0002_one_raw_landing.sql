-- Migration 2: one raw landing for every source instead of tables per endpoint.
-- raw.pages keeps every response body as received, raw.targets what each fetch set out to load,
-- raw.fetches says which source fetched. The rows of the four old tables move over, then they go.
-- Works on a fresh file (0001 just made the old tables, empty) and on a file with data.

-- Every fetch recorded so far is an invoice fetch.
ALTER TABLE raw.fetches ADD COLUMN source VARCHAR DEFAULT 'invoices';

CREATE TABLE raw.pages (
    fetch_id       VARCHAR NOT NULL,
    endpoint       VARCHAR NOT NULL,   -- the source's name: invoice_list, invoice_items, …
    request_key    VARCHAR,            -- the parent the request was for; NULL for the list
    partition_key  VARCHAR,            -- YYYY-MM; NULL for pages that serve every month
    page           INTEGER NOT NULL,
    body           VARCHAR NOT NULL
);

CREATE TABLE raw.targets (
    fetch_id       VARCHAR NOT NULL,
    target_key     VARCHAR NOT NULL,   -- the parent record fanned out to (invoice uuid)
    partition_key  VARCHAR NOT NULL,
    status         VARCHAR,            -- 'final' or 'preview' for invoices
    entry          VARCHAR             -- the parent's list entry as received, if any
);

INSERT INTO raw.pages (fetch_id, endpoint, request_key, partition_key, page, body)
SELECT fetch_id, 'invoice_list', NULL, NULL, page, body
FROM raw.invoice_list_pages;

INSERT INTO raw.pages (fetch_id, endpoint, request_key, partition_key, page, body)
SELECT fetch_id, 'invoice_items', invoice_uuid, invoice_period, page, body
FROM raw.invoice_item_pages;

-- items_total is not carried over: it is meta.total of the invoice's item page 1, kept above.
INSERT INTO raw.targets (fetch_id, target_key, partition_key, status, entry)
SELECT fetch_id, invoice_uuid, invoice_period, status, entry
FROM raw.invoices;

-- Summaries had no fetch record: each batch (one fetched_at per run) becomes a fetch.
INSERT INTO raw.fetches (fetch_id, source, run_id, fetched_at, first_period, last_period,
                         api_host, status, error, requests)
SELECT 'summaries-' || md5(CAST(fetched_at AS VARCHAR)),
       'invoice_summaries',
       NULL,
       fetched_at,
       min(invoice_period),
       max(invoice_period),
       'unknown (before migration 2)',
       'ok',
       NULL,
       CAST(count(*) AS INTEGER)
FROM raw.invoice_summaries
GROUP BY fetched_at;

INSERT INTO raw.pages (fetch_id, endpoint, request_key, partition_key, page, body)
SELECT 'summaries-' || md5(CAST(fetched_at AS VARCHAR)), 'invoice_summary', invoice_uuid,
       invoice_period, 1, body
FROM raw.invoice_summaries;

INSERT INTO raw.targets (fetch_id, target_key, partition_key, status, entry)
SELECT 'summaries-' || md5(CAST(fetched_at AS VARCHAR)), invoice_uuid, invoice_period, status,
       NULL
FROM raw.invoice_summaries;

DROP TABLE raw.invoice_list_pages;
DROP TABLE raw.invoice_item_pages;
DROP TABLE raw.invoices;
DROP TABLE raw.invoice_summaries;

-- The newest good fetch of a source for each wanted month; normalization replays from it.
CREATE OR REPLACE MACRO raw.latest_fetch(src, periods) AS TABLE
    SELECT w.partition_key, arg_max(f.fetch_id, f.fetched_at) AS fetch_id
    FROM (SELECT unnest(periods) AS partition_key) AS w
    JOIN raw.fetches AS f
      ON f.source = src
     AND w.partition_key BETWEEN f.first_period AND f.last_period
     AND f.status = 'ok'
    GROUP BY w.partition_key;

-- Migration 5: budget and anomaly alerts. One row per alert delivered to one destination, so an
-- alert is sent once to each URL of ALERT_URLS, across runs and processes. A row is written
-- only after that destination accepted the message: a failed delivery is retried next run.
-- The destination is the URL's scheme and a digest of the whole URL, never the URL (it may
-- hold a webhook token).

CREATE TABLE alerts_sent (
    alert_key    VARCHAR NOT NULL,     -- budget:<team>:<month>:<level>, spike:<team>:sku:<sku>:<day>, …
    destination  VARCHAR NOT NULL,     -- e.g. json:3f9a0c1d2b4e5f60
    team_uuid    VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,     -- budget, spike, new_sku
    level        VARCHAR NOT NULL,     -- warn or fail
    title        VARCHAR NOT NULL,     -- the message's title, as sent
    sent_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (alert_key, destination)
);

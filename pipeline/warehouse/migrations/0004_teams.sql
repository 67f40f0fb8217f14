-- Migration 4: several teams in one warehouse. Every table of per-team data and every raw fetch
-- gains team_uuid; `teams` names each team as GET /v2/account last said, and where its token sat
-- in DIGITALOCEAN_TOKENS, so a revoked token can still be named by its team. No token is stored.
--
-- Rows loaded before this migration keep every value and have team_uuid NULL: the next run with
-- one token (the one that loaded them) makes them that team's, in one transaction, before it
-- writes anything. Nothing is guessed when several tokens are set; that run says what to do.

CREATE TABLE teams (
    team_uuid       VARCHAR NOT NULL,
    team_name       VARCHAR NOT NULL,
    token_position  INTEGER NOT NULL,   -- 1-based place in DIGITALOCEAN_TOKENS (1 for _TOKEN)
    first_seen_at   TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ NOT NULL
);

ALTER TABLE raw.fetches ADD COLUMN team_uuid VARCHAR;
ALTER TABLE invoices ADD COLUMN team_uuid VARCHAR;
ALTER TABLE invoice_items ADD COLUMN team_uuid VARCHAR;
ALTER TABLE invoice_summaries ADD COLUMN team_uuid VARCHAR;
ALTER TABLE daily_costs ADD COLUMN team_uuid VARCHAR;
ALTER TABLE billing_history ADD COLUMN team_uuid VARCHAR;
ALTER TABLE balance ADD COLUMN team_uuid VARCHAR;

-- The newest good fetch of a source, for one team, for each wanted month.
CREATE OR REPLACE MACRO raw.latest_team_fetch(src, team, periods) AS TABLE
    SELECT w.partition_key, arg_max(f.fetch_id, f.fetched_at) AS fetch_id
    FROM (SELECT unnest(periods) AS partition_key) AS w
    JOIN raw.fetches AS f
      ON f.source = src
     AND f.team_uuid IS NOT DISTINCT FROM team
     AND w.partition_key BETWEEN f.first_period AND f.last_period
     AND f.status = 'ok'
    GROUP BY w.partition_key;

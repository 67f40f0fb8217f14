-- Migration 9: whether a warehouse holds the built-in sandbox's sample data or teams read with a
-- token. One row, written by the first run that loads the file; a run of the other kind refuses
-- to write here (naming the file), so sample dollars never sum with real ones.
--
-- A file loaded before this was recorded is marked from its teams: the built-in sandbox serves
-- one team, "Example Co" (1cf1703b-1fe8-5c12-94fb-1c7629406c03), so a file holding it holds
-- sample data. A file with other teams only stays unmarked until its next run says which.

CREATE TABLE sample_data (
    sample_data  BOOLEAN NOT NULL,      -- true: the built-in sandbox; false: read with a token
    recorded_at  TIMESTAMPTZ NOT NULL
);

INSERT INTO sample_data
    SELECT true, current_timestamp FROM teams
    WHERE team_uuid = '1cf1703b-1fe8-5c12-94fb-1c7629406c03'
    LIMIT 1;

-- Migration 8: raw keeps the exact bytes received. A body that is not valid UTF-8 cannot be a
-- VARCHAR as it is: `body` holds it read with U+FFFD in place of the bad bytes (what the
-- normalizers parse) and `received` the bytes themselves. NULL when `body` is exact, as every
-- earlier page's is taken to be.

ALTER TABLE raw.pages ADD COLUMN IF NOT EXISTS received BLOB;

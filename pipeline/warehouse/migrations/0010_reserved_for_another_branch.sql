-- Migration 10: a placeholder. Version 10 is taken by another branch; this file only keeps the
-- versions contiguous (migrate.py requires 1, 2, 3 … without gaps) until that branch is merged,
-- when it is replaced by that branch's migration.
SELECT 1;

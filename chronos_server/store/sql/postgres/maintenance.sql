-- PostgreSQL-only maintenance statements (loops/counts.py).

-- name: fold_count_deltas
-- The job-count deltas the triggers of migration 0009 appended, summed into `job_counts` and
-- deleted, in one statement (stats read both in one snapshot: never counted twice or not at
-- all). One replica at a time (a transaction-level advisory lock; the others fold nothing this
-- time); rows appended while it runs are not visible to it and wait for the next fold.
-- Returns how many delta rows were folded.
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(hashtext('chronos.fold_count_deltas')) AS got
), taken AS (
    DELETE FROM job_count_deltas WHERE (SELECT got FROM lock)
    RETURNING account_id, handler, status, delta
), folded AS (
    INSERT INTO job_counts (account_id, handler, status, n)
    SELECT account_id, handler, status, sum(delta) FROM taken
    GROUP BY account_id, handler, status ORDER BY account_id, handler, status
    ON CONFLICT (account_id, handler, status) DO UPDATE SET n = job_counts.n + excluded.n
)
SELECT count(*) AS n FROM taken;

-- name: vacuum_count_deltas
-- The deltas table is all inserts and deletes: without a vacuum its dead rows pile up and the
-- stats' scan of it slows down. Run by the folding loop now and then, whatever autovacuum does;
-- TRUNCATE false: never take the exclusive lock that would hold up the hot path's triggers.
VACUUM (TRUNCATE false) job_count_deltas;

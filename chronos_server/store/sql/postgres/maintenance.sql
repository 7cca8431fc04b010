-- PostgreSQL-only maintenance statements (loops/counts.py).

-- name: fold_count_deltas
-- The job-count deltas the triggers of migrations 0009 and 0011 appended, summed into
-- `job_counts` and `job_finished_counts` and deleted, in one statement (stats read both in one
-- snapshot: never counted twice or not at all). Minutes before :keep_from (older than any
-- window stats can ask for) are dropped: their deltas are not folded and their kept counts are
-- deleted (two disjoint sets of rows). One replica at a time (a transaction-level advisory lock;
-- the others fold nothing this time); rows appended while it runs are not visible to it and wait
-- for the next fold. Returns how many delta rows were folded.
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
), taken_finished AS (
    DELETE FROM job_finished_deltas WHERE (SELECT got FROM lock)
    RETURNING account_id, minute, handler, status, delta
), folded_finished AS (
    INSERT INTO job_finished_counts (account_id, minute, handler, status, n)
    SELECT account_id, minute, handler, status, sum(delta) FROM taken_finished
    WHERE minute >= :keep_from
    GROUP BY account_id, minute, handler, status ORDER BY account_id, minute, handler, status
    ON CONFLICT (account_id, minute, handler, status)
    DO UPDATE SET n = job_finished_counts.n + excluded.n
), dropped AS (
    DELETE FROM job_finished_counts WHERE (SELECT got FROM lock) AND minute < :keep_from
)
SELECT (SELECT count(*) FROM taken) + (SELECT count(*) FROM taken_finished) AS n;

-- name: vacuum_count_deltas
-- The deltas table is all inserts and deletes: without a vacuum its dead rows pile up and the
-- stats' scan of it slows down. Run by the folding loop now and then, whatever autovacuum does;
-- TRUNCATE false: never take the exclusive lock that would hold up the hot path's triggers.
VACUUM (TRUNCATE false) job_count_deltas, job_finished_deltas;

-- name: asynchronous_commit
-- This transaction's commit does not wait for its WAL to reach the disk (retention batches, store/postgres.py
-- `prune`): a batch lost in a crash is deleted again by the next round.
SET LOCAL synchronous_commit = off;

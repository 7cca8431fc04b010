-- Issue 15: "finished in the window" of `GET /v1/stats` from kept per-minute counts, not from an
-- index range. The range of `jobs_stats` grew with the throughput (a server finishing 100 jobs/s
-- has 360,000 rows in the last hour: tens of ms per stats request however few handlers it has).
--
-- Same shape as migration 0009's counts: the statement triggers also append, per (account,
-- handler, terminal status, minute of `finished_at`), how many finished rows a statement added
-- or removed to `job_finished_deltas` (append-only, no index); `fold_count_deltas` folds them
-- into `job_finished_counts` and drops the minutes older than any window stats can ask for
-- (1,440 minutes, plus margin). Stats read both tables in one statement. A NULL handler (push
-- jobs) is counted under ''.

-- Writers wait until this migration commits, so no job finishes between the backfill below and
-- the new trigger functions (readers go on).
LOCK TABLE jobs IN SHARE MODE;

CREATE TABLE job_finished_counts (
    account_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (account_id, minute, handler, status)
);
CREATE TABLE job_finished_deltas (
    account_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    delta BIGINT NOT NULL
);

CREATE OR REPLACE FUNCTION chronos_jobs_counted_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (account_id, handler, status, delta)
    SELECT account_id, coalesce(handler, ''), status, count(*) FROM new_rows GROUP BY 1, 2, 3;
    INSERT INTO job_finished_deltas (account_id, minute, handler, status, delta)
    SELECT account_id, finished_at / 60000, coalesce(handler, ''), status, count(*) FROM new_rows
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION chronos_jobs_counted_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (account_id, handler, status, delta)
    SELECT account_id, handler, status, sum(d) FROM (
        SELECT account_id, coalesce(handler, '') AS handler, status, 1 AS d FROM new_rows
        UNION ALL
        SELECT account_id, coalesce(handler, ''), status, -1 FROM old_rows) AS moved
    GROUP BY 1, 2, 3 HAVING sum(d) <> 0;
    INSERT INTO job_finished_deltas (account_id, minute, handler, status, delta)
    SELECT account_id, minute, handler, status, sum(d) FROM (
        SELECT account_id, finished_at / 60000 AS minute, coalesce(handler, '') AS handler,
            status, 1 AS d
        FROM new_rows
        WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL
        UNION ALL
        SELECT account_id, finished_at / 60000, coalesce(handler, ''), status, -1 FROM old_rows
        WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL
    ) AS moved
    GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION chronos_jobs_counted_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (account_id, handler, status, delta)
    SELECT account_id, coalesce(handler, ''), status, -count(*) FROM old_rows GROUP BY 1, 2, 3;
    INSERT INTO job_finished_deltas (account_id, minute, handler, status, delta)
    SELECT account_id, finished_at / 60000, coalesce(handler, ''), status, -count(*) FROM old_rows
    WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at IS NOT NULL
    GROUP BY 1, 2, 3, 4;
    RETURN NULL;
END $$;

-- The jobs already stored that finished within the longest window. 1,500 minutes: the 1,440 of
-- the longest window plus the margin the fold keeps.
INSERT INTO job_finished_counts (account_id, minute, handler, status, n)
SELECT account_id, finished_at / 60000, coalesce(handler, ''), status, count(*) FROM jobs
WHERE status IN ('completed', 'failed', 'cancelled')
  AND finished_at >= (extract(epoch FROM now()) * 1000)::bigint - 1500 * 60000
GROUP BY 1, 2, 3, 4;

-- Issue 15: stats that do not scan, lists served by indexes, retention.
--
-- Per-(account, handler, status) job counts. Statement-level triggers (transition tables) append
-- one row per (account, handler, status) a statement changed to `job_count_deltas`: an
-- append-only heap with no index, so the hot path's statements never wait on a shared counter
-- row. `loops/counts.py` folds the deltas into `job_counts` (one replica at a time, an advisory
-- lock); stats read job_counts + the unfolded deltas in ONE statement (one snapshot), so they
-- are exact whenever they are read. A NULL handler (push jobs) is counted under ''.
CREATE TABLE job_counts (
    account_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (account_id, handler, status)
);
CREATE TABLE job_count_deltas (
    account_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    delta BIGINT NOT NULL
);

CREATE FUNCTION chronos_jobs_counted_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (account_id, handler, status, delta)
    SELECT account_id, coalesce(handler, ''), status, count(*) FROM new_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION chronos_jobs_counted_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (account_id, handler, status, delta)
    SELECT account_id, handler, status, sum(d) FROM (
        SELECT account_id, coalesce(handler, '') AS handler, status, 1 AS d FROM new_rows
        UNION ALL
        SELECT account_id, coalesce(handler, ''), status, -1 FROM old_rows) AS moved
    GROUP BY 1, 2, 3 HAVING sum(d) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION chronos_jobs_counted_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_count_deltas (account_id, handler, status, delta)
    SELECT account_id, coalesce(handler, ''), status, -count(*) FROM old_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chronos_jobs_counted_insert();
CREATE TRIGGER jobs_counted_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chronos_jobs_counted_update();
CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chronos_jobs_counted_delete();

-- The jobs already stored (CREATE TRIGGER holds off writers until this migration commits).
INSERT INTO job_counts (account_id, handler, status, n)
SELECT account_id, coalesce(handler, ''), status, count(*) FROM jobs GROUP BY 1, 2, 3;

-- Lists: newest first (created_at/started_at DESC, id DESC) under every filter the API offers.
CREATE INDEX jobs_list_status ON jobs (account_id, status, created_at);
CREATE INDEX jobs_list_handler ON jobs (account_id, handler, created_at);
CREATE INDEX jobs_list_schedule ON jobs (schedule_id, created_at);
CREATE INDEX executions_list_status ON executions (account_id, status, started_at);
CREATE INDEX schedules_list_status ON schedules (account_id, status, created_at);
CREATE INDEX schedules_list_handler ON schedules (account_id, handler, created_at);
-- The deltas table churns (appended, folded away every second): vacuum it early.
ALTER TABLE job_count_deltas SET (autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000);

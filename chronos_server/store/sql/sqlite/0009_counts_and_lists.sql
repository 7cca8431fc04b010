-- Issue 15: stats that do not scan, lists served by indexes, retention (see the PostgreSQL
-- 0009). SQLite has one writer, so row triggers keep `job_counts` itself up to date (no shared
-- counter row to contend for); `job_count_deltas` stays empty and exists so the stats query
-- reads the same on both stores. A NULL handler (push jobs) is counted under ''.
CREATE TABLE job_counts (
    account_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (account_id, handler, status)
);
CREATE TABLE job_count_deltas (
    account_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    delta INTEGER NOT NULL
);

CREATE TRIGGER jobs_counted_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_counts (account_id, handler, status, n)
    VALUES (NEW.account_id, coalesce(NEW.handler, ''), NEW.status, 1)
    ON CONFLICT (account_id, handler, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_counted_update AFTER UPDATE OF status ON jobs
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE job_counts SET n = n - 1
    WHERE account_id = OLD.account_id AND handler = coalesce(OLD.handler, '')
      AND status = OLD.status;
    INSERT INTO job_counts (account_id, handler, status, n)
    VALUES (NEW.account_id, coalesce(NEW.handler, ''), NEW.status, 1)
    ON CONFLICT (account_id, handler, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_counted_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1
    WHERE account_id = OLD.account_id AND handler = coalesce(OLD.handler, '')
      AND status = OLD.status;
END;

INSERT INTO job_counts (account_id, handler, status, n)
SELECT account_id, coalesce(handler, ''), status, count(*) FROM jobs GROUP BY 1, 2, 3;

CREATE INDEX jobs_list_status ON jobs (account_id, status, created_at);
CREATE INDEX jobs_list_handler ON jobs (account_id, handler, created_at);
CREATE INDEX jobs_list_schedule ON jobs (schedule_id, created_at);
CREATE INDEX executions_list_status ON executions (account_id, status, started_at);
CREATE INDEX schedules_list_status ON schedules (account_id, status, created_at);
CREATE INDEX schedules_list_handler ON schedules (account_id, handler, created_at);

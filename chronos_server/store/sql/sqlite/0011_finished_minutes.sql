-- Issue 15: "finished in the window" of `GET /v1/stats` from kept per-minute counts, not from an
-- index range (see the PostgreSQL 0011). SQLite has one writer, so row triggers keep
-- `job_finished_counts` itself up to date: +1 in the minute of `finished_at` when a row becomes
-- finished (inserted so, or moved there), -1 when a finished row leaves that (status or
-- `finished_at` changed, or deleted). The counts loop drops the minutes older than any window
-- stats can ask for. A NULL handler (push jobs) is counted under ''.
CREATE TABLE job_finished_counts (
    account_id TEXT NOT NULL,
    minute INTEGER NOT NULL,
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (account_id, minute, handler, status)
);

CREATE TRIGGER jobs_finished_insert AFTER INSERT ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.finished_at IS NOT NULL
BEGIN
    INSERT INTO job_finished_counts (account_id, minute, handler, status, n)
    VALUES (NEW.account_id, NEW.finished_at / 60000, coalesce(NEW.handler, ''), NEW.status, 1)
    ON CONFLICT (account_id, minute, handler, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_finished_leave AFTER UPDATE OF status, finished_at ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled') AND OLD.finished_at IS NOT NULL
  AND (OLD.status IS NOT NEW.status OR OLD.finished_at IS NOT NEW.finished_at)
BEGIN
    UPDATE job_finished_counts SET n = n - 1
    WHERE account_id = OLD.account_id AND minute = OLD.finished_at / 60000
      AND handler = coalesce(OLD.handler, '') AND status = OLD.status;
END;

CREATE TRIGGER jobs_finished_enter AFTER UPDATE OF status, finished_at ON jobs
WHEN NEW.status IN ('completed', 'failed', 'cancelled') AND NEW.finished_at IS NOT NULL
  AND (OLD.status IS NOT NEW.status OR OLD.finished_at IS NOT NEW.finished_at)
BEGIN
    INSERT INTO job_finished_counts (account_id, minute, handler, status, n)
    VALUES (NEW.account_id, NEW.finished_at / 60000, coalesce(NEW.handler, ''), NEW.status, 1)
    ON CONFLICT (account_id, minute, handler, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_finished_delete AFTER DELETE ON jobs
WHEN OLD.status IN ('completed', 'failed', 'cancelled') AND OLD.finished_at IS NOT NULL
BEGIN
    UPDATE job_finished_counts SET n = n - 1
    WHERE account_id = OLD.account_id AND minute = OLD.finished_at / 60000
      AND handler = coalesce(OLD.handler, '') AND status = OLD.status;
END;

-- The jobs already stored that finished within the longest window (1,440 minutes, plus the
-- margin the counts loop keeps).
INSERT INTO job_finished_counts (account_id, minute, handler, status, n)
SELECT account_id, finished_at / 60000, coalesce(handler, ''), status, count(*) FROM jobs
WHERE status IN ('completed', 'failed', 'cancelled')
  AND finished_at >= CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 1500 * 60000
GROUP BY 1, 2, 3, 4;

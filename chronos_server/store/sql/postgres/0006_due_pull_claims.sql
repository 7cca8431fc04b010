-- A claim may take a due pull job straight from `pending`/`retrying` (hotpath.sql claim_jobs):
-- at its due instant the admission loop wakes a parked claimer of its handler, which starts it
-- in one statement, instead of an admission pass making it `ready` first.
CREATE INDEX jobs_due_pull ON jobs (account_id, handler, run_at, created_at)
    WHERE status IN ('pending', 'retrying') AND delivery_type = 'pull';

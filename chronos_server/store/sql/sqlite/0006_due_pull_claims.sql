-- PostgreSQL's claims take due pull jobs straight from `pending` (see its 0006); SQLite's claims
-- take `ready` jobs only, but keeps the schema versions in step.
CREATE INDEX jobs_due_pull ON jobs (account_id, handler, run_at, created_at)
    WHERE status IN ('pending', 'retrying') AND delivery_type = 'pull';

-- Index for GET /v1/stats: per-state counts and per-minute throughput without loading jobs.
CREATE INDEX jobs_stats ON jobs (account_id, status, finished_at, handler);

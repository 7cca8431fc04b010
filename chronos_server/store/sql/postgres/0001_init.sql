-- Chronos schema, version 1 (PostgreSQL). Times are BIGINT Unix milliseconds, UTC; the SQL
-- never reads the clock. JSON travels as TEXT, exactly as on SQLite (rows.py owns the mapping).
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    signing_secret TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    description TEXT,
    handler TEXT,
    cron TEXT,
    interval_value INTEGER,
    interval_unit TEXT,
    timezone TEXT NOT NULL,
    runs INTEGER,
    stop_at BIGINT,
    delivery TEXT NOT NULL,
    payload TEXT,
    timeout INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    status TEXT NOT NULL,
    run_count INTEGER NOT NULL DEFAULT 0,
    next_run_at BIGINT,
    last_run_at BIGINT,
    anchor_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    archived_at BIGINT
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE status = 'active';
CREATE INDEX schedules_account ON schedules (account_id, created_at);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    schedule_id TEXT REFERENCES schedules(id),
    name TEXT NOT NULL,
    description TEXT,
    handler TEXT,
    delivery_type TEXT NOT NULL,
    delivery TEXT NOT NULL,
    payload TEXT,
    timeout INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    idempotency_key TEXT,
    status TEXT NOT NULL,
    scheduled_for BIGINT NOT NULL,
    run_at BIGINT NOT NULL,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    last_execution_id TEXT,
    first_trigger TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
-- The spawn key `{schedule_id}.{slot_ms}` and client keys: INSERT ... ON CONFLICT DO NOTHING.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Partial indexes on exactly the states the pipeline scans, so each scan (and its
-- FOR UPDATE SKIP LOCKED) only walks the rows it may take.
CREATE INDEX jobs_due ON jobs (run_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX jobs_admitting ON jobs (updated_at) WHERE status = 'admitting';
CREATE INDEX jobs_queued ON jobs (run_at) WHERE status = 'queued';
CREATE INDEX jobs_ready ON jobs (account_id, handler, run_at, created_at) WHERE status = 'ready';
CREATE INDEX jobs_account ON jobs (account_id, created_at);
CREATE INDEX jobs_schedule ON jobs (schedule_id, status);

CREATE TABLE executions (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES jobs(id),
    account_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    duration_ms BIGINT,
    lease_expires_at BIGINT,
    worker TEXT,
    result TEXT,
    error TEXT,
    http_status INTEGER,
    response_body TEXT,
    UNIQUE (job_id, attempt)
);
CREATE INDEX executions_lease ON executions (lease_expires_at) WHERE status = 'running';
CREATE INDEX executions_account ON executions (account_id, started_at);
CREATE INDEX executions_job ON executions (job_id, attempt);

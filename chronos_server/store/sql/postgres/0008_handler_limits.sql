-- Per-handler limits (extension; README "Handler limits"). A row limits the jobs of one
-- (account, handler): `max_running` jobs at once (`ready` + `running`, and push jobs released
-- but not yet sent, `queued`), `max_per_second` starts per second (a token bucket: `tokens` as of
-- `tokens_at`). The admitting transaction locks the row (FOR UPDATE): however many servers
-- admit, they count and release one after another.
CREATE TABLE handler_limits (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    handler TEXT NOT NULL,
    max_running INTEGER CHECK (max_running >= 1),
    max_per_second DOUBLE PRECISION CHECK (max_per_second > 0),
    tokens DOUBLE PRECISION NOT NULL,
    tokens_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, handler),
    CHECK (max_running IS NOT NULL OR max_per_second IS NOT NULL)
);

-- A due job of a limited handler is stored with status 'limited' (the API shows `queued`) until
-- its limit lets it go on (`ready` for pull, `queued` for the push sender). Only such jobs are in
-- this index, so handlers without a limit never touch it.
CREATE INDEX jobs_limited ON jobs (account_id, handler, run_at, created_at)
    WHERE status = 'limited';

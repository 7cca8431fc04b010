-- The claim of migration 0013, its update driven by the row addresses (`ctid`) the claim's own
-- FOR UPDATE just locked instead of by `id = ANY (ARRAY(...))`. The function keeps one generic
-- plan per connection, made at its first call; on a table that was small then (a new server, or
-- statistics not analysed since the table grew), that plan updated the picked jobs with a scan
-- of all of `jobs` (seen: 0.4 ms of a 0.5 ms claim with 3,000 jobs, "Rows Removed by Filter:
-- 2999"). A TID scan fetches exactly the locked rows whatever the statistics say; the rows stay
-- locked by this statement until it commits, so their addresses cannot change under it (and
-- were one updated meanwhile, PostgreSQL's re-check of the newest version still applies the
-- status guard). Nothing else changes; 0012's and 0013's signatures stay as they were.
--
-- Everything else (the generic plan, no JIT) as 0012 explains.
CREATE OR REPLACE FUNCTION chronos_claim_jobs(p_handlers TEXT[], p_account_id TEXT, p_limit BIGINT,
    p_now BIGINT, p_worker TEXT, p_due_by BIGINT) RETURNS SETOF jobs LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET jit = off AS $fn$
BEGIN
    RETURN QUERY
    WITH ready_jobs AS (
        SELECT c.* FROM unnest(p_handlers::text[]) AS h(name),
        LATERAL (
            SELECT ctid, id, run_at, created_at FROM jobs
            WHERE status = 'ready' AND account_id = p_account_id AND handler = h.name
            ORDER BY run_at, created_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED) AS c
    ), due_jobs AS (
        SELECT c.* FROM unnest(p_handlers::text[]) AS h(name),
        LATERAL (
            SELECT j.ctid, id, run_at, created_at FROM jobs j
            WHERE status IN ('pending', 'retrying') AND delivery_type = 'pull'
              AND account_id = p_account_id AND handler = h.name AND run_at <= p_due_by
              AND (j.schedule_id IS NULL OR NOT EXISTS (
                  SELECT 1 FROM schedules s WHERE s.id = j.schedule_id AND s.status = 'archived'))
              AND NOT EXISTS (
                  SELECT 1 FROM handler_limits l
                  WHERE l.account_id = p_account_id AND l.handler = h.name)
            ORDER BY run_at, created_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED) AS c
    ), picked AS (
        SELECT ctid FROM (SELECT * FROM ready_jobs UNION ALL SELECT * FROM due_jobs) AS candidates
        ORDER BY run_at, created_at, id LIMIT p_limit
    ), started AS (
        UPDATE jobs SET status = 'running', attempt_count = jobs.attempt_count + 1,
            last_execution_id = gen_random_uuid()::text, updated_at = p_now
        WHERE jobs.ctid = ANY (ARRAY(SELECT ctid FROM picked))
          AND jobs.status IN ('ready', 'pending', 'retrying')
        RETURNING jobs.*
    ), executions_started AS (
        INSERT INTO executions (id, job_id, account_id, attempt, trigger, status, started_at,
            lease_expires_at, worker)
        SELECT s.last_execution_id, s.id, s.account_id, s.attempt_count,
            CASE WHEN s.attempt_count = 1 THEN s.first_trigger ELSE 'system_retry' END,
            'running', st.at, st.at + s.timeout * 1000::bigint, p_worker
        FROM started s,
        LATERAL (SELECT CASE WHEN p_due_by > p_now THEN GREATEST(p_now, s.run_at)
            ELSE p_now END AS at) AS st
    )
    SELECT * FROM started ORDER BY run_at, created_at, id;
END $fn$;

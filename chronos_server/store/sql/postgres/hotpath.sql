-- The PostgreSQL hot path: a claim, a report of completed executions and the insert of one or
-- many new jobs as ONE statement each (autocommit: one round trip, no BEGIN/COMMIT), where the
-- shared transactions take several.
-- The same compare-and-set as theirs: a job moves only from `ready`, an execution only from
-- `running`; `tests/store` runs the same suite on both paths.

-- name: claim_jobs
-- Up to :limit jobs of the named handlers, oldest run_at first, each started: job `running`
-- with attempt + 1, a new `running` execution (its trigger as
-- `core.transitions.trigger_for_attempt`: the job's own first, then `system_retry`), lease =
-- now + timeout. Taken from `ready` (index `jobs_ready`) and, so that a claimer woken at a due
-- instant needs no admission pass first, from due `pending`/`retrying` pull jobs not under an
-- archived schedule (index `jobs_due_pull`; the same rule admission applies, in one statement)
-- and of a handler without a limit (a limited handler's jobs start only as admission releases
-- them; for the others this is one probe of the small `handler_limits` per handler).
-- The statement is the function `chronos_claim_jobs` (migration 0012: one generic plan per
-- connection instead of a fresh plan per call; 0013: due jobs are taken if due by :due_by,
-- each started as of max(:now, its run_at) when :due_by is later than :now).
SELECT * FROM chronos_claim_jobs(:handlers, :account_id, :limit, :now, :worker, :due_by);

-- name: complete_reported
-- Reports of `completed` (:items = [{id, result}]) for executions of :account_id: each running
-- one is finished at :now and its job completed; returned with `done` true. The others come
-- back as they stood (`done` false) for the caller to say why (unknown, lease expired,
-- already finished); an id with no row of this account does not come back at all.
-- Executions are found by key (`id = ANY (ARRAY(...))`, an index probe per item) and the
-- look-up of the ones not finished runs only when there are some: joined to the items as a
-- set (which PostgreSQL guesses at 100 rows) both once scanned all of `executions` whenever its
-- statistics were older than its growth (0.7 ms a one-job report at 3,000 executions).
WITH x AS (
    SELECT * FROM jsonb_to_recordset(:items::jsonb) AS x(id TEXT, result TEXT)
), done AS (
    UPDATE executions e SET status = 'completed', finished_at = GREATEST(:now, e.started_at),
        duration_ms = GREATEST(:now - e.started_at, 0), result = x.result, error = NULL
    FROM x WHERE e.id = ANY (ARRAY(SELECT id FROM x)) AND e.id = x.id
        AND e.account_id = :account_id AND e.status = 'running'
    RETURNING e.*
), jobs_done AS (
    UPDATE jobs j SET status = 'completed', finished_at = d.finished_at, last_error = NULL,
        updated_at = :now
    FROM done d WHERE j.id = d.job_id AND j.status = 'running' AND j.last_execution_id = d.id
), missed AS (
    SELECT x.id FROM x WHERE NOT EXISTS (SELECT 1 FROM done d WHERE d.id = x.id)
)
SELECT d.*, true AS done FROM done d
UNION ALL
SELECT e.*, false AS done FROM executions e
WHERE EXISTS (SELECT 1 FROM missed) AND e.id = ANY (ARRAY(SELECT id FROM missed))
    AND e.account_id = :account_id;

-- name: admit_pass
-- One admission pass as one statement: due `pending`/`retrying` jobs moved on exactly as
-- `admit_due_jobs` does, a NOTIFY per 20 (account, handler) pairs made ready (the payload
-- `pg_listen.decode_ready` reads; delivered on commit), and the next due times. Rows: one per
-- (account, handler, status) moved with its count, then one `next` row whose `n` is the next due
-- job's run_at (not counting the ones just moved) — with its account and, for a pull job, its
-- handler, so a claimer of it can be woken at that instant —, `next_schedule` the next schedule slot and `held`
-- whether any job waits behind another of its schedule (`overlap: queue`; a probe of the
-- almost always empty `jobs_held` index), `limited` whether any job waits for its handler's
-- limit (a probe of `jobs_limited`, empty unless limits hold jobs back), `next_push` the next
-- push job's run_at (admission wakes the push lead before it). A due job of a handler with a
-- limit becomes `limited`; the caller then releases what the limits allow. Push jobs due by
-- `push_by` (the push lead ahead) are taken too: the sender starts them ahead, each sent at its
-- instant.
WITH due AS (
    SELECT id FROM (
        SELECT id FROM jobs WHERE status IN ('pending', 'retrying') AND run_at <= :now
        ORDER BY run_at LIMIT :limit
        FOR UPDATE SKIP LOCKED) AS now_due
    UNION ALL
    SELECT id FROM (
        SELECT id FROM jobs
        WHERE status IN ('pending', 'retrying') AND delivery_type = 'push'
          AND run_at > :now AND run_at <= :push_by
        ORDER BY run_at LIMIT :limit
        FOR UPDATE SKIP LOCKED) AS push_ahead
), moved AS (
    UPDATE jobs SET status = CASE
            WHEN schedule_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM schedules s WHERE s.id = jobs.schedule_id AND s.status = 'archived')
            THEN 'cancelled' WHEN EXISTS (
                SELECT 1 FROM handler_limits l
                WHERE l.account_id = jobs.account_id AND l.handler = jobs.handler)
            THEN 'limited' WHEN delivery_type = 'pull' THEN 'ready' ELSE 'queued' END,
        finished_at = CASE
            WHEN schedule_id IS NOT NULL AND EXISTS (
                SELECT 1 FROM schedules s WHERE s.id = jobs.schedule_id AND s.status = 'archived')
            THEN :now ELSE NULL END,
        updated_at = :now
    FROM due WHERE jobs.id = due.id
    RETURNING jobs.account_id, jobs.handler, jobs.status
), counts AS (
    SELECT account_id, handler, status, count(*) AS n FROM moved
    GROUP BY account_id, handler, status
), ready AS (
    SELECT account_id, handler, n, (row_number() OVER (ORDER BY account_id, handler) - 1) / 20
        AS chunk
    FROM counts WHERE status = 'ready'
), notified AS (
    SELECT pg_notify(:channel, json_build_object(
        'o', :origin::text, 'r', json_agg(json_build_array(account_id, handler, n)))::text)
    FROM ready GROUP BY chunk
)
SELECT account_id, handler, status, n, NULL::bigint AS next_schedule, NULL::boolean AS held,
    NULL::boolean AS limited, NULL::bigint AS next_push
FROM counts
UNION ALL
SELECT following.account_id, following.handler, 'next', following.run_at,
    (SELECT min(next_run_at) FROM schedules WHERE status = 'active'),
    EXISTS (SELECT 1 FROM jobs WHERE status = 'held'),
    -- (This statement's own moves are not in its snapshot of `jobs`: `counts` has them.)
    EXISTS (SELECT 1 FROM jobs WHERE status = 'limited')
        OR EXISTS (SELECT 1 FROM counts WHERE status = 'limited'),
    (SELECT run_at FROM jobs
     WHERE status IN ('pending', 'retrying') AND delivery_type = 'push'
       AND id NOT IN (SELECT id FROM due)
     ORDER BY run_at LIMIT 1)
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT account_id, CASE WHEN delivery_type = 'pull' AND NOT EXISTS (
            SELECT 1 FROM handler_limits l
            WHERE l.account_id = jobs.account_id AND l.handler = jobs.handler)
        THEN handler END AS handler, run_at
    FROM jobs WHERE status IN ('pending', 'retrying') AND id NOT IN (SELECT id FROM due)
    ORDER BY run_at LIMIT 1) AS following ON true
WHERE (SELECT count(*) FROM notified) >= 0;

-- name: insert_jobs
-- Jobs (:items, a JSON array of rows as `rows.job_params` makes them; no idempotency key twice)
-- in one statement: each inserted, or skipped if its idempotency key, or its id, is taken.
-- Rows: every job inserted (`holder` NULL), and every skipped one with what this statement can
-- see of the row that kept it out (`holder`: that job's id; the job's own id if it is stored
-- already, by a run of this same statement whose answer was lost with its connection: so the
-- statement may run again). A job kept out by a row committed after the statement began (it
-- waited for it) is not returned: the caller looks that row up.
WITH x AS (
    SELECT * FROM json_to_recordset(:items::json) AS x(id TEXT, account_id TEXT,
        schedule_id TEXT, name TEXT, description TEXT, handler TEXT, delivery_type TEXT,
        delivery TEXT, payload TEXT, timeout INTEGER, max_retries INTEGER,
        idempotency_key TEXT, status TEXT, scheduled_for BIGINT, run_at BIGINT,
        attempt_count INTEGER, last_execution_id TEXT, first_trigger TEXT, created_at BIGINT,
        updated_at BIGINT, finished_at BIGINT, replay_of TEXT)
), inserted AS (
    INSERT INTO jobs (id, account_id, schedule_id, name, description, handler, delivery_type,
        delivery, payload, timeout, max_retries, idempotency_key, status, scheduled_for, run_at,
        attempt_count, last_execution_id, first_trigger, created_at, updated_at, finished_at,
        replay_of)
    SELECT id, account_id, schedule_id, name, description, handler, delivery_type,
        delivery, payload, timeout, max_retries, idempotency_key, status, scheduled_for, run_at,
        attempt_count, last_execution_id, first_trigger, created_at, updated_at, finished_at,
        replay_of
    FROM x
    ON CONFLICT DO NOTHING
    RETURNING id
), skipped AS (
    SELECT * FROM x WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE i.id = x.id)
)
SELECT id, NULL::text AS holder FROM inserted
UNION ALL
SELECT s.id, j.id FROM skipped s JOIN jobs j ON j.id = s.id
UNION ALL
SELECT s.id, j.id FROM skipped s JOIN jobs j
    ON j.account_id = s.account_id AND j.idempotency_key = s.idempotency_key
WHERE s.idempotency_key IS NOT NULL;

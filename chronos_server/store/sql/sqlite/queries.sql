-- Named queries for the SQLite store. Each block starts with `-- name: <query_name>`.
-- Parameters use :name style. Times are Unix milliseconds; SQL never reads the clock.

-- name: insert_account
INSERT INTO accounts (id, name, timezone, signing_secret, created_at)
VALUES (:id, :name, 'UTC', :signing_secret, :now)
ON CONFLICT (name) DO NOTHING;

-- name: account_by_name
SELECT * FROM accounts WHERE name = :name;

-- name: account_by_id
SELECT * FROM accounts WHERE id = :id;

-- name: count_accounts
SELECT count(*) AS n FROM accounts;

-- name: set_signing_secret
-- A secret set as is (bootstrap, first key). The overlap of a rotation survives only if the
-- secret is the one already in force (a restart with CHRONOS_BOOTSTRAP_SIGNING_SECRET unchanged).
UPDATE accounts SET
    signing_secret_previous = CASE WHEN signing_secret = :secret
        THEN signing_secret_previous END,
    signing_secret_previous_until = CASE WHEN signing_secret = :secret
        THEN signing_secret_previous_until END,
    signing_secret = :secret
WHERE id = :id;

-- name: signing_secrets
SELECT signing_secret, signing_secret_previous, signing_secret_previous_until
FROM accounts WHERE id = :id;

-- name: rotate_signing_secret_at_once
UPDATE accounts SET signing_secret = :secret, signing_secret_previous = NULL,
    signing_secret_previous_until = NULL
WHERE id = :id;

-- name: rotate_signing_secret_with_overlap
-- The secret in force becomes the previous one (an older previous one is dropped); an account
-- that had no secret yet has nothing to keep.
UPDATE accounts SET
    signing_secret_previous = signing_secret,
    signing_secret_previous_until = CASE WHEN signing_secret IS NOT NULL THEN :until END,
    signing_secret = :secret
WHERE id = :id;

-- name: drop_expired_signing_secrets
UPDATE accounts SET signing_secret_previous = NULL, signing_secret_previous_until = NULL
WHERE signing_secret_previous_until <= :now;

-- name: insert_api_key
INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at)
VALUES (:id, :account_id, :key_hash, :prefix, :now)
ON CONFLICT (key_hash) DO NOTHING;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = :now
WHERE (prefix = :key OR key_hash = :key) AND revoked_at IS NULL;

-- name: account_for_key
SELECT a.* FROM api_keys k JOIN accounts a ON a.id = k.account_id
WHERE k.key_hash = :key_hash AND k.revoked_at IS NULL;

-- name: insert_schedule
INSERT INTO schedules (id, account_id, name, description, handler, cron, interval_value,
    interval_unit, timezone, runs, stop_at, delivery, payload, timeout, max_retries, status,
    run_count, next_run_at, last_run_at, anchor_at, created_at, updated_at, completed_at,
    archived_at, catch_up, catch_up_limit, overlap, paused_at, paused_next_run_at)
VALUES (:id, :account_id, :name, :description, :handler, :cron, :interval_value,
    :interval_unit, :timezone, :runs, :stop_at, :delivery, :payload, :timeout, :max_retries,
    :status, :run_count, :next_run_at, :last_run_at, :anchor_at, :created_at, :updated_at,
    :completed_at, :archived_at, :catch_up, :catch_up_limit, :overlap, :paused_at,
    :paused_next_run_at);

-- name: replace_schedule
UPDATE schedules SET name = :name, description = :description, handler = :handler,
    cron = :cron, interval_value = :interval_value, interval_unit = :interval_unit,
    timezone = :timezone, runs = :runs, stop_at = :stop_at, delivery = :delivery,
    payload = :payload, timeout = :timeout, max_retries = :max_retries, status = :status,
    run_count = :run_count, next_run_at = :next_run_at, last_run_at = :last_run_at,
    anchor_at = :anchor_at, updated_at = :updated_at, completed_at = :completed_at,
    archived_at = :archived_at, catch_up = :catch_up, catch_up_limit = :catch_up_limit,
    overlap = :overlap, paused_at = :paused_at, paused_next_run_at = :paused_next_run_at
WHERE id = :id AND account_id = :account_id AND status = :expected_status
  AND updated_at = :expected_updated_at;

-- name: get_schedule
SELECT * FROM schedules WHERE id = :id AND account_id = :account_id;

-- name: get_schedule_any
SELECT * FROM schedules WHERE id = :id;



-- name: due_schedules
SELECT * FROM schedules
WHERE status = 'active' AND next_run_at <= :now
ORDER BY next_run_at LIMIT :limit;

-- name: archive_schedule
UPDATE schedules SET status = 'archived', archived_at = :now, updated_at = :now,
    next_run_at = NULL, paused_at = NULL, paused_next_run_at = NULL
WHERE id = :id AND status = 'active';

-- name: cancel_schedule_jobs
UPDATE jobs SET status = 'cancelled', finished_at = :now, updated_at = :now
WHERE schedule_id = :schedule_id
  AND status IN ('pending', 'held', 'admitting', 'queued', 'limited', 'ready', 'retrying');

-- name: insert_job
-- Jobs of clients (with their idempotency key) and manual runs; never a spawn_slot.
INSERT INTO jobs (id, account_id, schedule_id, name, description, handler, delivery_type,
    delivery, payload, timeout, max_retries, idempotency_key, status, scheduled_for, run_at,
    attempt_count, last_execution_id, first_trigger, created_at, updated_at, finished_at,
    replay_of)
VALUES (:id, :account_id, :schedule_id, :name, :description, :handler, :delivery_type,
    :delivery, :payload, :timeout, :max_retries, :idempotency_key, :status, :scheduled_for,
    :run_at, :attempt_count, :last_execution_id, :first_trigger, :created_at, :updated_at,
    :finished_at, :replay_of)
ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING;

-- name: insert_spawned_job
-- A schedule's job for one slot: exactly once per (schedule, slot) however many replicas try,
-- in its own namespace (jobs_spawn, 0003), so no client key can take the slot. No idempotency_key.
INSERT INTO jobs (id, account_id, schedule_id, name, description, handler, delivery_type,
    delivery, payload, timeout, max_retries, spawn_slot, status, scheduled_for, run_at,
    attempt_count, last_execution_id, first_trigger, created_at, updated_at, finished_at)
VALUES (:id, :account_id, :schedule_id, :name, :description, :handler, :delivery_type,
    :delivery, :payload, :timeout, :max_retries, :spawn_slot, :status, :scheduled_for,
    :run_at, :attempt_count, :last_execution_id, :first_trigger, :created_at, :updated_at,
    :finished_at)
ON CONFLICT (schedule_id, spawn_slot) WHERE spawn_slot IS NOT NULL DO NOTHING;

-- name: job_by_idempotency_key
SELECT id FROM jobs WHERE account_id = :account_id AND idempotency_key = :key;

-- name: get_job
SELECT * FROM jobs WHERE id = :id AND account_id = :account_id;

-- name: get_job_any
SELECT * FROM jobs WHERE id = :id;



-- name: cancel_job
UPDATE jobs SET status = 'cancelled', finished_at = :now, updated_at = :now
WHERE id = :id AND account_id = :account_id
  AND status IN ('pending', 'held', 'admitting', 'queued', 'limited', 'ready', 'retrying');

-- name: replayable_jobs
-- The bulk replay's originals (`store.base.ReplayFilter`): finished jobs of the account, by
-- status and the optional filters, not replayed before, earliest finished first.
SELECT * FROM jobs j
WHERE account_id = :account_id
  AND status IN (SELECT value FROM json_each(:statuses))
  AND (:handler IS NULL OR handler = :handler)
  AND (:schedule_id IS NULL OR schedule_id = :schedule_id)
  AND (:since IS NULL OR finished_at >= :since)
  AND (:until IS NULL OR finished_at < :until)
  AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.replay_of = j.id)
ORDER BY finished_at, id LIMIT :limit;

-- name: queue_counts
-- Open jobs of every account per handler and state (metrics, at most once per scrape interval):
-- each state through its own partial index (jobs_ready, jobs_due, jobs_held, jobs_admitting,
-- jobs_queued, jobs_limited: shown as `queued`), and `running` through the running executions (executions_lease), since no
-- index covers running jobs; a running job has exactly one running execution.
SELECT handler, status, count(*) AS n FROM jobs WHERE status = 'ready' GROUP BY handler, status
UNION ALL
SELECT handler, status, count(*) AS n FROM jobs WHERE status IN ('pending', 'retrying')
GROUP BY handler, status
UNION ALL
SELECT handler, status, count(*) AS n FROM jobs WHERE status = 'held' GROUP BY handler, status
UNION ALL
SELECT handler, status, count(*) AS n FROM jobs WHERE status = 'admitting'
GROUP BY handler, status
UNION ALL
SELECT handler, status, count(*) AS n FROM jobs WHERE status = 'queued' GROUP BY handler, status
UNION ALL
SELECT handler, status, count(*) AS n FROM jobs WHERE status = 'limited' GROUP BY handler, status
UNION ALL
SELECT j.handler, 'running' AS status, count(*) AS n
FROM executions e JOIN jobs j ON j.id = e.job_id
WHERE e.status = 'running' GROUP BY j.handler;

-- name: take_due_jobs
UPDATE jobs SET status = 'admitting', updated_at = :now
WHERE id IN (
    SELECT id FROM jobs WHERE status IN ('pending', 'retrying') AND run_at <= :now
    ORDER BY run_at LIMIT :limit)
  AND status IN ('pending', 'retrying')
RETURNING id;

-- name: queue_admitted_jobs
UPDATE jobs SET status = CASE
        WHEN schedule_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM schedules s WHERE s.id = jobs.schedule_id AND s.status = 'archived')
        THEN 'cancelled' WHEN EXISTS (
            SELECT 1 FROM handler_limits l
            WHERE l.account_id = jobs.account_id AND l.handler = jobs.handler)
        THEN 'limited' ELSE 'queued' END,
    finished_at = CASE
        WHEN schedule_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM schedules s WHERE s.id = jobs.schedule_id AND s.status = 'archived')
        THEN :now ELSE NULL END,
    updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'admitting';

-- name: next_due_job
SELECT min(run_at) AS t FROM jobs WHERE status IN ('pending', 'retrying');

-- name: next_due_push
SELECT min(run_at) AS t FROM jobs
WHERE status IN ('pending', 'retrying') AND delivery_type = 'push';

-- name: next_due_schedule
SELECT min(next_run_at) AS t FROM schedules WHERE status = 'active';

-- name: ready_pull_jobs
UPDATE jobs SET status = 'ready', updated_at = :now
WHERE id IN (
    SELECT id FROM jobs WHERE status = 'queued' AND delivery_type = 'pull'
    ORDER BY run_at LIMIT :limit)
RETURNING account_id, handler;

-- name: queued_push_jobs
SELECT * FROM jobs WHERE status = 'queued' AND delivery_type = 'push'
ORDER BY run_at LIMIT :limit;

-- name: oldest_ready_for_handler
SELECT * FROM jobs
WHERE status = 'ready' AND account_id = :account_id AND handler = :handler
ORDER BY run_at, created_at LIMIT :limit;

-- name: oldest_due_for_handler
-- Due pull jobs a claim may start without an admission pass (the rule admission applies: not
-- under an archived schedule), unless their handler has a limit (those go through admission).
SELECT * FROM jobs j
WHERE status IN ('pending', 'retrying') AND delivery_type = 'pull'
  AND account_id = :account_id AND handler = :handler AND run_at <= :now
  AND NOT EXISTS (
      SELECT 1 FROM schedules s WHERE s.id = j.schedule_id AND s.status = 'archived')
  AND NOT EXISTS (
      SELECT 1 FROM handler_limits l WHERE l.account_id = :account_id AND l.handler = :handler)
ORDER BY run_at, created_at LIMIT :limit;

-- name: start_jobs
UPDATE jobs SET status = 'running', attempt_count = attempt_count + 1,
    last_execution_id = x.execution_id, updated_at = :now
FROM (SELECT json_extract(value, '$.id') AS id,
        json_extract(value, '$.execution_id') AS execution_id,
        json_extract(value, '$.attempts') AS attempts
      FROM json_each(:items)) AS x
WHERE jobs.id = x.id AND jobs.status = :expected_status AND jobs.attempt_count = x.attempts
RETURNING jobs.id;

-- name: insert_executions
INSERT INTO executions (id, job_id, account_id, attempt, trigger, status, started_at,
    finished_at, duration_ms, lease_expires_at, worker, result, error, http_status,
    response_body)
SELECT json_extract(value, '$.id'), json_extract(value, '$.job_id'),
    json_extract(value, '$.account_id'), json_extract(value, '$.attempt'),
    json_extract(value, '$.trigger'), 'running', :started_at, NULL, NULL,
    json_extract(value, '$.lease_expires_at'), :worker, NULL, NULL, NULL, NULL
FROM json_each(:items);

-- name: delete_running_execution
DELETE FROM executions WHERE id = :id AND status = 'running';

-- name: unclaim_job
UPDATE jobs SET status = 'ready', attempt_count = attempt_count - 1,
    last_execution_id = :previous_execution_id, updated_at = :now
WHERE id = :job_id AND status = 'running' AND last_execution_id = :execution_id;

-- name: previous_execution_id
SELECT id FROM executions WHERE job_id = :job_id AND attempt = :attempt;

-- name: get_execution
SELECT * FROM executions WHERE id = :id AND account_id = :account_id;

-- name: get_execution_any
SELECT * FROM executions WHERE id = :id;



-- name: finish_execution
UPDATE executions SET status = :status, finished_at = :finished_at,
    duration_ms = :finished_at - started_at,
    result = :result, error = :error, http_status = :http_status,
    response_body = :response_body
WHERE id = :id AND status = 'running';

-- name: extend_lease
UPDATE executions SET lease_expires_at = max(coalesce(lease_expires_at, 0), :until)
WHERE id = :id AND status = 'running';

-- name: finish_job
-- `last_error` (0007) in the same write: NULL for a success, else the attempt's error.
UPDATE jobs SET status = :status, run_at = :run_at, finished_at = :finished_at,
    last_error = :last_error, updated_at = :now
WHERE id = :id AND status = 'running' AND last_execution_id = :execution_id;

-- name: complete_executions
UPDATE executions SET status = 'completed', finished_at = max(x.finished_at, started_at),
    duration_ms = max(x.finished_at - started_at, 0), result = NULL, error = NULL,
    http_status = x.http_status, response_body = x.response_body
FROM (SELECT json_extract(value, '$.id') AS id,
        json_extract(value, '$.http_status') AS http_status,
        json_extract(value, '$.response_body') AS response_body,
        json_extract(value, '$.finished_at') AS finished_at
      FROM json_each(:items)) AS x
WHERE executions.id = x.id AND executions.status = 'running'
RETURNING executions.id, executions.job_id, executions.finished_at;

-- name: complete_jobs
UPDATE jobs SET status = 'completed', finished_at = x.finished_at, last_error = NULL,
    updated_at = :now
FROM (SELECT json_extract(value, '$.job_id') AS job_id,
        json_extract(value, '$.execution_id') AS execution_id,
        json_extract(value, '$.finished_at') AS finished_at
      FROM json_each(:items)) AS x
WHERE jobs.id = x.job_id AND jobs.status = 'running' AND jobs.last_execution_id = x.execution_id;

-- name: expired_leases
SELECT id FROM executions
WHERE status = 'running' AND lease_expires_at <= :deadline
ORDER BY lease_expires_at LIMIT :limit;

-- name: next_lease_end
-- When the first running execution's lease ends (the partial index `executions_lease`).
SELECT min(lease_expires_at) AS at FROM executions WHERE status = 'running';

-- name: stuck_admitting
UPDATE jobs SET status = 'pending', updated_at = :now
WHERE status = 'admitting' AND updated_at <= :older_than
RETURNING id;

-- name: running_without_lease
SELECT id FROM executions WHERE status = 'running' AND lease_expires_at IS NULL
LIMIT :limit;

-- name: stats_state_counts
-- Jobs per (handler, status) of an account, from the counts the triggers of migration 0009 keep
-- (folded counts + deltas not yet folded, in one statement: one snapshot). Handler '' = none.
SELECT handler, status, sum(n) AS n FROM (
    SELECT handler, status, n FROM job_counts WHERE account_id = :account_id
    UNION ALL
    SELECT handler, status, delta AS n FROM job_count_deltas WHERE account_id = :account_id
) AS counted
GROUP BY handler, status HAVING sum(n) <> 0;

-- name: stats_finished
-- Jobs finished since :since (a whole minute) per (handler, status, minute), from the per-minute
-- counts the triggers of migration 0011 keep: a few rows per minute of the window however many
-- jobs finished.
SELECT nullif(handler, '') AS handler, status, minute, n FROM job_finished_counts
WHERE account_id = :account_id AND minute >= :since / 60000 AND n <> 0;

-- name: stats_oldest_ready
-- The oldest `ready` job of each named handler: one probe of `jobs_ready` per handler.
SELECT h.name AS handler, (
    SELECT min(run_at) FROM jobs
    WHERE status = 'ready' AND account_id = :account_id AND handler = h.name) AS oldest
FROM (SELECT value AS name FROM json_each(:handlers)) AS h;


-- name: admit_due_jobs
-- Due `pending`/`retrying` jobs past admission in one statement: pull jobs `ready`, push jobs
-- `queued` for the sender, jobs of an archived schedule `cancelled`, jobs of a handler with a
-- limit `limited` (`release_limited_jobs` lets them on). (`admitting` and `queued` are passed
-- inside this one transaction.)
UPDATE jobs SET status = CASE
        WHEN schedule_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM schedules s WHERE s.id = jobs.schedule_id AND s.status = 'archived')
        THEN 'cancelled' WHEN EXISTS (
            SELECT 1 FROM handler_limits l
            WHERE l.account_id = jobs.account_id AND l.handler = jobs.handler)
        THEN 'limited' WHEN delivery_type = 'pull' THEN 'ready'
        ELSE 'queued' END,
    finished_at = CASE
        WHEN schedule_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM schedules s WHERE s.id = jobs.schedule_id AND s.status = 'archived')
        THEN :now ELSE NULL END,
    updated_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT id FROM jobs WHERE status IN ('pending', 'retrying') AND run_at <= :now
        ORDER BY run_at LIMIT :limit)
    UNION ALL
    -- Push jobs due within the lead: the sender starts them ahead, each sent at its instant.
    SELECT id FROM (
        SELECT id FROM jobs
        WHERE status IN ('pending', 'retrying') AND delivery_type = 'push'
          AND run_at > :now AND run_at <= :push_by
        ORDER BY run_at LIMIT :limit))
  AND status IN ('pending', 'retrying')
RETURNING account_id, handler, status;

-- name: next_wakeup
-- SQLite's two-argument min() is NULL if either is NULL: coalesce each side to the other.
SELECT min(coalesce(j, s), coalesce(s, j)) AS t FROM (
    SELECT (SELECT min(run_at) FROM jobs WHERE status IN ('pending', 'retrying')) AS j,
           (SELECT min(next_run_at) FROM schedules WHERE status = 'active') AS s);

-- --- schedule policies (README "Schedule policies") ---------------------------------------------

-- name: get_schedule_for_update
-- Pause and resume: the row to change (the IMMEDIATE transaction is the lock).
SELECT * FROM schedules WHERE id = :id AND account_id = :account_id;

-- name: schedule_has_unfinished_job
-- `overlap` skip/queue: does any job of the schedule (spawned or run by hand) still wait or run?
SELECT 1 AS found FROM jobs
WHERE schedule_id = :schedule_id
  AND status IN ('pending', 'held', 'admitting', 'queued', 'limited', 'ready', 'running', 'retrying')
LIMIT 1;

-- name: cancel_previous_jobs
-- `overlap: cancel_previous`: the schedule's earlier jobs with no attempt in flight are cancelled
-- when a later slot spawns (a running one finishes its attempt, see `newer_spawned_job`).
UPDATE jobs SET status = 'cancelled', finished_at = :now, updated_at = :now
WHERE schedule_id = :schedule_id AND scheduled_for < :before
  AND status IN ('pending', 'held', 'admitting', 'queued', 'limited', 'ready', 'retrying');

-- name: newer_spawned_job
-- `overlap: cancel_previous`: has a later slot of the schedule spawned since this job's? Then a
-- retryable failure of this job is not retried: it was replaced.
SELECT 1 AS found FROM jobs
WHERE schedule_id = :schedule_id AND spawn_slot > :scheduled_for
LIMIT 1;

-- name: any_held_job
-- Asked by every admission pass: the partial index answers it at once. Without INDEXED BY,
-- SQLite scans all of `jobs_list_status` (the whole table: 1 ms per 10,000 jobs, every pass).
SELECT 1 AS found FROM jobs INDEXED BY jobs_held WHERE status = 'held' LIMIT 1;

-- name: release_held_jobs
-- `overlap: queue`: per schedule, its oldest held job becomes `pending` (due at once) when no
-- other job of the schedule waits or runs; the next one then waits for that one. A plain
-- compare-and-set on 'held': two passes at once release a job once.
UPDATE jobs SET status = 'pending', run_at = max(run_at, :now), updated_at = :now
WHERE status = 'held' AND id IN (
    SELECT h.id FROM jobs h
    WHERE h.status = 'held'
      AND NOT EXISTS (
        SELECT 1 FROM jobs p WHERE p.schedule_id = h.schedule_id
          AND p.status IN ('pending', 'admitting', 'queued', 'limited', 'ready', 'running', 'retrying'))
      AND NOT EXISTS (
        SELECT 1 FROM jobs o WHERE o.schedule_id = h.schedule_id AND o.status = 'held'
          AND (o.scheduled_for < h.scheduled_for
               OR (o.scheduled_for = h.scheduled_for AND o.id < h.id)))
    LIMIT :limit)
RETURNING id;

-- name: next_due_pull
-- The next job to fall due: its time, account and, for a pull job a claim may take straight
-- from `pending` (its handler has no limit), handler.
SELECT run_at, account_id, CASE WHEN delivery_type = 'pull' AND NOT EXISTS (
        SELECT 1 FROM handler_limits l
        WHERE l.account_id = jobs.account_id AND l.handler = jobs.handler)
    THEN handler END AS handler
FROM jobs WHERE status IN ('pending', 'retrying')
ORDER BY run_at LIMIT 1;

-- --- retention (README "Retention"; loops/retention.py) ----------------------------------------
-- Finished jobs older than their status's period go in batches, each job with its executions;
-- a job that is not finished is never selected nor deleted. On PostgreSQL each batch's jobs are
-- locked (SKIP LOCKED): replicas pruning at once take different batches, and never wait.

-- name: account_ids
SELECT id FROM accounts ORDER BY id;

-- name: expired_jobs
-- A range of `jobs_stats` (account, status, finished_at).
SELECT id FROM jobs INDEXED BY jobs_stats
WHERE account_id = :account_id AND status = :status AND finished_at < :before
LIMIT :limit;

-- name: delete_executions_of_jobs
DELETE FROM executions WHERE job_id IN (SELECT value FROM json_each(:ids));

-- name: delete_finished_jobs
DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))
  AND status IN ('completed', 'failed', 'cancelled')
RETURNING status;

-- name: expired_schedules
-- Archived or completed schedules ended before :before with no job left.
SELECT id FROM schedules s
WHERE status IN ('archived', 'completed')
  AND coalesce(archived_at, completed_at, updated_at) < :before
  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.schedule_id = s.id)
LIMIT :limit;

-- name: delete_schedules
DELETE FROM schedules WHERE id IN (SELECT value FROM json_each(:ids)) AND status IN ('archived', 'completed');

-- name: count_expired_jobs
SELECT count(*) AS n FROM jobs INDEXED BY jobs_stats
WHERE account_id = :account_id AND status = :status AND finished_at < :before;

-- name: count_expired_executions
SELECT count(*) AS n FROM executions e JOIN jobs j ON j.id = e.job_id
WHERE j.account_id = :account_id AND j.status = :status AND j.finished_at < :before;

-- name: count_expired_schedules
SELECT count(*) AS n FROM schedules s
WHERE status IN ('archived', 'completed')
  AND coalesce(archived_at, completed_at, updated_at) < :before
  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.schedule_id = s.id);

-- name: touch_api_key
-- At most one write a minute per key, whichever process (replica) gets there first.
UPDATE api_keys SET last_used_at = :now
WHERE key_hash = :key_hash AND (last_used_at IS NULL OR last_used_at <= :now - 60000);

-- name: list_api_keys
SELECT k.prefix, a.name AS account, k.created_at, k.last_used_at, k.revoked_at
FROM api_keys k JOIN accounts a ON a.id = k.account_id
ORDER BY a.name, k.created_at, k.prefix;

-- --- handler limits (README "Handler limits"; 0008_handler_limits.sql) ---------------------------

-- name: list_handler_limits
SELECT * FROM handler_limits WHERE account_id = :account_id ORDER BY handler;

-- name: get_handler_limits
SELECT * FROM handler_limits WHERE account_id = :account_id AND handler = :handler;

-- name: lock_handler_limits
-- The row a change of the limits rewrites (on PostgreSQL locked, as the releasing pass locks it).
SELECT * FROM handler_limits WHERE account_id = :account_id AND handler = :handler;

-- name: upsert_handler_limits
INSERT INTO handler_limits (account_id, handler, max_running, max_per_second, tokens, tokens_at,
    created_at, updated_at)
VALUES (:account_id, :handler, :max_running, :max_per_second, :tokens, :tokens_at, :now, :now)
ON CONFLICT (account_id, handler) DO UPDATE SET max_running = excluded.max_running,
    max_per_second = excluded.max_per_second, tokens = excluded.tokens,
    tokens_at = excluded.tokens_at, updated_at = excluded.updated_at;

-- name: delete_handler_limits
DELETE FROM handler_limits WHERE account_id = :account_id AND handler = :handler;

-- name: all_handler_limit_keys
-- Every limited (account, handler): the server's cached set (who must hear of a finish).
SELECT account_id, handler FROM handler_limits;

-- name: any_limited_job
-- As `any_held_job`: the partial index, not a scan of the whole table, every admission pass.
SELECT 1 AS found FROM jobs INDEXED BY jobs_limited WHERE status = 'limited' LIMIT 1;

-- name: limits_with_waiting_jobs
-- The limits some job waits for, locked in one order (no two passes deadlock): a pass counts
-- and releases a handler's jobs only while it holds that handler's row.
SELECT l.* FROM handler_limits l
WHERE EXISTS (
    SELECT 1 FROM jobs j
    WHERE j.status = 'limited' AND j.account_id = l.account_id AND j.handler = l.handler)
ORDER BY l.account_id, l.handler;

-- name: count_active_for_handler
-- What `max_running` counts: jobs `ready` or `running`, and push jobs released but not sent yet
-- (`queued`). Open jobs have no `finished_at`, so each state is one range of `jobs_stats`.
SELECT count(*) AS n FROM jobs
WHERE account_id = :account_id AND status IN ('queued', 'ready', 'running')
  AND finished_at IS NULL AND handler = :handler;

-- name: release_limited_jobs
-- Up to :n of the handler's oldest waiting jobs go on: pull `ready`, push `queued` (the sender).
UPDATE jobs SET status = CASE WHEN delivery_type = 'pull' THEN 'ready' ELSE 'queued' END,
    updated_at = :now
WHERE id IN (
    SELECT id FROM jobs
    WHERE status = 'limited' AND account_id = :account_id AND handler = :handler
    ORDER BY run_at, created_at LIMIT :n)
  AND status = 'limited'
RETURNING status;

-- name: spend_limit_tokens
UPDATE handler_limits SET tokens = :tokens, tokens_at = :tokens_at
WHERE account_id = :account_id AND handler = :handler;

-- name: release_all_limited_for_handler
-- The limit was removed: every job waiting for it goes on at once.
UPDATE jobs SET status = CASE WHEN delivery_type = 'pull' THEN 'ready' ELSE 'queued' END,
    updated_at = :now
WHERE status = 'limited' AND account_id = :account_id AND handler = :handler
RETURNING status;

-- PostgreSQL-only queries of the cross-replica wake-ups (LISTEN/NOTIFY). They are not part of
-- the shared query set that `transactions/` runs on every dialect; SQLite needs none of them
-- (one process, in-process events). Same :name parameter style as queries.sql.

-- name: notify_ready
SELECT pg_notify(:channel, payload) FROM unnest(:payloads::text[]) AS payload;

-- name: ready_counts_for
SELECT account_id, handler, count(*) AS n FROM jobs
WHERE status = 'ready'
  AND (account_id, handler) IN (SELECT * FROM unnest(:accounts::text[], :handlers::text[]))
GROUP BY account_id, handler;

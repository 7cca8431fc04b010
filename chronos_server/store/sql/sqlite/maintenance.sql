-- SQLite-only maintenance statements (loops/counts.py).

-- name: drop_finished_minutes
-- The per-minute finished counts of the minutes before :keep_from (older than any stats window).
DELETE FROM job_finished_counts WHERE minute < :keep_from;

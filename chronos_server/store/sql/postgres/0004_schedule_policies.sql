-- Schedule policies (extension; README "Schedule policies"). Defaults are the spec's behaviour,
-- so existing schedules keep it: `catch_up` latest (G-27), `overlap` allow (G-28).
ALTER TABLE schedules ADD COLUMN catch_up TEXT NOT NULL DEFAULT 'latest'
    CHECK (catch_up IN ('latest', 'none', 'all'));
ALTER TABLE schedules ADD COLUMN catch_up_limit INTEGER NOT NULL DEFAULT 10
    CHECK (catch_up_limit BETWEEN 1 AND 1000);
ALTER TABLE schedules ADD COLUMN overlap TEXT NOT NULL DEFAULT 'allow'
    CHECK (overlap IN ('allow', 'skip', 'queue', 'cancel_previous'));
-- Pause: `paused_at` is set while paused; the slot not spawned yet moves from `next_run_at` (NULL
-- meanwhile, so no due-schedule scan ever sees a paused schedule) to `paused_next_run_at`.
ALTER TABLE schedules ADD COLUMN paused_at BIGINT;
ALTER TABLE schedules ADD COLUMN paused_next_run_at BIGINT;
ALTER TABLE schedules ADD CONSTRAINT schedules_paused
    CHECK ((paused_at IS NULL) = (paused_next_run_at IS NULL)
           AND (paused_at IS NULL OR (status = 'active' AND next_run_at IS NULL)));

-- `overlap: queue`: a spawned job that must wait for the earlier jobs of its schedule is stored
-- with status 'held' (the API shows `pending`). Outside 'pending'/'retrying', it is in none of
-- the due scans (`jobs_due`), so admission never looks at it until it is released to 'pending';
-- this index finds the ones to release, oldest slot first per schedule.
CREATE INDEX jobs_held ON jobs (schedule_id, scheduled_for) WHERE status = 'held';

-- Push jobs started ahead of their due instant (issue 11): admission takes `pending`/`retrying`
-- push jobs due within the push lead (`loops.admission.PUSH_LEAD_MS`) and wakes that much before
-- the next one. Both look-ups range over push jobs only, as `jobs_due_pull` serves the claims of
-- pull jobs: without this index they would step over every pull job due within the lead.
CREATE INDEX jobs_due_push ON jobs (run_at)
    WHERE status IN ('pending', 'retrying') AND delivery_type = 'push';

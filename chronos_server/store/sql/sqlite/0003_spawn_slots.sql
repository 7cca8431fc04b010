-- Spawn keys get a namespace of their own. Until now a spawned job held its slot as the
-- idempotency key `{schedule_id}.{slot_ms}`, in the unique index clients' keys use too, so a
-- one-off job created with that key made the schedule skip the slot. A spawned job now holds its
-- slot in `spawn_slot`, unique per schedule (`jobs_spawn`: the exactly-once spawn); its
-- `idempotency_key` column stays NULL, so `jobs_idempotency` holds clients' keys only. The API
-- still shows `{schedule_id}.{slot_ms}` for a spawned job (rows.py derives it). The CHECK keeps a
-- row out of both namespaces at once, and off the index with a NULL schedule (NULLs never clash).
ALTER TABLE jobs ADD COLUMN spawn_slot INTEGER
    CHECK (spawn_slot IS NULL OR (idempotency_key IS NULL AND schedule_id IS NOT NULL));

-- Existing spawned jobs move over: the ones whose key is their schedule's spawn key for their
-- slot (a spawned job's scheduled_for is its slot and never changes). Old keys were unique per
-- account and schedule ids are unique, so these slots are unique per schedule.
UPDATE jobs SET spawn_slot = scheduled_for, idempotency_key = NULL
WHERE first_trigger = 'schedule' AND schedule_id IS NOT NULL
  AND idempotency_key = schedule_id || '.' || CAST(scheduled_for AS TEXT);

CREATE UNIQUE INDEX jobs_spawn ON jobs (schedule_id, spawn_slot) WHERE spawn_slot IS NOT NULL;

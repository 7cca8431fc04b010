-- Fewer index entries per job on the hot path (issue 11). A job's status changes three times
-- on its way (ready, running, a final state) and each change is an update that cannot be HOT
-- (`status` is indexed): every index of `jobs` whose predicate the new row meets gets an entry.
-- Jobs made through the API have no schedule, yet the two schedule indexes held an entry for
-- each of their rows; every look-up by schedule names one (`schedule_id = ...`), which a
-- partial index `WHERE schedule_id IS NOT NULL` serves. `executions_job` repeated the index of
-- the UNIQUE (job_id, attempt) constraint, written once more for each execution row and each
-- of its updates.
DROP INDEX executions_job;
DROP INDEX jobs_schedule;
CREATE INDEX jobs_schedule ON jobs (schedule_id, status) WHERE schedule_id IS NOT NULL;
DROP INDEX jobs_list_schedule;
CREATE INDEX jobs_list_schedule ON jobs (schedule_id, created_at) WHERE schedule_id IS NOT NULL;

-- Replay and the last error (extension; README "Replaying jobs").
-- `last_error`: the last finished execution's error as one line (pull: the reported error; push:
-- the HTTP status and the response's start, or the network error; a lease or request timeout),
-- NULL once an execution completes. Written by the statements that finish an execution
-- (`finish_job`, `complete_jobs`, `complete_reported`), never by a separate one.
-- `replay_of`: the job this one re-runs (`POST /v1/jobs/:id/replay`). Not a foreign key: the
-- original may be deleted (retention) while its replays live on.
ALTER TABLE jobs ADD COLUMN last_error TEXT;
ALTER TABLE jobs ADD COLUMN replay_of TEXT;
-- The bulk replay skips jobs already replayed: a probe per candidate of this small index.
CREATE INDEX jobs_replay_of ON jobs (replay_of) WHERE replay_of IS NOT NULL;

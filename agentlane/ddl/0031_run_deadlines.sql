-- A run's wall-time deadline (its RunAccepted's createdAt plus the server's capSeconds): once it
-- has passed, the owner of the run's shard cancels the run with a CancelRequested event (and
-- clears the deadline, so it is cancelled once). NULL: no deadline.
ALTER TABLE run_index ADD COLUMN deadline_at timestamptz;
CREATE INDEX run_index_deadline ON run_index (shard_id, deadline_at) WHERE deadline_at IS NOT NULL;

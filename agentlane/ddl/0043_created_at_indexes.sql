-- Indexes that earn their keep (issue 16): every event paid for a btree entry on createdAt, read
-- only by ranges of time (exports --since) and by the operations overview's count of recent run
-- ends. Rows arrive in createdAt order (an append reads it on the clock under the stream's lock;
-- the table is insert-only), so a BRIN index answers the ranges from a few summary pages, and the
-- recent ends get a btree of their own over run ends only (one entry per run, not per event).
-- 6-11% less WAL per event: BENCHMARKS.md, "Indexes that earn their keep".
--
-- On a large log the two CREATEs read the table while appends wait. To avoid that, run them
-- beforehand outside a transaction with CONCURRENTLY; this file then only drops the old btree.
CREATE INDEX IF NOT EXISTS agent_events_created_at_brin
    ON agent_events USING brin (created_at) WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS agent_events_ends_created_at
    ON agent_events (created_at) WHERE event_type IN ('Completed', 'Failed', 'Cancelled');
DROP INDEX agent_events_created_at;

-- Wake-ups leave the append's transaction: a NOTIFY there takes Postgres's notification lock at
-- commit and holds it through the fsync, so appends queued behind one another and their commits
-- were never grouped. Writers now NOTIFY 'agentlane_events' after they commit (agentlane.db
-- Notifier); tailers poll regardless, so an event inserted by hand is still read, a poll later.
DROP TRIGGER agent_events_wakeup ON agent_events;
DROP FUNCTION agent_events_notify();

-- Exactly-once journal (invariant 5) as a database fact, not a convention of the engine: whatever
-- crashes, retries or paused runners do, a workflow step has at most one completion event
-- (StepCompleted, ToolResult and TimerFired each complete a step), and a run starts and ends once.
CREATE UNIQUE INDEX agent_events_one_completion_per_step
    ON agent_events (execution_id, ((payload ->> 'step')::bigint))
    WHERE event_type IN ('StepCompleted', 'ToolResult', 'TimerFired')
      AND execution_id IS NOT NULL;

CREATE UNIQUE INDEX agent_events_one_start_per_run
    ON agent_events (execution_id)
    WHERE event_type = 'RunStarted' AND execution_id IS NOT NULL;

CREATE UNIQUE INDEX agent_events_one_end_per_run
    ON agent_events (execution_id)
    WHERE event_type IN ('Completed', 'Failed', 'Cancelled') AND execution_id IS NOT NULL;

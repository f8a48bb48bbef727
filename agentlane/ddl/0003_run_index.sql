-- Work discovery: every non-terminal execution with its shard and next wake time. Derived from
-- agent_events (rebuildable) and written in the same transaction as the events that change it.

CREATE TABLE run_index (
    execution_id  text        PRIMARY KEY,
    tenant_id     text        NOT NULL,
    session_id    text        NOT NULL,
    run_id        text        NOT NULL,
    shard_id      integer     NOT NULL,
    -- seq of the RunAccepted event: a session's runs execute one at a time in this order.
    accepted_seq  bigint      NOT NULL,
    status        text        NOT NULL,
    -- When the owner must look at the run next; NULL while it waits only on a signal.
    wake_at       timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT run_index_status CHECK (status IN ('queued', 'running', 'suspended'))
);
CREATE INDEX run_index_due ON run_index (shard_id, wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX run_index_session ON run_index (tenant_id, session_id, accepted_seq);

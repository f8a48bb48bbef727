-- The event store: the only source of truth. Append-only, enforced here rather than by convention.

CREATE SEQUENCE agent_events_event_id_seq AS bigint;

CREATE TABLE agent_events (
    event_id        bigint      NOT NULL DEFAULT nextval('agent_events_event_id_seq') PRIMARY KEY,
    tenant_id       text        NOT NULL,
    session_id      text        NOT NULL,
    seq             bigint      NOT NULL CHECK (seq >= 1),
    execution_id    text,
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction's id: the gap-safe global tail orders by (tx_id, event_id) and only
    -- reads below the oldest running transaction, so a late commit can never land behind a reader.
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    idempotency_key text,
    -- Hash chain per stream: hash = sha256(prev_hash || canonical bytes of the event).
    prev_hash       bytea       NOT NULL,
    hash            bytea       NOT NULL,
    CONSTRAINT agent_events_stream_seq_key UNIQUE (tenant_id, session_id, seq)
);
ALTER SEQUENCE agent_events_event_id_seq OWNED BY agent_events.event_id;

CREATE UNIQUE INDEX agent_events_idempotency_key
    ON agent_events (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX agent_events_tail ON agent_events (tx_id, event_id);
-- Reads of a session after an eventId (event_id grows with seq inside a session).
CREATE INDEX agent_events_session_event ON agent_events (tenant_id, session_id, event_id);
CREATE INDEX agent_events_execution ON agent_events (execution_id, seq) WHERE execution_id IS NOT NULL;
CREATE INDEX agent_events_created_at ON agent_events (created_at);

-- The head of each stream: the row lock serialises writers of one session (so seq has no gaps and
-- event_id grows with seq) and carries the chain's last hash. Rebuildable from agent_events.
CREATE TABLE agent_stream_heads (
    tenant_id     text        NOT NULL,
    session_id    text        NOT NULL,
    last_seq      bigint      NOT NULL,
    last_hash     bytea       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, session_id)
);

CREATE FUNCTION agent_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'agent_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER agent_events_no_update_delete
    BEFORE UPDATE OR DELETE ON agent_events
    FOR EACH ROW EXECUTE FUNCTION agent_events_append_only();
CREATE TRIGGER agent_events_no_truncate
    BEFORE TRUNCATE ON agent_events
    FOR EACH STATEMENT EXECUTE FUNCTION agent_events_append_only();

-- Wake-up for tailers. Correctness never depends on it; identical payloads collapse per
-- transaction, so a batch costs one notification.
CREATE FUNCTION agent_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentlane_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER agent_events_wakeup
    AFTER INSERT ON agent_events
    FOR EACH STATEMENT EXECUTE FUNCTION agent_events_notify();

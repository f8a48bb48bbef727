-- CQRS read models kept by the projector. Derived from agent_events only: `agentlane replay
-- rebuild` (projector.rebuild_read_models) recreates them and swaps them in one transaction.

CREATE TABLE read_runs (
    execution_id        text        PRIMARY KEY,
    tenant_id           text        NOT NULL,
    session_id          text        NOT NULL,
    run_id              text        NOT NULL,
    status              text        NOT NULL,
    message             text        NOT NULL DEFAULT '',
    answer              text,
    error               text,
    input_tokens        bigint      NOT NULL DEFAULT 0,
    output_tokens       bigint      NOT NULL DEFAULT 0,
    cached_input_tokens bigint      NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    last_event_id       bigint      NOT NULL,
    last_seq            bigint      NOT NULL
);
CREATE INDEX read_runs_session ON read_runs (tenant_id, session_id, created_at);

-- One row per stream. last_seq is also the projector's per-session position: events reach it in
-- (tx_id, event_id) order, which can differ from seq order, and are applied strictly by seq.
CREATE TABLE read_sessions (
    tenant_id         text        NOT NULL,
    session_id        text        NOT NULL,
    run_count         integer     NOT NULL DEFAULT 0,
    last_execution_id text,
    last_event_id     bigint      NOT NULL,
    last_seq          bigint      NOT NULL,
    last_event_type   text        NOT NULL,
    created_at        timestamptz NOT NULL,
    last_event_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);

CREATE TABLE read_usage_daily (
    tenant_id           text   NOT NULL,
    model               text   NOT NULL,
    day                 date   NOT NULL,
    calls               bigint NOT NULL DEFAULT 0,
    input_tokens        bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, model, day)
);

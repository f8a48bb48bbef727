-- The projector's own state: its leader lease, its checkpoints and its per-session publish heads.

-- One active projector: claims bump `token` (the fencing token every batch transaction re-checks
-- with FOR SHARE, so a takeover waits for an in-flight batch). Time is the database's.
CREATE TABLE projector_lease (
    name        text        PRIMARY KEY,
    holder      text,
    token       bigint      NOT NULL DEFAULT 0,
    expires_at  timestamptz,
    acquired_at timestamptz,
    renewed_at  timestamptz
);
INSERT INTO projector_lease (name) VALUES ('projector');

-- Gap-safe tail positions (tx_id, event_id): 'read_models' moves in the same transaction as the
-- read-model rows (exactly-once); 'publish' only after every Pub/Sub publish future resolved.
CREATE TABLE projector_checkpoints (
    name        text        PRIMARY KEY,
    tx_id       bigint      NOT NULL DEFAULT 0,
    event_id    bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projector_checkpoints (name) VALUES ('read_models'), ('publish');

-- Last seq published per stream, moved with the 'publish' checkpoint: publishes per ordering key
-- go out in seq order even where the tail's order differs.
CREATE TABLE projector_publish_heads (
    tenant_id  text   NOT NULL,
    session_id text   NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);

-- One long transaction anywhere stalls every gap-safe tailer: bound idle-in-transaction time.
-- Needs ownership of the database; where the migrator lacks it (a managed server), set the flag.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L',
                   current_database(), '60s');
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'idle_in_transaction_session_timeout not set: not the database owner';
END;
$$;

-- Blobs by reference (agentlane.blobs): which events name which blob, written in the same
-- transaction as the events, so it is exactly as current as the log. It answers "may this tenant
-- read this blob" (GET /blobs/{sha256}) and "is this blob referenced" (agentlane blobs gc) without
-- reading payloads. The app may only read and insert it, as agent_events (agentlane.roles).
CREATE TABLE agent_event_blobs (
    sha256 text NOT NULL,
    tenant_id text NOT NULL,
    event_id bigint NOT NULL,
    size bigint NOT NULL,
    PRIMARY KEY (sha256, tenant_id, event_id)
);

-- A run's message or answer kept in a blob: the read model holds the reference instead.
ALTER TABLE read_runs ADD COLUMN message_ref jsonb, ADD COLUMN answer_ref jsonb;

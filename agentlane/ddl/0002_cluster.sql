-- Runner registry and shard leases. Time for leases always comes from the database (now()).

CREATE TABLE cluster_config (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cluster_runners (
    runner_id     text        PRIMARY KEY,
    pod_name      text        NOT NULL,
    incarnation   text        NOT NULL,
    address       text        NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    draining      boolean     NOT NULL DEFAULT false
);
CREATE INDEX cluster_runners_heartbeat ON cluster_runners (heartbeat_at);

CREATE TABLE cluster_shards (
    shard_id          integer     PRIMARY KEY CHECK (shard_id >= 0),
    runner_id         text,
    -- Incremented on every claim: the fencing token appends must present.
    lease_token       bigint      NOT NULL DEFAULT 0,
    lease_expires_at  timestamptz,
    acquired_at       timestamptz,
    renewed_at        timestamptz
);
CREATE INDEX cluster_shards_runner ON cluster_shards (runner_id);

"""Every environment variable the program hands to a workload, by the names of docs/contract.md.

This is the only module that spells variable names, so one test can compare them with the
contract and with `agentlane.settings.ENV_VARS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..config import StackConfig
from ..connection_budget import PROJECTOR_POOL
from .names import (
    ANCHOR,
    COMMAND_SERVICE,
    GATEWAY,
    MIGRATE,
    PROJECTOR,
    RUNNER,
    Workload,
    blob_bucket_name,
)

__all__ = [
    "CA_DIR",
    "CA_FILE",
    "CA_PATH",
    "DATABASE_CONFIG",
    "ENV_NAMES",
    "HTTP_PORT",
    "SECRET_ANCHOR_KEY",
    "SECRET_DATABASE_CA",
    "SECRET_DATABASE_URL",
    "SECRET_KEYS",
    "SECRET_OPENAI_API_KEY",
    "SECRETS_DIR",
    "EnvVar",
    "env_for",
]

HTTP_PORT: Final = 8080

# Logical secrets: Secret Manager ids and Kubernetes Secret names derive from these.
# The owner's URL (with its password): the migration Job's only.
SECRET_DATABASE_URL: Final = "database-url"
SECRET_OPENAI_API_KEY: Final = "openai-api-key"
SECRET_ANCHOR_KEY: Final = "anchor-key"
# The database's CA, for Cloud Run, which mounts files only from Secret Manager (not secret).
SECRET_DATABASE_CA: Final = "database-ca"
#: Where every workload finds the database's CA (a mounted ConfigMap or secret volume).
CA_DIR: Final = "/etc/agentlane/db-ca"
CA_FILE: Final = "ca.pem"
CA_PATH: Final = f"{CA_DIR}/{CA_FILE}"
#: Where secrets mounted as files live, one directory per secret.
SECRETS_DIR: Final = "/etc/agentlane/secrets"
# The ConfigMap of what is not secret about the database: each IAM workload's URL (key: the
# component) and the CA (key: ca.pem).
DATABASE_CONFIG: Final = "agentlane-database"

DATABASE_URL: Final = "DATABASE_URL"
AGENTLANE_BUS: Final = "AGENTLANE_BUS"
GOOGLE_CLOUD_PROJECT: Final = "GOOGLE_CLOUD_PROJECT"
AGENTLANE_TOPIC: Final = "AGENTLANE_TOPIC"
AGENTLANE_AUTH: Final = "AGENTLANE_AUTH"
AGENTLANE_JWT_JWKS_URL: Final = "AGENTLANE_JWT_JWKS_URL"
AGENTLANE_JWT_AUDIENCE: Final = "AGENTLANE_JWT_AUDIENCE"
AGENTLANE_JWT_ISSUER: Final = "AGENTLANE_JWT_ISSUER"
AGENTLANE_TENANT_CLAIM: Final = "AGENTLANE_TENANT_CLAIM"
AGENTLANE_SHARDS: Final = "AGENTLANE_SHARDS"
AGENTLANE_DB_POOL_MAX: Final = "AGENTLANE_DB_POOL_MAX"
AGENTLANE_LEASE_TTL: Final = "AGENTLANE_LEASE_TTL"
POD_NAME: Final = "POD_NAME"
PORT: Final = "PORT"
OPENAI_API_KEY: Final = "OPENAI_API_KEY"
OPENAI_API_KEY_FILE: Final = "OPENAI_API_KEY_FILE"
OPENAI_BASE_URL: Final = "OPENAI_BASE_URL"
AGENTLANE_MODEL: Final = "AGENTLANE_MODEL"
AGENTLANE_CODE_VERSION: Final = "AGENTLANE_CODE_VERSION"
AGENTLANE_DB_IAM_AUTH: Final = "AGENTLANE_DB_IAM_AUTH"
AGENTLANE_ANCHOR_KEY: Final = "AGENTLANE_ANCHOR_KEY"
AGENTLANE_BLOB_STORE: Final = "AGENTLANE_BLOB_STORE"
OTEL_TRACES_EXPORTER: Final = "OTEL_TRACES_EXPORTER"
OTEL_TRACES_SAMPLER: Final = "OTEL_TRACES_SAMPLER"
OTEL_TRACES_SAMPLER_ARG: Final = "OTEL_TRACES_SAMPLER_ARG"

ENV_NAMES: Final = frozenset(
    {
        DATABASE_URL,
        AGENTLANE_DB_POOL_MAX,
        AGENTLANE_BUS,
        GOOGLE_CLOUD_PROJECT,
        AGENTLANE_TOPIC,
        AGENTLANE_AUTH,
        AGENTLANE_JWT_JWKS_URL,
        AGENTLANE_JWT_AUDIENCE,
        AGENTLANE_JWT_ISSUER,
        AGENTLANE_TENANT_CLAIM,
        AGENTLANE_SHARDS,
        AGENTLANE_LEASE_TTL,
        POD_NAME,
        PORT,
        OPENAI_API_KEY,
        OPENAI_API_KEY_FILE,
        OPENAI_BASE_URL,
        AGENTLANE_MODEL,
        AGENTLANE_CODE_VERSION,
        AGENTLANE_DB_IAM_AUTH,
        AGENTLANE_ANCHOR_KEY,
        AGENTLANE_BLOB_STORE,
        OTEL_TRACES_EXPORTER,
        OTEL_TRACES_SAMPLER,
        OTEL_TRACES_SAMPLER_ARG,
    }
)


# The key under which each projected Kubernetes Secret holds its value: the variable's name.
SECRET_KEYS: Final = {
    SECRET_DATABASE_URL: DATABASE_URL,
    SECRET_OPENAI_API_KEY: OPENAI_API_KEY,
    SECRET_ANCHOR_KEY: AGENTLANE_ANCHOR_KEY,
}


@dataclass(frozen=True)
class EnvVar:
    """One variable: a literal, a key of a projected secret, a key of a ConfigMap, a pod field
    (downward API), or the path of a projected secret mounted as a file."""

    name: str
    value: str | None = None
    secret: str | None = None
    config_map: str | None = None
    config_key: str | None = None
    pod_field: str | None = None
    #: A projected secret mounted as a file; the variable holds the file's path. Kubernetes
    #: updates the file when the Secret changes, where an env var would need a restart.
    secret_file: str | None = None


def env_for(workload: Workload, config: StackConfig) -> list[EnvVar]:
    """The environment of `workload` in this stack."""
    runtime = config.runtime
    # Fixed per database: every component must agree or it refuses to start.
    shards = EnvVar(AGENTLANE_SHARDS, str(runtime.shards))
    if workload == MIGRATE:
        database = [EnvVar(DATABASE_URL, secret=SECRET_DATABASE_URL), shards]
    else:
        database = [
            EnvVar(DATABASE_URL, config_map=DATABASE_CONFIG, config_key=workload.component),
            EnvVar(AGENTLANE_DB_IAM_AUTH, "true"),
            shards,
        ]
    bus = [
        EnvVar(AGENTLANE_BUS, "pubsub"),
        EnvVar(GOOGLE_CLOUD_PROJECT, config.project),
        EnvVar(AGENTLANE_TOPIC, runtime.topic),
    ]
    auth = [
        EnvVar(AGENTLANE_AUTH, "jwt"),
        EnvVar(AGENTLANE_JWT_JWKS_URL, runtime.jwt_jwks_url),
        EnvVar(AGENTLANE_JWT_AUDIENCE, runtime.jwt_audience),
        EnvVar(AGENTLANE_JWT_ISSUER, runtime.jwt_issuer),
        EnvVar(AGENTLANE_TENANT_CLAIM, runtime.tenant_claim),
    ]
    lease = [
        EnvVar(AGENTLANE_LEASE_TTL, str(runtime.lease_ttl_seconds)),
        EnvVar(POD_NAME, pod_field="metadata.name"),
    ]
    model = [
        EnvVar(OPENAI_API_KEY_FILE, secret_file=SECRET_OPENAI_API_KEY),
        EnvVar(AGENTLANE_MODEL, runtime.model),
        # Recorded in every RunStarted: which deploy started a run (version pinning).
        EnvVar(AGENTLANE_CODE_VERSION, config.image_tag),
    ]
    if runtime.openai_base_url:
        model.append(EnvVar(OPENAI_BASE_URL, runtime.openai_base_url))
    # Cloud Run sets PORT itself and rejects it as a user variable.
    port = [EnvVar(PORT, str(HTTP_PORT))]
    # Each pool as infra/connection_budget.py counts it against the database's max_connections.
    def pool(size: int) -> list[EnvVar]:
        return [EnvVar(AGENTLANE_DB_POOL_MAX, str(size))]

    # Spans to Cloud Trace (the account may write them: identity.py); parent-based, so a run
    # started by a sampled request is traced whole.
    tracing = [
        EnvVar(OTEL_TRACES_EXPORTER, "gcp_trace"),
        EnvVar(OTEL_TRACES_SAMPLER, "parentbased_traceidratio"),
        EnvVar(OTEL_TRACES_SAMPLER_ARG, str(runtime.trace_sample_ratio)),
    ] if runtime.trace_sample_ratio > 0 else []

    # Large values of events (infra/components/blobs.py): whoever writes or reads them.
    blobs = [
        EnvVar(AGENTLANE_BLOB_STORE, f"gs://{blob_bucket_name(config.project, config.stack)}")
    ]

    by_workload = {
        COMMAND_SERVICE: (
            database + pool(config.command_service.db_pool) + bus + auth + blobs + tracing
        ),
        GATEWAY: database + pool(config.gateway.db_pool) + bus + auth + blobs + port + tracing,
        RUNNER: (
            database + pool(config.runners.db_pool) + bus + lease + model + blobs + port + tracing
        ),
        PROJECTOR: database + pool(PROJECTOR_POOL) + bus + lease + port + tracing,
        MIGRATE: database,
        ANCHOR: [*database, EnvVar(AGENTLANE_ANCHOR_KEY, secret=SECRET_ANCHOR_KEY), *blobs],
    }
    return by_workload[workload]

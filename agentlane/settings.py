"""Settings of every component, read from the environment once (in ``main``) and passed down.

The variable names are the contract (docs/contract.md, "Environment"); ``ENV_VARS`` lists every name
these settings read so deploy code and tests can check they agree. (The command service's
admission knobs, ``AGENTLANE_CMD_*``, are its own flags with env fallbacks: see its ``main``.)
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

import psycopg.conninfo
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentlane.errors import ConfigError

#: The environment table of docs/contract.md.
CONTRACT_ENV_VARS: frozenset[str] = frozenset(
    {
        "DATABASE_URL",
        "AGENTLANE_BUS",
        "GOOGLE_CLOUD_PROJECT",
        "PUBSUB_EMULATOR_HOST",
        "AGENTLANE_TOPIC",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "AGENTLANE_MODEL",
        "AGENTLANE_AUTH",
        "AGENTLANE_JWT_SECRET",
        "AGENTLANE_JWT_JWKS_URL",
        "AGENTLANE_JWT_AUDIENCE",
        "AGENTLANE_JWT_ISSUER",
        "AGENTLANE_TENANT_CLAIM",
        "AGENTLANE_OPERATOR_CLAIM",
        "AGENTLANE_SHARDS",
        "AGENTLANE_LEASE_TTL",
        "POD_NAME",
        "AGENTLANE_RUNNER_ID",
        "PORT",
    }
)

#: Optional tuning knobs beyond the contract, all with safe defaults.
TUNING_ENV_VARS: frozenset[str] = frozenset(
    {
        "AGENTLANE_DB_POOL_MIN",
        "AGENTLANE_DB_POOL_MAX",
        "AGENTLANE_LOG_LEVEL",
        "AGENTLANE_LOG_FORMAT",
        "AGENTLANE_MODEL_FALLBACK",
        "AGENTLANE_DEMO_TOOLS",
        "AGENTLANE_ALLOWED_ORIGINS",
        "AGENTLANE_APP_ROLE",
        "AGENTLANE_AUDIT_ROLE",
        "AGENTLANE_ANCHOR_KEY",
        "AGENTLANE_ANCHOR_VERIFY_KEY",
        "AGENTLANE_DB_IAM_AUTH",
        "STORAGE_EMULATOR_HOST",
        "OPENAI_API_KEY_FILE",
        "AGENTLANE_OFFLINE_PACE",
        "AGENTLANE_JWT_SECRET_FILE",
        "AGENTLANE_PRICES_FILE",
        "AGENTLANE_CODE_VERSION",
        "AGENTLANE_BLOB_STORE",
        "AGENTLANE_BLOB_THRESHOLD",
    }
)

#: Every variable name these settings read.
ENV_VARS: frozenset[str] = CONTRACT_ENV_VARS | TUNING_ENV_VARS

DEFAULT_REMOTE_MODEL = "gpt-4.1-mini"


class Settings(BaseSettings):
    """Validated settings. Build with :meth:`from_env`; pass the object down, never re-read env."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", populate_by_name=True, case_sensitive=True
    )

    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    bus_choice: Literal["pubsub", "postgres"] | None = Field(
        default=None, validation_alias="AGENTLANE_BUS"
    )
    google_cloud_project: str | None = Field(default=None, validation_alias="GOOGLE_CLOUD_PROJECT")
    pubsub_emulator_host: str | None = Field(default=None, validation_alias="PUBSUB_EMULATOR_HOST")
    topic: str = Field(default="agent-events", min_length=3, validation_alias="AGENTLANE_TOPIC")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    # A mounted secret: re-read on every model call, so a rotated key needs no restart.
    openai_api_key_file: Path | None = Field(default=None, validation_alias="OPENAI_API_KEY_FILE")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    model_choice: str | None = Field(default=None, validation_alias="AGENTLANE_MODEL")
    # Takes the last attempt of a model call when the primary model keeps failing.
    model_fallback: str | None = Field(default=None, validation_alias="AGENTLANE_MODEL_FALLBACK")
    auth: Literal["none", "jwt"] = Field(default="none", validation_alias="AGENTLANE_AUTH")
    jwt_secret: SecretStr | None = Field(default=None, validation_alias="AGENTLANE_JWT_SECRET")
    # A mounted secret of one HS256 secret per line, read again when it changes (rotation).
    jwt_secret_file: Path | None = Field(
        default=None, validation_alias="AGENTLANE_JWT_SECRET_FILE"
    )
    jwt_jwks_url: str | None = Field(default=None, validation_alias="AGENTLANE_JWT_JWKS_URL")
    jwt_audience: str | None = Field(default=None, validation_alias="AGENTLANE_JWT_AUDIENCE")
    jwt_issuer: str | None = Field(default=None, validation_alias="AGENTLANE_JWT_ISSUER")
    tenant_claim: str = Field(
        default="tenant", min_length=1, validation_alias="AGENTLANE_TENANT_CLAIM"
    )
    # What makes a token an operator's (GET /ops/overview spans tenants): NAME or NAME=VALUE.
    operator_claim: str = Field(
        default="agentlane_operator", pattern=r"^[^=\s]+(=\S+)?$",
        validation_alias="AGENTLANE_OPERATOR_CLAIM",
    )
    shards: int = Field(default=64, ge=1, le=65536, validation_alias="AGENTLANE_SHARDS")
    lease_ttl_s: float = Field(default=10.0, gt=0, le=3600, validation_alias="AGENTLANE_LEASE_TTL")
    runner_name: str | None = Field(
        default=None, validation_alias=AliasChoices("POD_NAME", "AGENTLANE_RUNNER_ID")
    )
    port: int = Field(default=8080, ge=0, le=65535, validation_alias="PORT")
    db_pool_min: int = Field(default=1, ge=0, le=100, validation_alias="AGENTLANE_DB_POOL_MIN")
    db_pool_max: int = Field(default=10, ge=1, le=500, validation_alias="AGENTLANE_DB_POOL_MAX")
    log_level: str = Field(default="INFO", validation_alias="AGENTLANE_LOG_LEVEL")
    log_format: Literal["json", "text"] = Field(
        default="json", validation_alias="AGENTLANE_LOG_FORMAT"
    )
    # The agent's demo tools (an approval-gated send_email that sends nothing): agentlane dev.
    demo_tools: bool = Field(default=False, validation_alias="AGENTLANE_DEMO_TOOLS")
    # Words per second the offline model streams at (0: all at once), so streaming shows in dev.
    offline_pace: float = Field(
        default=0.0, ge=0, le=10_000, validation_alias="AGENTLANE_OFFLINE_PACE"
    )
    # The deployed code (an image tag), recorded in every RunStarted a runner writes.
    code_version: str = Field(
        default_factory=lambda: _package_version(), min_length=1, max_length=128,
        validation_alias="AGENTLANE_CODE_VERSION",
    )
    # The model price table (agentlane.pricing): Usage events carry what each call cost.
    prices_file: Path | None = Field(default=None, validation_alias="AGENTLANE_PRICES_FILE")
    # The database roles agentlane migrate keeps (agentlane.roles).
    app_role: str = Field(
        default="agentlane_app", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        validation_alias="AGENTLANE_APP_ROLE",
    )
    audit_role: str = Field(
        default="agentlane_auditor", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        validation_alias="AGENTLANE_AUDIT_ROLE",
    )
    # Log in to Cloud SQL as DATABASE_URL's IAM user with an access token (agentlane.db_iam).
    db_iam_auth: bool = Field(default=False, validation_alias="AGENTLANE_DB_IAM_AUTH")
    # The key `agentlane replay anchor` signs with, and the one `verify --anchor` checks with
    # (agentlane.replay.anchor): an Ed25519 key in PEM, or an HMAC secret.
    anchor_key: SecretStr | None = Field(default=None, validation_alias="AGENTLANE_ANCHOR_KEY")
    anchor_verify_key: SecretStr | None = Field(
        default=None, validation_alias="AGENTLANE_ANCHOR_VERIFY_KEY"
    )
    # A Cloud Storage emulator for `replay anchor --out gs://…` (tests, dev), as Google's clients.
    storage_emulator_host: str | None = Field(
        default=None, validation_alias="STORAGE_EMULATOR_HOST"
    )
    # Where large event values go (agentlane.blobs): gs://BUCKET[/PREFIX], file:///DIR or a DIR.
    blob_store: str | None = Field(default=None, validation_alias="AGENTLANE_BLOB_STORE")
    # Values whose JSON is longer than this many bytes go to the blob store.
    blob_threshold: int = Field(
        default=32 * 1024, ge=1024, le=1 << 30, validation_alias="AGENTLANE_BLOB_THRESHOLD"
    )
    # Comma-separated origins whose pages may open the gateway's sockets ("*": any).
    allowed_origins_list: str = Field(default="", validation_alias="AGENTLANE_ALLOWED_ORIGINS")

    @field_validator("database_url", mode="after")
    @classmethod
    def _a_postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_database_url(value.get_secret_value())
        return value

    @field_validator(
        "bus_choice", "model_choice", "model_fallback", "openai_base_url", "anchor_key",
        "anchor_verify_key", "storage_emulator_host", "blob_store", mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``); raise ConfigError naming the
        variable on bad input."""
        source = dict(os.environ if environ is None else environ)
        names = {name for name in ENV_VARS if name in source}
        data: dict[str, object] = {name: source[name] for name in names}
        data.update(overrides)
        try:
            settings = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None
        if settings.db_pool_min > settings.db_pool_max:
            raise ConfigError("AGENTLANE_DB_POOL_MIN must not exceed AGENTLANE_DB_POOL_MAX")
        return settings

    @property
    def bus(self) -> Literal["pubsub", "postgres"]:
        """The live fan-out, defaulting as docs/contract.md says."""
        if self.bus_choice is not None:
            return self.bus_choice
        if self.pubsub_emulator_host or self.google_cloud_project:
            return "pubsub"
        return "postgres"

    @property
    def model(self) -> str:
        """The model name; ``offline`` when no endpoint is configured."""
        if self.model_choice:
            return self.model_choice
        if (
            self.openai_api_key is None
            and self.openai_api_key_file is None
            and self.openai_base_url is None
        ):
            return "offline"
        return DEFAULT_REMOTE_MODEL

    @property
    def allowed_origins(self) -> frozenset[str]:
        """``AGENTLANE_ALLOWED_ORIGINS`` as a set (empty: the gateway's own origin only)."""
        return frozenset(
            origin.strip().rstrip("/") for origin in self.allowed_origins_list.split(",")
            if origin.strip()
        )

    @property
    def lease_ttl(self) -> timedelta:
        return timedelta(seconds=self.lease_ttl_s)

    @property
    def runner_identity(self) -> str:
        """Stable runner name: POD_NAME / AGENTLANE_RUNNER_ID, else hostname + pid."""
        return self.runner_name or f"{socket.gethostname()}-{os.getpid()}"

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError("DATABASE_URL is not set")
        return self.database_url.get_secret_value()


def check_database_url(url: str) -> str:
    """``url`` if libpq can parse it (a ``postgresql://`` URL or ``key=value`` pairs), else
    ValueError. The parser's own message is not kept: it may quote the password."""
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ValueError(
            "not a PostgreSQL URL (postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
        ) from None
    return url


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"]) or "settings"
        parts.append(f"{loc}: {error['msg'].removeprefix('Value error, ')}")
    return "invalid settings: " + "; ".join(parts)


def _package_version() -> str:
    """agentlane's installed version (a deploy sets AGENTLANE_CODE_VERSION to its image tag)."""
    try:
        return f"agentlane-{importlib.metadata.version('agentlane')}"
    except importlib.metadata.PackageNotFoundError:
        return "agentlane-unknown"

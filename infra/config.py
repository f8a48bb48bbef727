"""The stack's configuration, read once from `pulumi.Config` into frozen dataclasses.

Every knob a stack file (`Pulumi.<stack>.yaml`) may set is a field below; an unknown key, a
wrong type, a mutable image tag or an open control-plane range fails before any resource is
declared, with one line that names the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi

from .connection_budget import Budget, budget

__all__ = [
    "AnchorConfig",
    "ArmorConfig",
    "AuthorizedNetwork",
    "CommandServiceConfig",
    "ConfigError",
    "DatabaseConfig",
    "GatewayConfig",
    "Resources",
    "RunnerConfig",
    "RuntimeConfig",
    "StackConfig",
    "StackSecrets",
    "connection_budget",
    "load",
    "parse",
    "parse_authorized_network",
    "parse_image",
]

PROJECT_NAMESPACE = "agentlane"

# A git sha (short or full) as the tag, optionally pinned further by digest.
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9][a-z0-9.\-]*(?::\d+)?(?:/[a-z0-9._\-]+)+)"
    r":(?P<tag>[0-9a-f]{7,40})(?:@sha256:[0-9a-f]{64})?$"
)


class ConfigError(ValueError):
    """A stack setting is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Resources:
    """Container size; requests and limits are both set to these (Autopilot bills requests)."""

    cpu: str
    memory: str
    ephemeral_storage: str = "1Gi"


@dataclass(frozen=True)
class AuthorizedNetwork:
    """A CIDR allowed to reach the GKE control plane (operators, CI)."""

    name: str
    cidr: str


@dataclass(frozen=True)
class DatabaseConfig:
    tier: str
    high_availability: bool
    disk_size_gb: int = 20
    backup_retention_days: int = 7
    # Bounds how long one transaction can hold back the gap-safe tail (docs/design.md).
    idle_in_transaction_timeout_ms: int = 60_000
    statement_timeout_ms: int = 300_000
    #: Set on the instance (not the tier's default), and the budget every stack must fit under
    #: (infra/connection_budget.py).
    max_connections: int = 100


@dataclass(frozen=True)
class RunnerConfig:
    replicas: int
    resources: Resources
    # How long a runner may take after SIGTERM to finish in-flight steps and release shards.
    drain_seconds: int = 30
    #: Each runner's pool (AGENTLANE_DB_POOL_MAX): its advances' writes and reads.
    db_pool: int = 10
    #: Pods with an ordinal at or above it take a new template; the rest keep theirs. The deploy
    #: pipeline (deploy/rollout.sh) sets replicas - 1 for its canary (one runner first), then 0.
    rollout_partition: int = 0


@dataclass(frozen=True)
class GatewayConfig:
    min_replicas: int
    max_replicas: int
    resources: Resources
    #: Each gateway's pool: history reads (6 at once) and socket commands.
    db_pool: int = 6


@dataclass(frozen=True)
class CommandServiceConfig:
    min_instances: int
    max_instances: int
    concurrency: int
    resources: Resources
    #: Each instance's pool: writes are group-committed, so a few connections carry many requests.
    db_pool: int = 6


@dataclass(frozen=True)
class RuntimeConfig:
    """Values handed to the components as docs/contract.md environment variables."""

    jwt_audience: str
    model: str
    topic: str = "agent-events"
    shards: int = 64
    lease_ttl_seconds: int = 10
    openai_base_url: str | None = None
    jwt_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    jwt_issuer: str = "https://accounts.google.com"
    tenant_claim: str = "tenant"
    #: Share of traces kept (Cloud Trace, parent-based: a sampled caller keeps its whole run);
    #: 0 turns tracing off.
    trace_sample_ratio: float = 0.05


@dataclass(frozen=True)
class ArmorConfig:
    # Clients can forge this header, so it only spreads the load fairly; the per-IP limit and
    # the command service's own per-tenant quota (429 on the verified claim) are the real guards.
    tenant_header: str = "x-tenant-id"
    ip_requests_per_minute: int = 600
    tenant_requests_per_minute: int = 3000
    ban_seconds: int = 300


@dataclass(frozen=True)
class AnchorConfig:
    """Signed anchors of the audit trail (docs/security.md): how often, and how long the bucket
    keeps each one. A locked retention policy cannot be shortened or removed, not even by the
    project's owner, so prod locks it; a dev stack must stay deletable."""

    schedule: str = "17 * * * *"
    retention_days: int = 400
    lock_retention: bool = False


@dataclass(frozen=True)
class BillingConfig:
    """A monthly budget on the stack's project, alerting the notification channels at 50%, 90%
    and 100% of it (and when the month's forecast passes it). Off while ``account`` is empty.
    ``projectNumber``: budgets filter by the number, not the id (gcloud projects describe)."""

    account: str = ""
    project_number: str = ""
    monthly_amount: int = 0
    currency: str = "USD"


@dataclass(frozen=True)
class StackSecrets:
    db_password: pulumi.Input[str]
    openai_api_key: pulumi.Input[str]
    # An Ed25519 private key (PEM) the anchor CronJob signs with; auditors hold its public key.
    anchor_signing_key: pulumi.Input[str]


@dataclass(frozen=True)
class StackConfig:
    stack: str
    project: str
    region: str
    image: str
    domain: str
    #: The gateway's NEG zones; empty: the zones the cluster reports for its nodes.
    neg_zones: tuple[str, ...]
    master_authorized_networks: tuple[AuthorizedNetwork, ...]
    deletion_protection: bool
    database: DatabaseConfig
    runners: RunnerConfig
    projector: Resources
    gateway: GatewayConfig
    command_service: CommandServiceConfig
    runtime: RuntimeConfig
    secrets: StackSecrets
    tenant_tier: str = "shared"
    armor: ArmorConfig = field(default_factory=ArmorConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    notification_channels: tuple[str, ...] = ()
    billing: BillingConfig = field(default_factory=BillingConfig)

    @property
    def image_tag(self) -> str:
        """The git sha the image is tagged with."""
        match = _IMAGE.match(self.image)
        assert match is not None  # parse() only admits matching images
        return match.group("tag")


def parse_image(image: str) -> str:
    """Accept only an image tagged by git sha; `:latest` or no tag is a mutable deploy."""
    if _IMAGE.match(image):
        return image
    if image.endswith(":latest") or ":latest@" in image:
        raise ConfigError(f"image: {image!r} uses ':latest'; tag it with the git sha")
    raise ConfigError(
        f"image: {image!r} must be REGISTRY/PATH:GIT_SHA (7-40 hex digits, optional @sha256:…)"
    )


def parse_authorized_network(raw: Mapping[str, Any]) -> AuthorizedNetwork:
    """A control-plane CIDR; the whole internet (or a /0 of either family) is refused."""
    network = _build(AuthorizedNetwork, raw, "masterAuthorizedNetworks[]")
    try:
        parsed = ipaddress.ip_network(network.cidr, strict=True)
    except ValueError as exc:
        raise ConfigError(f"masterAuthorizedNetworks: {network.cidr!r} is not a CIDR") from exc
    if parsed.prefixlen == 0:
        raise ConfigError(
            f"masterAuthorizedNetworks: {network.cidr!r} opens the control plane to everyone"
        )
    return network


def parse(
    *, stack: str, project: str, region: str, raw: Mapping[str, Any], secrets: StackSecrets
) -> StackConfig:
    """Validate the `agentlane:` namespace of a stack file into a `StackConfig`."""
    values = dict(raw)
    networks = values.pop("masterAuthorizedNetworks", None)
    if not networks:
        raise ConfigError(
            "masterAuthorizedNetworks: list at least one operator/CI CIDR; "
            "Pulumi itself must reach the cluster"
        )
    values["masterAuthorizedNetworks"] = tuple(parse_authorized_network(n) for n in networks)
    values["image"] = parse_image(_require(values, "image", str))
    # Optional: by default the gateway's NEGs are the cluster's node zones (edge.py).
    zones = values.get("negZones") or []
    if not isinstance(zones, list) or any(not str(z).startswith(f"{region}-") for z in zones):
        raise ConfigError(f"negZones: {zones!r} must be zones of region {region!r}")
    values["negZones"] = tuple(zones)
    values["notificationChannels"] = tuple(values.get("notificationChannels", ()))
    config = _build(
        StackConfig,
        {**values, "stack": stack, "project": project, "region": region, "secrets": secrets},
        "agentlane",
    )
    if config.gateway.min_replicas < 2 or config.gateway.max_replicas < config.gateway.min_replicas:
        raise ConfigError("gateway: minReplicas must be >= 2 and <= maxReplicas")
    connections = connection_budget(config)
    if not connections.fits():
        raise ConfigError(
            f"database.maxConnections: {connections.describe()}; raise it (and the tier), or "
            "lower replicas, instances or a dbPool"
        )
    if config.deletion_protection and not config.notification_channels:
        # A stack guarded against deletion is one people depend on: its alerts must reach someone.
        raise ConfigError(
            "notificationChannels: a stack with deletionProtection must name at least one "
            "(pulumi config set --path 'notificationChannels[0]' "
            "projects/P/notificationChannels/ID)"
        )
    if not 0 <= config.runners.rollout_partition < max(config.runners.replicas, 1):
        raise ConfigError(
            f"runners.rolloutPartition: {config.runners.rollout_partition} must be from 0 to "
            f"replicas - 1 ({config.runners.replicas - 1})"
        )
    if not 0 <= config.runtime.trace_sample_ratio <= 1:
        raise ConfigError(
            f"runtime.traceSampleRatio: {config.runtime.trace_sample_ratio} is not from 0 to 1"
        )
    if config.billing.account and (
        not config.billing.project_number.isdigit() or config.billing.monthly_amount < 1
    ):
        raise ConfigError(
            "billing: with an account, projectNumber (digits) and monthlyAmount (>= 1) are needed"
        )
    if config.anchors.retention_days < 1:
        raise ConfigError("anchors.retentionDays: at least 1")
    if len(config.anchors.schedule.split()) != 5:
        raise ConfigError(f"anchors.schedule: {config.anchors.schedule!r} is not a 5-field cron")
    return config


def connection_budget(config: StackConfig) -> Budget:
    """The stack's worst case of database connections against its ``max_connections``."""
    return budget(
        max_connections=config.database.max_connections,
        runners=config.runners.replicas,
        runner_pool=config.runners.db_pool,
        gateways=config.gateway.max_replicas,
        gateway_pool=config.gateway.db_pool,
        command_instances=config.command_service.max_instances,
        command_pool=config.command_service.db_pool,
    )


def load() -> StackConfig:
    """Read the current stack's configuration (call once, from `__main__`)."""
    gcp = pulumi.Config("gcp")
    cfg = pulumi.Config(PROJECT_NAMESPACE)
    hints = typing.get_type_hints(StackConfig)
    raw: dict[str, Any] = {}
    for f in dataclasses.fields(StackConfig):
        if f.name in _NOT_IN_NAMESPACE:
            continue
        key = _camel(f.name)
        # Plain strings are stored verbatim; everything else (numbers, lists, objects) as JSON.
        value = cfg.get(key) if hints[f.name] is str else cfg.get_object(key)
        if value is not None:
            raw[key] = value
    return parse(
        stack=pulumi.get_stack(),
        project=gcp.require("project"),
        region=gcp.require("region"),
        raw=raw,
        secrets=StackSecrets(
            db_password=cfg.require_secret("dbPassword"),
            openai_api_key=cfg.require_secret("openaiApiKey"),
            anchor_signing_key=cfg.require_secret("anchorSigningKey"),
        ),
    )


_T = TypeVar("_T")
_NOT_IN_NAMESPACE = frozenset({"stack", "project", "region", "secrets"})


def _require(values: Mapping[str, Any], key: str, kind: type[_T]) -> _T:
    value = values.get(key)
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: required ({kind.__name__})")
    return value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _build(cls: type[_T], raw: Mapping[str, Any], where: str) -> _T:
    """Build dataclass `cls` from camelCase `raw`, checking names and scalar types."""
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected an object, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {_camel(f.name): f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for camel, f in fields.items():
        if camel not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}.{camel}: required")
            continue
        kwargs[f.name] = _coerce(hints[f.name], raw[camel], f"{where}.{camel}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)  # type: ignore[arg-type]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option in (int, str) and isinstance(value, option) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    if any(option not in (bool, int, float, str, type(None)) for option in options):
        return value  # tuples and secrets were validated by parse()
    raise ConfigError(f"{where}: expected {hint}, got {value!r}")

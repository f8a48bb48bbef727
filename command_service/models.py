"""The JSON of the HTTP API (docs/contract.md, "HTTP"): requests are validated with these models and
responses are built from them, and :mod:`command_service.openapi` publishes their JSON Schemas,
so the document and the server cannot drift apart."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from agentlane.commands import IDENTIFIER_PATTERN
from agentlane.events import MAX_WAIT_SECONDS, RunOptions

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=128)]
RunStatus = Literal["queued", "running", "suspended", "completed", "failed", "cancelled"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StartRunRequest(_Wire):
    """Body of ``POST /agents/{sessionId}/runs``."""

    runId: Identifier = Field(description="Client-owned idempotency key of the run.")
    message: str = Field(min_length=1, max_length=100_000)
    onConflict: Literal["enqueue", "reject", "interrupt"] = Field(
        default="enqueue",
        description="What to do when the session already has a run in progress.",
    )
    approvalTimeoutSeconds: float | None = Field(
        default=None, gt=0, le=MAX_WAIT_SECONDS,
        description="How long each approval of this run may wait before the tool's default "
        "action (deny, unless the tool approves by default) applies; overrides the tools' own.",
    )
    options: RunOptions | None = Field(
        default=None,
        description="The run's own model (one of AGENTLANE_CMD_RUN_MODELS), tools (a subset of "
        "the runners', by name) and system prompt, recorded in its RunAccepted.",
    )


class RunAcceptedResponse(_Wire):
    """The answer to a start; retries of the same ``runId`` get the same body."""

    executionId: str
    sessionId: str
    runId: str
    eventId: int = Field(ge=1, description="eventId of the run's RunAccepted event.")
    status: RunStatus = Field(description="Status when the run was accepted.")


class Usage(_Wire):
    inputTokens: int = Field(ge=0)
    outputTokens: int = Field(ge=0)
    cachedInputTokens: int = Field(ge=0)
    costMicros: int = Field(
        ge=0, description="What the priced model calls cost, in millionths of the price "
        "table's currency (calls of a model without a price count 0).",
    )


class UsageDay(Usage):
    """One tenant's use of one model on one UTC day."""

    day: str = Field(description="UTC day, YYYY-MM-DD.")
    model: str
    calls: int = Field(ge=0)


class UsageResponse(_Wire):
    """Body of ``GET /usage``: the caller's tenant, per model and day (from the read models)."""

    days: list[UsageDay]
    total: Usage


class SessionUsageResponse(_Wire):
    """Body of ``GET /sessions/{sessionId}/usage``: the session's runs, totalled."""

    sessionId: str
    runs: int = Field(ge=0)
    usage: Usage


class BlobRefBody(_Wire):
    """A value kept in the blob store: the SHA-256 and size of its JSON bytes."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class RunResponse(_Wire):
    """Body of ``GET /runs/{executionId}``."""

    executionId: str
    sessionId: str
    runId: str
    status: RunStatus
    answer: str | None = None
    answerRef: BlobRefBody | None = Field(
        default=None,
        description="Set instead of answer when the answer is in the blob store: "
        "GET /blobs/{sha256} gives it.",
    )
    error: str | None = None
    usage: Usage | None = None
    createdAt: str = Field(description="RFC 3339 timestamp.")
    updatedAt: str = Field(description="RFC 3339 timestamp.")


class Event(_Wire):
    """The Event JSON (docs/contract.md, "Event")."""

    eventId: int = Field(ge=1)
    seq: int = Field(ge=1)
    tenantId: str
    sessionId: str
    executionId: str | None
    type: str
    data: dict[str, Any]
    createdAt: str = Field(description="RFC 3339 timestamp.")
    traceparent: str | None = Field(
        default=None,
        description="W3C trace context of the span that appended the event, when tracing is "
        "on; metadata outside the hash chain.",
    )


class EventsPage(_Wire):
    """Body of ``GET /sessions/{sessionId}/events``."""

    events: list[Event]
    next: int | None = Field(
        description="Pass as ?after= to read the following page; null when this page is the end."
    )


class ForkRequest(_Wire):
    """Body of ``POST /sessions/{sessionId}/fork``."""

    atEventId: int = Field(ge=1, description="The session's event the fork's history ends at.")
    newSessionId: Identifier = Field(description="The new session: it must have no events yet.")


class ForkAccepted(_Wire):
    sessionId: str = Field(description="The new session.")
    parentSessionId: str
    atEventId: int = Field(ge=1)
    eventId: int = Field(ge=1, description="eventId of the fork's SessionForked event.")


class CancelRequest(_Wire):
    """Optional body of ``POST /runs/{executionId}/cancel``."""

    reason: str | None = Field(default=None, max_length=1000)


class CancelAccepted(_Wire):
    executionId: str
    eventId: int | None = Field(
        description="eventId of the CancelRequested event; null when the run had already ended."
    )


class SignalRequest(_Wire):
    """Body of ``POST /runs/{executionId}/signals/{name}`` (an approval, a budget raise)."""

    payload: JsonValue = None


class SignalAccepted(_Wire):
    executionId: str
    name: str
    eventId: int = Field(ge=1)


class OpsRunner(_Wire):
    """A registered runner (``cluster_runners``) and the shards whose live lease it holds."""

    runnerId: str = Field(description="name/incarnation: a restarted runner is a new one.")
    heartbeatAgeS: float = Field(description="Seconds since its last heartbeat.")
    upS: float | None = Field(description="Seconds since this incarnation registered.")
    draining: bool
    shards: list[int] = Field(description="Shards whose lease it holds and has not expired.")
    leaseExpiresInS: float | None = Field(
        description="Seconds until the first of its leases expires unless renewed."
    )


class OpsShard(_Wire):
    """One shard: its lease (``cluster_shards``) and its due work (``run_index``)."""

    shard: int = Field(ge=0)
    runnerId: str | None = Field(description="The holder of a live lease; null: nobody.")
    leaseToken: int = Field(
        ge=0, description="The fencing token; it grows each time the shard changes hands."
    )
    expiresInS: float | None = Field(description="Negative: the lease has expired.")
    heldForS: float | None = Field(description="Seconds since the lease was last claimed.")
    dueRuns: int = Field(
        ge=0, description="Head runs due now (a runner may be advancing some of them)."
    )
    oldestDueAgeS: float | None = Field(description="How long the oldest of them has waited.")
    nextWakeInS: float | None = Field(description="Seconds until its next timer.")


class OpsShards(_Wire):
    count: int = Field(ge=0, description="The shard count (AGENTLANE_SHARDS of this database).")
    held: int = Field(ge=0, description="Shards with a live lease.")
    listed: Literal["all", "notable"] = Field(
        description="all: every shard is in rows; notable: (more than 1024 shards) only those "
        "with due work or no live lease, up to 1024."
    )
    rows: list[OpsShard]


class OpsCheckpoint(_Wire):
    """A projector checkpoint (``projector_checkpoints``) and its lag behind the log."""

    name: str = Field(description="read_models, and publish on the pubsub bus.")
    lagEvents: int = Field(ge=0, description="Committed events after it (counted up to a cap).")
    lagEventsCapped: bool = Field(description="true: there are at least lagEvents.")
    lagS: float = Field(ge=0, description="Age of the oldest event after it (0: caught up).")
    updatedAgeS: float = Field(description="Seconds since it last moved.")


class OpsProjector(_Wire):
    checkpoints: list[OpsCheckpoint]
    horizonAgeS: float = Field(
        ge=0, description="How long the gap-safe horizon has been held back by one open "
        "transaction (every tailing reader waits behind it).",
    )


class OpsActiveRuns(_Wire):
    """Unfinished runs by status (``run_index``)."""

    queued: int = Field(ge=0)
    running: int = Field(ge=0)
    suspended: int = Field(ge=0)


class OpsEndedRuns(_Wire):
    """Runs that ended in the last ``windowS`` seconds, by outcome."""

    completed: int = Field(ge=0)
    failed: int = Field(ge=0)
    cancelled: int = Field(ge=0)
    windowS: float = Field(gt=0, description="The window the counts cover.")
    sampled: bool = Field(
        description="true: the window held more events than are looked at, and windowS is "
        "what the newest of them cover (counts / windowS is still the rate)."
    )


class OpsRuns(_Wire):
    active: OpsActiveRuns
    ended: OpsEndedRuns


class OpsUsageDay(Usage):
    """One tenant's use of one model on one UTC day."""

    day: str = Field(description="UTC day, YYYY-MM-DD.")
    tenant: str
    model: str
    calls: int = Field(ge=0)


class OpsUsage(_Wire):
    """Every tenant's usage from ``since`` on (``read_usage_daily``: trails the log by the
    projector's lag), newest day first, the costliest first within a day."""

    since: str = Field(description="First UTC day included, YYYY-MM-DD.")
    days: list[OpsUsageDay]
    truncated: bool = Field(description="true: more rows than the 1000 returned.")


class OpsOverview(_Wire):
    """Body of ``GET /ops/overview``: the cluster as of one database snapshot, for operators."""

    at: str = Field(description="The snapshot's database time, RFC 3339.")
    runners: list[OpsRunner]
    shards: OpsShards
    projector: OpsProjector
    runs: OpsRuns
    usage: OpsUsage | None = Field(
        description="null while the read-model tables are being swapped by a rebuild."
    )


class Problem(_Wire):
    """application/problem+json (RFC 9457)."""

    type: str
    title: str
    status: int = Field(ge=400, le=599)
    detail: str


#: Every model the OpenAPI document publishes under components/schemas.
SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    StartRunRequest,
    RunAcceptedResponse,
    RunResponse,
    Event,
    EventsPage,
    CancelRequest,
    CancelAccepted,
    SignalRequest,
    SignalAccepted,
    UsageResponse,
    SessionUsageResponse,
    ForkRequest,
    ForkAccepted,
    OpsOverview,
    Problem,
)

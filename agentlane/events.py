"""The Event JSON of docs/contract.md: one pydantic model per event type with typed ``data``.

These models are the edge: they validate what goes into the store and parse what comes over a wire.
Inside the services events travel as :class:`agentlane.records.StoredEvent` dataclasses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, Self, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from agentlane.errors import InvalidEvent
from agentlane.hashchain import storable_number

#: The longest an approval may wait (30 days): a deadline is a timer, not a way to park a run.
MAX_WAIT_SECONDS = 30 * 24 * 3600

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]


class EventData(BaseModel):
    """Base of every event's ``data``: camelCase on the wire, unknown fields refused."""

    # allow_inf_nan: JSON has no NaN or Infinity, and pydantic's JSON dump would write null in
    # their place (a tool's NaN stored as null): they are refused here, naming the field.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True,
        allow_inf_nan=False,
    )


class Budget(EventData):
    """A run's budget of model tokens and model calls (``maxAttempts``). ``capTokens`` and
    ``capAttempts``, set by the server when it accepted the run, are the most a ``budget`` signal
    can raise them to: a run at its cap fails instead of waiting."""

    max_tokens: int | None = Field(default=None, ge=1)
    max_attempts: int | None = Field(default=None, ge=1)
    cap_tokens: int | None = Field(default=None, ge=1)
    cap_attempts: int | None = Field(default=None, ge=1)
    #: Wall time: a run still unfinished this long after it was accepted is cancelled.
    cap_seconds: float | None = Field(default=None, gt=0)
    #: Money, in millionths of the price table's currency (``agentlane.pricing``): checked before
    #: each model call against what the run's priced calls cost so far.
    max_cost_micros: int | None = Field(default=None, ge=1)
    cap_cost_micros: int | None = Field(default=None, ge=1)


class RunOptions(EventData):
    """What a run may choose for itself, recorded in its ``RunAccepted`` so every replay of it
    makes the same choice: the model (one of those the server offers: ``AGENTLANE_CMD_RUN_MODELS``),
    the tools it may use (a subset of the runner's, by name), and its system prompt."""

    model: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@+-]+$"
    )
    tools: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=64
    )
    system_prompt: str | None = Field(default=None, min_length=1, max_length=20_000)


def run_options(options: RunOptions | None) -> dict[str, Any] | None:
    """A request's run options as ``RunAccepted`` records them (None: none given)."""
    if options is None:
        return None
    return options.model_dump(mode="json", by_alias=True, exclude_none=True) or None


class BlobRef(EventData):
    """A value kept in the blob store (``agentlane.blobs``): the SHA-256 and length of its
    canonical JSON bytes. The event's field it stands for is ``null``."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class _HoldsBlobs(EventData):
    """Data with fields a blob may hold: ``<field>Ref`` set means ``<field>`` is in the blob."""

    #: The fields, snake_case (see agentlane.blobs.refs.OFFLOADED_FIELDS).
    blob_fields: ClassVar[tuple[str, ...]] = ()
    #: Whether each needs a value or a reference (a JSON value may be null itself).
    blob_required: ClassVar[bool] = False

    @model_validator(mode="after")
    def _value_or_reference(self) -> Self:
        for name in self.blob_fields:
            value, ref = getattr(self, name), getattr(self, name + "_ref")
            if ref is not None and value is not None:
                raise ValueError(f"{to_camel(name)}: a value and a blob reference both given")
            if self.blob_required and ref is None and value is None:
                raise ValueError(f"{to_camel(name)}: Field required")
        return self

    @model_serializer(mode="wrap")
    def _without_absent_references(self, handler: SerializerFunctionWrapHandler) -> Any:
        # An absent reference is left out rather than null: data without blobs reads as it did
        # before blobs existed.
        dumped = handler(self)
        for name in self.blob_fields:
            for key in (name + "_ref", to_camel(name) + "Ref"):
                if key in dumped and dumped[key] is None:
                    del dumped[key]
        return dumped


class RunAcceptedData(_HoldsBlobs):
    blob_fields: ClassVar[tuple[str, ...]] = ("message",)
    blob_required: ClassVar[bool] = True

    run_id: Identifier
    #: ``null`` only when ``messageRef`` names its blob.
    message: str | None = Field(default=None, max_length=100_000)
    message_ref: BlobRef | None = None
    on_conflict: Literal["enqueue", "reject", "interrupt"] = "enqueue"
    workflow: str = "agent"
    budget: Budget | None = None
    #: How long each approval of this run may wait, overriding the tools' own deadlines.
    approval_timeout_seconds: float | None = Field(default=None, gt=0, le=MAX_WAIT_SECONDS)
    options: RunOptions | None = None


class RunStartedData(EventData):
    workflow: str
    version: str
    runner_id: str | None = None
    #: The deployed code that started the run (``AGENTLANE_CODE_VERSION``: an image tag).
    code_version: str | None = Field(default=None, max_length=128)


class SessionForkedData(EventData):
    """The first event of a session forked from another at one of its events: the fork's history
    is the parent's up to and including ``atSeq`` (referenced, not copied). ``parentHash`` is the
    hash of the parent's event there, so the fork's own hash chain covers the link."""

    parent_session_id: Identifier
    at_event_id: int = Field(ge=1)
    at_seq: int = Field(ge=1)
    parent_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class VersionMovedData(EventData):
    """An operator moved an unfinished run to another version of its workflow (never implicit):
    its next advance replays its journal with that version's code."""

    workflow: str
    from_version: str
    to_version: str = Field(min_length=1, max_length=64)
    reason: str | None = Field(default=None, max_length=1000)


class TokenData(EventData):
    text: str
    index: int = Field(ge=0)
    # The model step and attempt that streamed it: a retried attempt streams again from index 0.
    step: int | None = Field(default=None, ge=0)
    attempt: int | None = Field(default=None, ge=1)


class ToolCallData(EventData):
    step: int = Field(ge=0)
    call_id: str
    name: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    requires_approval: bool = False


class ToolResultData(_HoldsBlobs):
    blob_fields: ClassVar[tuple[str, ...]] = ("result",)

    step: int = Field(ge=0)
    call_id: str
    name: str
    ok: bool
    result: JsonValue = None
    result_ref: BlobRef | None = None
    error: str | None = None


class SuspendedData(EventData):
    reason: Literal["approval", "budget", "signal"]
    name: str | None = None
    detail: str | None = None
    # The workflow step that waits (engine journal position).
    step: int | None = Field(default=None, ge=0)
    #: When the wait ends by itself, on database time (a durable timer): the step then completes
    #: as timed out and the workflow takes its default (an approval's: deny, or approve).
    deadline: AwareDatetime | None = None


class ResumedData(EventData):
    reason: str | None = None
    step: int | None = Field(default=None, ge=0)


class SignalReceivedData(_HoldsBlobs):
    blob_fields: ClassVar[tuple[str, ...]] = ("payload",)

    name: str = Field(min_length=1, max_length=128)
    payload: JsonValue = None
    payload_ref: BlobRef | None = None


class CancelRequestedData(EventData):
    reason: str | None = None


class CompletedData(_HoldsBlobs):
    blob_fields: ClassVar[tuple[str, ...]] = ("answer",)
    blob_required: ClassVar[bool] = True

    #: ``null`` only when ``answerRef`` names its blob.
    answer: str | None = None
    answer_ref: BlobRef | None = None
    offline: bool = False


class FailedData(EventData):
    reason: str


class CancelledData(EventData):
    reason: str | None = None


class UsageData(EventData):
    model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(default=0, ge=0)
    step: int | None = None
    #: What the call cost, in millionths of the price table's currency, and that table's
    #: version (absent: the model had no price when the call was made).
    cost_micros: int | None = Field(default=None, ge=0)
    price_version: str | None = Field(default=None, max_length=64)


class StepCompletedData(_HoldsBlobs):
    """A journaled activity result: at most one per (execution, step)."""

    blob_fields: ClassVar[tuple[str, ...]] = ("result",)

    step: int = Field(ge=0)
    name: str
    result: JsonValue = None
    result_ref: BlobRef | None = None
    attempts: int = Field(default=1, ge=1)


class StepFailedData(EventData):
    """One failed attempt of an activity (retryable) or its final failure."""

    step: int = Field(ge=0)
    name: str
    attempt: int = Field(ge=1)
    error: str
    retryable: bool
    retry_at: AwareDatetime | None = None
    #: The attempt was cut short when its runner was lost (it streamed, never ended): its tokens
    #: are void, and it does not count against the step's retry budget.
    abandoned: bool = False


class TimerScheduledData(EventData):
    step: int = Field(ge=0)
    fire_at: AwareDatetime


class TimerFiredData(EventData):
    step: int = Field(ge=0)


DATA_MODELS: dict[str, type[EventData]] = {
    "RunAccepted": RunAcceptedData,
    "RunStarted": RunStartedData,
    "Token": TokenData,
    "ToolCall": ToolCallData,
    "ToolResult": ToolResultData,
    "Suspended": SuspendedData,
    "Resumed": ResumedData,
    "SignalReceived": SignalReceivedData,
    "CancelRequested": CancelRequestedData,
    "Completed": CompletedData,
    "Failed": FailedData,
    "Cancelled": CancelledData,
    "Usage": UsageData,
    "StepCompleted": StepCompletedData,
    "StepFailed": StepFailedData,
    "TimerScheduled": TimerScheduledData,
    "TimerFired": TimerFiredData,
    "VersionMoved": VersionMovedData,
    "SessionForked": SessionForkedData,
}

#: The event types that end a run, and the status each leaves it in.
TERMINAL_STATUS: Mapping[str, Literal["completed", "failed", "cancelled"]] = MappingProxyType(
    {"Completed": "completed", "Failed": "failed", "Cancelled": "cancelled"}
)
#: Event types that end a run.
TERMINAL_TYPES: frozenset[str] = frozenset(TERMINAL_STATUS)
#: Commands that change what a run must do next (appended by the command API, read by the engine).
COMMAND_TYPES: frozenset[str] = frozenset({"SignalReceived", "CancelRequested"})


class EventBase(BaseModel):
    """Fields every event carries (docs/contract.md, "Event")."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    event_id: int = Field(alias="eventId", ge=1)
    seq: int = Field(ge=1)
    tenant_id: str = Field(alias="tenantId", min_length=1)
    session_id: str = Field(alias="sessionId", min_length=1)
    execution_id: str | None = Field(alias="executionId")
    created_at: AwareDatetime = Field(alias="createdAt")
    #: The W3C trace context of the span that appended the event, when tracing was on; metadata
    #: outside the hash chain.
    traceparent: str | None = Field(
        default=None, pattern=r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
    )


def _event_model(type_name: str, data_model: type[EventData]) -> type[EventBase]:
    return type(
        f"{type_name}Event",
        (EventBase,),
        {
            "__annotations__": {"type": Literal[type_name], "data": data_model},
            "__module__": __name__,
        },
    )


EVENT_MODELS: dict[str, type[EventBase]] = {
    name: _event_model(name, model) for name, model in DATA_MODELS.items()
}

# Built from DATA_MODELS at import, so one table drives both validation and parsing; static
# checkers cannot follow a union made at run time, hence Any.
_AnyEvent: Any = Union[tuple(EVENT_MODELS.values())]  # noqa: UP007
Event: Any = Annotated[_AnyEvent, Field(discriminator="type")]
EventAdapter: TypeAdapter[EventBase] = TypeAdapter(Event)


def parse_event(payload: bytes | str | dict[str, Any]) -> EventBase:
    """Parse and validate an Event from JSON (or a decoded dict); InvalidEvent names the field."""
    try:
        if isinstance(payload, dict):
            return EventAdapter.validate_python(payload)
        return EventAdapter.validate_json(payload)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc)) from None


def validate_data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Validate ``data`` for ``event_type`` and return its normalized wire form (camelCase)."""
    model = DATA_MODELS.get(event_type)
    if model is None:
        raise InvalidEvent(f"type: unknown event type {event_type!r}")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc, prefix="data")) from None
    return _storable(parsed.model_dump(mode="json", by_alias=True), "data")  # type: ignore[no-any-return]


def describe_validation_error(exc: ValidationError, *, prefix: str = "") -> str:
    """One line naming each failing field, e.g. ``data.text: Field required``."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = [prefix] if prefix else []
        loc.extend(str(part) for part in error["loc"])
        parts.append(f"{'.'.join(loc) or 'event'}: {error['msg']}")
    return "; ".join(parts)


def _storable(value: Any, path: Any) -> Any:
    """What Postgres jsonb holds faithfully: no NUL characters, finite numbers, and integral
    floats as the integers jsonb would return (see hashchain.storable_number).

    ``path`` is where ``value`` sits, as nested pairs ``(parent, key)`` spelled out only in an
    error (every event written passes here: formatting each item's path cost more than the check).
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidEvent(f"{_spelled(path)}: NUL characters are not allowed")
        if not is_text(value):
            raise InvalidEvent(f"{_spelled(path)}: a lone surrogate is not Unicode text")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent(f"{_spelled(path)}: numbers must be finite")
        return storable_number(value)
    if isinstance(value, dict):
        for key in value:
            if "\x00" in key or not is_text(key):
                raise InvalidEvent(f"{_spelled(path)}: keys must be text without NUL characters")
        return {key: _storable(item, (path, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item, (path, index)) for index, item in enumerate(value)]
    return value


def _spelled(path: Any) -> str:
    """``(("data", "result"), 0)`` as ``data.result.0``."""
    parts: list[str] = []
    while isinstance(path, tuple):
        path, key = path
        parts.append(str(key))
    parts.append(str(path))
    return ".".join(reversed(parts))


def is_text(value: str) -> bool:
    """False for a string holding a lone surrogate, which no UTF-8 encoder can write."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the one spelling used on every wire and in hashes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

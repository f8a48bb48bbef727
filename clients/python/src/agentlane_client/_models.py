"""The API's JSON as pydantic models (docs/contract.md: "HTTP", "Event").

An :class:`Event` is the envelope every event comes in, its ``data`` a dict; ``event.typed`` (or
:func:`parse_event`) gives the model of its type, generated from the schema the gateway publishes
(:mod:`agentlane_client._generated`: ``TokenEvent`` with ``data: TokenData``, …).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from agentlane_client._generated import TypedEvent

__all__ = [
    "EVENT_TYPES", "Event", "Fork", "Run", "RunAccepted", "RunStatus", "SessionUsage", "TypedEvent",
    "Usage", "parse_event",
]

RunStatus = Literal["queued", "running", "suspended", "completed", "failed", "cancelled"]
TERMINAL = frozenset({"Completed", "Failed", "Cancelled"})

_TYPED: TypeAdapter[TypedEvent] = TypeAdapter(TypedEvent)
#: The event types this client has a model for (the ``type`` of each model of ``TypedEvent``).
EVENT_TYPES: frozenset[str] = frozenset(
    get_args(model.model_fields["type"].annotation)[0]
    for model in get_args(get_args(TypedEvent)[0])
)


def parse_event(payload: Mapping[str, Any] | str | bytes) -> TypedEvent | Event:
    """An Event JSON (decoded, or its text) as the model of its type (``TokenEvent``, …), or as an
    untyped :class:`Event` when this client has no model that fits it: a type it does not know, or
    data a newer server shapes otherwise. Raises pydantic's ValidationError when it is no Event."""
    wire = json.loads(payload) if isinstance(payload, str | bytes) else payload
    if wire.get("type") in EVENT_TYPES:
        try:
            return _TYPED.validate_python(wire)
        except ValidationError:
            pass
    return Event.model_validate(wire)


class _Model(BaseModel):
    # Newer servers may add fields: a client keeps working.
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Event(_Model):
    """One event of a session (the Event JSON); ``data`` as the contract's table gives it."""

    event_id: int = Field(alias="eventId")
    seq: int
    tenant_id: str = Field(alias="tenantId")
    session_id: str = Field(alias="sessionId")
    execution_id: str | None = Field(alias="executionId")
    type: str
    data: dict[str, Any]
    created_at: datetime = Field(alias="createdAt")
    traceparent: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL

    @cached_property
    def typed(self) -> TypedEvent | Event:
        """This event as the model of its type (``TokenEvent``, ``CompletedEvent``, …, whose
        ``data`` is a model: ``event.typed.data.text``), or this same untyped Event when this
        client has no model that fits it (a newer server's type or data); see
        :func:`parse_event`."""
        typed = parse_event(self.wire()) if self.type in EVENT_TYPES else self
        return self if isinstance(typed, Event) else typed

    def wire(self) -> dict[str, Any]:
        """The Event JSON again (what the transcript fold reads)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


class RunAccepted(_Model):
    execution_id: str = Field(alias="executionId")
    session_id: str = Field(alias="sessionId")
    run_id: str = Field(alias="runId")
    event_id: int = Field(alias="eventId")
    status: RunStatus


class Usage(_Model):
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")
    cached_input_tokens: int = Field(alias="cachedInputTokens")
    #: What the priced model calls cost, in millionths of the server's price table's currency.
    cost_micros: int = Field(default=0, alias="costMicros")


class Fork(_Model):
    """A session forked from another (``POST /sessions/{id}/fork``)."""

    session_id: str = Field(alias="sessionId")
    parent_session_id: str = Field(alias="parentSessionId")
    at_event_id: int = Field(alias="atEventId")
    event_id: int = Field(alias="eventId")


class SessionUsage(_Model):
    """A session's runs and their usage, totalled (``GET /sessions/{id}/usage``)."""

    session_id: str = Field(alias="sessionId")
    runs: int
    usage: Usage


class Run(_Model):
    execution_id: str = Field(alias="executionId")
    session_id: str = Field(alias="sessionId")
    run_id: str = Field(alias="runId")
    status: RunStatus
    answer: str | None = None
    error: str | None = None
    usage: Usage
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")

    @property
    def ended(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

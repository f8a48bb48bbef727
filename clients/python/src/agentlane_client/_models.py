"""The API's JSON as pydantic models (docs/contract.md: "HTTP", "Event")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Event", "Run", "RunAccepted", "RunStatus", "SessionUsage", "Usage"]

RunStatus = Literal["queued", "running", "suspended", "completed", "failed", "cancelled"]
TERMINAL = frozenset({"Completed", "Failed", "Cancelled"})


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

"""Events as they travel inside the services: plain frozen dataclasses, cheap to build and fold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentlane.events import format_timestamp, validate_data


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append; the store assigns ``eventId``, ``seq`` and ``createdAt``."""

    tenant_id: str
    session_id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    execution_id: str | None = None
    idempotency_key: str | None = None
    #: The W3C traceparent to store with it; None: the store uses the append's own span.
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class CheckedEvent(NewEvent):
    """A :class:`NewEvent` whose ``data`` has been validated and normalized already (made only by
    :meth:`of`): the store writes it without validating it a second time."""

    @classmethod
    def of(
        cls,
        tenant_id: str,
        session_id: str,
        event_type: str,
        data: dict[str, Any],
        *,
        execution_id: str | None = None,
    ) -> CheckedEvent:
        """Validate ``data`` now (raises InvalidEvent), so the error meets the code that made it."""
        return cls(
            tenant_id, session_id, event_type, validate_data(event_type, data), execution_id
        )


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event read back from ``agent_events``."""

    event_id: int
    seq: int
    tenant_id: str
    session_id: str
    execution_id: str | None
    type: str
    data: dict[str, Any]
    created_at: datetime
    #: The W3C traceparent of the span that appended it (metadata: outside the hash chain).
    trace: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The Event JSON of docs/contract.md."""
        body = {
            "eventId": self.event_id,
            "seq": self.seq,
            "tenantId": self.tenant_id,
            "sessionId": self.session_id,
            "executionId": self.execution_id,
            "type": self.type,
            "data": self.data,
            "createdAt": format_timestamp(self.created_at),
        }
        if self.trace is not None:
            body["traceparent"] = self.trace
        return body


@dataclass(frozen=True, slots=True, order=True)
class Checkpoint:
    """A position in the global tail: everything at or before ``(tx_id, event_id)`` is consumed."""

    tx_id: int = 0
    event_id: int = 0


@dataclass(frozen=True, slots=True)
class TailedEvent:
    """An event from the global tail, with the position to checkpoint after handling it."""

    event: StoredEvent
    position: Checkpoint

"""A stored event as ``replay verify`` reads it: a named tuple, built per row at a fraction of a
frozen dataclass's cost; it has :class:`~agentlane.records.StoredEvent`'s fields, in its order."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from agentlane.records import StoredEvent


class EventRow(NamedTuple):
    event_id: int
    seq: int
    tenant_id: str
    session_id: str
    execution_id: str | None
    type: str
    data: Any
    created_at: datetime
    #: Not read by verify: a trace context is outside the hash chain.
    trace: str | None = None

    def stored(self) -> StoredEvent:
        return StoredEvent(*self)

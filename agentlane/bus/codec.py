"""The Event JSON on the wire (docs/contract.md) to and from :class:`StoredEvent`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from agentlane.errors import InvalidEvent
from agentlane.records import StoredEvent

#: Attributes of every Pub/Sub message (docs/contract.md).
ATTRIBUTE_NAMES = ("eventId", "seq", "tenantId", "sessionId", "type")


def ordering_key(event: StoredEvent) -> str:
    """``tenantId/sessionId``: Pub/Sub keeps one session's events in publish order."""
    return f"{event.tenant_id}/{event.session_id}"


def attributes(event: StoredEvent) -> dict[str, str]:
    return {
        "eventId": str(event.event_id),
        "seq": str(event.seq),
        "tenantId": event.tenant_id,
        "sessionId": event.session_id,
        "type": event.type,
    }


def encode(event: StoredEvent) -> bytes:
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes | str) -> StoredEvent:
    """Parse the Event JSON; InvalidEvent for anything that is not one."""
    try:
        body: Any = json.loads(data)
        return StoredEvent(
            event_id=int(body["eventId"]),
            seq=int(body["seq"]),
            tenant_id=str(body["tenantId"]),
            session_id=str(body["sessionId"]),
            execution_id=body.get("executionId"),
            type=str(body["type"]),
            data=dict(body["data"]),
            created_at=datetime.fromisoformat(body["createdAt"]),
            trace=body.get("traceparent"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidEvent(f"not an Event JSON message: {exc}") from None

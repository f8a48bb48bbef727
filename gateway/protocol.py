"""The WebSocket frames of docs/contract.md: inbound ones validated by pydantic, outbound ones built
as JSON text once (an event's frame is shared by every socket it fans out to)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from agentlane.commands import IDENTIFIER_PATTERN
from agentlane.events import describe_validation_error
from agentlane.json_input import ClientJsonError, loads_client_json
from agentlane.records import StoredEvent

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011
CLOSE_TOO_BIG = 1009
#: RFC 6455 "Try Again Later": the tenant holds its share of this gateway's sockets.
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_UNAUTHORIZED = 4001
CLOSE_SLOW_CONSUMER = 4008

#: Inbound frames larger than this close the socket with 1009.
MAX_FRAME_BYTES = 64 * 1024


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AskFrame(_Frame):
    type: Literal["ask"]
    run_id: str = Field(alias="runId", pattern=IDENTIFIER_PATTERN)
    message: str = Field(min_length=1, max_length=60_000)
    on_conflict: Literal["enqueue", "reject", "interrupt"] = Field(
        default="enqueue", alias="onConflict"
    )


class CancelFrame(_Frame):
    type: Literal["cancel"]
    execution_id: str = Field(alias="executionId", min_length=1, max_length=128)


class ApproveFrame(_Frame):
    type: Literal["approve"]
    execution_id: str = Field(alias="executionId", min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    payload: JsonValue = None


class PongFrame(_Frame):
    model_config = ConfigDict(extra="ignore", frozen=True)
    type: Literal["pong"]


InboundFrame = Annotated[
    AskFrame | CancelFrame | ApproveFrame | PongFrame, Field(discriminator="type")
]
_INBOUND: TypeAdapter[AskFrame | CancelFrame | ApproveFrame | PongFrame] = TypeAdapter(
    InboundFrame
)


class BadFrame(Exception):
    """An inbound frame we cannot act on; answered with an ``error`` frame."""

    def __init__(self, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


def parse_inbound(text: str) -> AskFrame | CancelFrame | ApproveFrame | PongFrame:
    """Parse one client frame or raise BadFrame with a code the client can branch on."""
    try:
        raw = loads_client_json(text, where="frame")
    except ClientJsonError as exc:
        if exc.not_text:
            raise BadFrame("invalid_frame", str(exc)) from None
        raise BadFrame("invalid_json", f"frame is {exc}"[:300]) from None
    if not isinstance(raw, dict):
        raise BadFrame("invalid_frame", "frame must be a JSON object")
    kind = raw.get("type")
    if kind not in ("ask", "cancel", "approve", "pong"):
        raise BadFrame("unknown_type", f"unknown frame type {kind!r}"[:200])
    try:
        return _INBOUND.validate_python(raw)
    except ValidationError as exc:
        raise BadFrame("invalid_frame", describe_validation_error(exc)) from None


def _dump(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def event_frame(event: StoredEvent) -> str:
    return _dump({"type": "event", "event": event.to_json()})


def ready_frame(last_event_id: int) -> str:
    return _dump({"type": "ready", "lastEventId": last_event_id})


def ping_frame(t: float) -> str:
    return _dump({"type": "ping", "t": t})


def error_frame(code: str, message: str, retry_after_s: float | None = None) -> str:
    """An ``error`` frame; ``retryAfter`` (whole seconds, as HTTP's Retry-After) when retrying
    later can succeed (a refused command: the socket stays open)."""
    frame: dict[str, object] = {"type": "error", "code": code, "message": message}
    if retry_after_s is not None:
        frame["retryAfter"] = max(1, math.ceil(retry_after_s))
    return _dump(frame)


"""The WebSocket frames of docs/contract.md: inbound ones validated by pydantic, outbound ones built
as JSON text once (an event's frame is shared by every socket it fans out to). Both directions are
pydantic models too, whose JSON Schema the gateway publishes (``GET /ws-schema.json``,
:func:`frames_json_schema`) and the TypeScript client's frame types are generated from."""

from __future__ import annotations

import copy
import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError
from pydantic.json_schema import SkipJsonSchema

from agentlane.commands import IDENTIFIER_PATTERN
from agentlane.events import MAX_WAIT_SECONDS, Event, RunOptions, describe_validation_error
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
    """Start a run in the socket's session (the same as ``POST /agents/{sessionId}/runs``)."""

    type: Literal["ask"]
    run_id: str = Field(alias="runId", pattern=IDENTIFIER_PATTERN)
    message: str = Field(min_length=1, max_length=60_000)
    on_conflict: Literal["enqueue", "reject", "interrupt"] = Field(
        default="enqueue", alias="onConflict"
    )
    approval_timeout_s: float | None = Field(
        default=None, alias="approvalTimeoutSeconds", gt=0, le=MAX_WAIT_SECONDS
    )
    options: RunOptions | None = None


class CancelFrame(_Frame):
    """Ask a run to stop."""

    type: Literal["cancel"]
    execution_id: str = Field(alias="executionId", min_length=1, max_length=128)


class ApproveFrame(_Frame):
    """Deliver the signal ``name`` (``approve:<callId>``) with ``payload`` to a run."""

    type: Literal["approve"]
    execution_id: str = Field(alias="executionId", min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    payload: JsonValue = None


class PongFrame(_Frame):
    """The answer to a ``ping`` (within 10 s)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    type: Literal["pong"]


InboundFrame = Annotated[
    AskFrame | CancelFrame | ApproveFrame | PongFrame, Field(discriminator="type")
]
_INBOUND: TypeAdapter[AskFrame | CancelFrame | ApproveFrame | PongFrame] = TypeAdapter(
    InboundFrame
)


class EventFrame(_Frame):
    """One event of the session (the Event JSON), in ``seq`` order, each once."""

    type: Literal["event"]
    event: Event


class ReadyFrame(_Frame):
    """Sent once per socket, when the history up to now has been sent."""

    type: Literal["ready"]
    last_event_id: int = Field(
        alias="lastEventId", ge=0,
        description="The last eventId sent on this socket, or the one the client gave.",
    )


class PingFrame(_Frame):
    """Every 15 s; answer with ``pong`` within 10 s."""

    type: Literal["ping"]
    t: float = Field(description="The server's clock, unix seconds.")


class ErrorFrame(_Frame):
    """A bad frame or a refused command; the socket stays open unless a close follows."""

    type: Literal["error"]
    code: str = Field(
        description="invalid_json, invalid_frame, unknown_type, binary_frame, run_not_found, "
        "run_conflict, run_finished, invalid_command, unavailable, command_failed, "
        "rate_limited, too_many_active_runs, too_many_sockets, invalid_session_id, "
        "invalid_last_event_id"
    )
    message: str
    # Absent, never null, when retrying later would not help.
    retry_after: Annotated[int, Field(ge=1)] | SkipJsonSchema[None] = Field(
        default=None, alias="retryAfter",
        description="Whole seconds after which the same command may succeed.",
    )


OutboundFrame = Annotated[
    EventFrame | ReadyFrame | PingFrame | ErrorFrame, Field(discriminator="type")
]
_OUTBOUND: TypeAdapter[EventFrame | ReadyFrame | PingFrame | ErrorFrame] = TypeAdapter(
    OutboundFrame
)


def parse_outbound(text: str) -> EventFrame | ReadyFrame | PingFrame | ErrorFrame:
    """Validate a frame the server sends against its model (the tests' check that the frames
    built by hand below are the frames the schema publishes)."""
    return _OUTBOUND.validate_json(text)


def frames_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the WebSocket frames, as ``GET /ws-schema.json`` serves
    it: ``$defs`` holds ``ServerFrame`` (what the gateway sends) and ``ClientFrame`` (what it
    accepts), each a union discriminated by ``type``, and every model they use (the events with
    their typed ``data``); the document itself is either."""
    keyed, top = TypeAdapter.json_schemas(
        [("ServerFrame", "validation", _OUTBOUND), ("ClientFrame", "validation", _INBOUND)],
        ref_template="#/$defs/{model}",
    )
    defs = copy.deepcopy(top.get("$defs", {}))
    # The event union, named: one ``Event`` type for generators rather than one inline union.
    frame = defs["EventFrame"]["properties"]
    defs["Event"] = {
        "title": "Event",
        "description": "The Event JSON (docs/contract.md, \"Event\"), discriminated by type.",
        **frame["event"],
    }
    frame["event"] = {"$ref": "#/$defs/Event"}
    descriptions = {
        "ServerFrame": "A frame the gateway sends, one JSON object per text frame.",
        "ClientFrame": "A frame a client sends; a bad one is answered with an error frame.",
    }
    for name, description in descriptions.items():
        defs[name] = {"title": name, "description": description, **keyed[(name, "validation")]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://agentlane.dev/schemas/ws-frames.json",
        "title": "AgentlaneWebSocketFrame",
        "description": "The frames of GET /ws/{sessionId} (docs/contract.md, \"WebSocket\").",
        "anyOf": [{"$ref": "#/$defs/ServerFrame"}, {"$ref": "#/$defs/ClientFrame"}],
        "$defs": dict(sorted(defs.items())),
    }


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


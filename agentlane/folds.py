"""Pure folds: what a sequence of events means, with no I/O.

``apply(state, event) -> state``. The projector's read models, the command service's fallback read
of a run, and ``agentlane replay`` all use these, so there is one definition of an event's meaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from agentlane.records import StoredEvent

_TERMINAL_STATUS = {"Completed": "completed", "Failed": "failed", "Cancelled": "cancelled"}


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    def plus(self, data: dict[str, Any]) -> Usage:
        return Usage(
            self.input_tokens + int(data.get("inputTokens", 0)),
            self.output_tokens + int(data.get("outputTokens", 0)),
            self.cached_input_tokens + int(data.get("cachedInputTokens", 0)),
        )

    def to_json(self) -> dict[str, int]:
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cachedInputTokens": self.cached_input_tokens,
        }


@dataclass(frozen=True, slots=True)
class RunState:
    """One run (execution) as its events describe it: the body of ``GET /runs/{id}``."""

    execution_id: str
    tenant_id: str
    session_id: str
    run_id: str
    status: str
    created_at: datetime
    updated_at: datetime
    message: str = ""
    answer: str | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    last_event_id: int = 0
    last_seq: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "executionId": self.execution_id,
            "sessionId": self.session_id,
            "runId": self.run_id,
            "status": self.status,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
            "usage": self.usage.to_json(),
        }
        if self.answer is not None:
            body["answer"] = self.answer
        if self.error is not None:
            body["error"] = self.error
        return body


def apply_run(state: RunState | None, event: StoredEvent) -> RunState | None:
    """Fold one event of a run's stream into its state (``None`` before ``RunAccepted``)."""
    if event.type == "RunAccepted":
        if state is not None:
            return state
        return RunState(
            execution_id=event.execution_id or "",
            tenant_id=event.tenant_id,
            session_id=event.session_id,
            run_id=str(event.data.get("runId", "")),
            status="queued",
            created_at=event.created_at,
            updated_at=event.created_at,
            message=str(event.data.get("message", "")),
            last_event_id=event.event_id,
            last_seq=event.seq,
        )
    if state is None:
        return None
    moved = replace(state, updated_at=event.created_at, last_event_id=event.event_id,
                    last_seq=event.seq)
    if state.status in ("completed", "failed", "cancelled"):
        return moved
    match event.type:
        case "RunStarted" | "Resumed":
            return replace(moved, status="running")
        case "Suspended":
            return replace(moved, status="suspended")
        case "SignalReceived" if state.status == "suspended":
            return moved
        case "Usage":
            return replace(moved, usage=state.usage.plus(event.data))
        case "Completed":
            return replace(moved, status="completed", answer=str(event.data.get("answer", "")))
        case "Failed":
            return replace(moved, status="failed", error=str(event.data.get("reason", "")))
        case "Cancelled":
            return replace(moved, status="cancelled", error=event.data.get("reason"))
        case _:
            if state.status == "queued" and event.type in ("Token", "ToolCall", "StepCompleted"):
                return replace(moved, status="running")
            return moved


def fold_run(events: list[StoredEvent]) -> RunState | None:
    state: RunState | None = None
    for event in events:
        state = apply_run(state, event)
    return state


def status_of_terminal(event_type: str) -> str | None:
    return _TERMINAL_STATUS.get(event_type)


def _iso(moment: datetime) -> str:
    from agentlane.events import format_timestamp

    return format_timestamp(moment)

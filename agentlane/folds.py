"""Pure folds: what a sequence of events means, with no I/O.

``apply(state, event) -> state``. The projector's read models, the command service's fallback read
of a run, and ``agentlane replay`` all use these, so there is one definition of an event's meaning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

from agentlane.events import TERMINAL_STATUS, format_timestamp
from agentlane.records import StoredEvent


class EventFields(Protocol):
    """What a fold reads of an event: a :class:`StoredEvent`, or a lighter row with its fields."""

    @property
    def event_id(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def execution_id(self) -> str | None: ...
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> Any: ...
    @property
    def created_at(self) -> datetime: ...


_ENDED = frozenset(TERMINAL_STATUS.values())
_RUNNING = frozenset({"RunStarted", "Resumed"})
#: Work that shows a queued run is running even before its ``RunStarted`` is read.
_FIRST_WORK = frozenset({"Token", "ToolCall", "StepCompleted"})


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    #: What the priced calls cost, in millionths of the price table's currency (unpriced: 0).
    cost_micros: int = 0

    def plus(self, data: dict[str, Any]) -> Usage:
        return Usage(
            self.input_tokens + int(data.get("inputTokens", 0)),
            self.output_tokens + int(data.get("outputTokens", 0)),
            self.cached_input_tokens + int(data.get("cachedInputTokens", 0)),
            self.cost_micros + int(data.get("costMicros") or 0),
        )

    def to_json(self) -> dict[str, int]:
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cachedInputTokens": self.cached_input_tokens,
            "costMicros": self.cost_micros,
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
    #: The blob references of a message or an answer kept in the blob store (``agentlane.blobs``).
    message_ref: dict[str, Any] | None = None
    answer_ref: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "executionId": self.execution_id,
            "sessionId": self.session_id,
            "runId": self.run_id,
            "status": self.status,
            "createdAt": format_timestamp(self.created_at),
            "updatedAt": format_timestamp(self.updated_at),
            "usage": self.usage.to_json(),
        }
        if self.answer is not None:
            body["answer"] = self.answer
        if self.answer_ref is not None:
            body["answerRef"] = self.answer_ref
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
            message=str(event.data.get("message") or ""),
            message_ref=event.data.get("messageRef"),
            last_event_id=event.event_id,
            last_seq=event.seq,
        )
    if state is None:
        return None
    moved = replace(
        state, updated_at=event.created_at, last_event_id=event.event_id, last_seq=event.seq
    )
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
            return replace(
                moved, status="completed", answer=_answer(event.data),
                answer_ref=event.data.get("answerRef"),
            )
        case "Failed":
            return replace(moved, status="failed", error=str(event.data.get("reason", "")))
        case "Cancelled":
            return replace(moved, status="cancelled", error=event.data.get("reason"))
        case _:
            if state.status == "queued" and event.type in ("Token", "ToolCall", "StepCompleted"):
                return replace(moved, status="running")
            return moved


def _answer(data: dict[str, Any]) -> str | None:
    """A ``Completed``'s answer: None when its blob holds it (``answerRef``)."""
    answer = data.get("answer")
    return None if answer is None and "answerRef" in data else str(answer or "")


def fold_run(events: Iterable[StoredEvent]) -> RunState | None:
    fold = RunFold()
    for event in events:
        fold.feed(event)
    return fold.state()


class RunFold:
    """:func:`apply_run` over a whole stream without a new :class:`RunState` per event.

    ``feed`` the run's events in order; ``state()`` is what folding them with ``apply_run`` gives
    (``apply_run`` stays the definition; a property test holds the two equal). Replay folds a
    million events, and most events move nothing but the run's position.
    """

    __slots__ = (
        "_accepted",
        "_answer",
        "_answer_ref",
        "_cached",
        "_cost",
        "_error",
        "_input",
        "_last",
        "_output",
        "_status",
    )

    def __init__(self) -> None:
        self._accepted: EventFields | None = None
        self._last: EventFields | None = None
        self._status = "queued"
        self._answer: str | None = None
        self._answer_ref: dict[str, Any] | None = None
        self._error: str | None = None
        self._input = 0
        self._output = 0
        self._cached = 0
        self._cost = 0

    @classmethod
    def resume(cls, state: RunState | None) -> RunFold:
        """A fold that continues from ``state`` (what earlier events folded to): feeding it the
        later events gives what ``apply_run`` over all of them gives. The events it starts from
        are stand-ins built from the state: only the fields :meth:`state` reads are real."""
        fold = cls()
        if state is None:
            return fold
        fold._accepted = StoredEvent(
            0, 0, state.tenant_id, state.session_id, state.execution_id, "RunAccepted",
            {"runId": state.run_id, "message": state.message, "messageRef": state.message_ref},
            state.created_at,
        )
        fold._last = StoredEvent(
            state.last_event_id, state.last_seq, state.tenant_id, state.session_id,
            state.execution_id, "", {}, state.updated_at,
        )
        fold._status = state.status
        fold._answer, fold._answer_ref, fold._error = state.answer, state.answer_ref, state.error
        usage = state.usage
        fold._input, fold._output, fold._cached, fold._cost = (
            usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.cost_micros
        )
        return fold

    def feed(self, event: EventFields) -> None:
        kind = event.type
        if self._accepted is None:
            if kind == "RunAccepted":
                self._accepted = self._last = event
            return
        if kind == "RunAccepted":
            return
        self._last = event
        status = self._status
        if status in _ENDED:
            return
        if kind in _RUNNING:
            self._status = "running"
        elif kind == "Suspended":
            self._status = "suspended"
        elif kind == "Usage":
            data = event.data
            self._input += int(data.get("inputTokens", 0))
            self._output += int(data.get("outputTokens", 0))
            self._cached += int(data.get("cachedInputTokens", 0))
            self._cost += int(data.get("costMicros") or 0)
        elif kind == "Completed":
            self._status = "completed"
            self._answer = _answer(event.data)
            self._answer_ref = event.data.get("answerRef")
        elif kind == "Failed":
            self._status = "failed"
            self._error = str(event.data.get("reason", ""))
        elif kind == "Cancelled":
            self._status = "cancelled"
            self._error = event.data.get("reason")
        elif status == "queued" and kind in _FIRST_WORK:
            self._status = "running"

    def state(self) -> RunState | None:
        accepted, last = self._accepted, self._last
        if accepted is None or last is None:
            return None
        return RunState(
            execution_id=accepted.execution_id or "",
            tenant_id=accepted.tenant_id,
            session_id=accepted.session_id,
            run_id=str(accepted.data.get("runId", "")),
            status=self._status,
            created_at=accepted.created_at,
            updated_at=last.created_at,
            message=str(accepted.data.get("message") or ""),
            message_ref=accepted.data.get("messageRef"),
            answer=self._answer,
            answer_ref=self._answer_ref,
            error=self._error,
            usage=Usage(self._input, self._output, self._cached, self._cost),
            last_event_id=last.event_id,
            last_seq=last.seq,
        )


@dataclass(frozen=True, slots=True)
class SessionState:
    """One session (stream) as its events describe it: its runs and its last event."""

    tenant_id: str
    session_id: str
    created_at: datetime
    last_event_at: datetime
    last_event_id: int
    last_seq: int
    last_event_type: str
    run_count: int = 0
    last_execution_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "sessionId": self.session_id,
            "runCount": self.run_count,
            "lastExecutionId": self.last_execution_id,
            "lastEventId": self.last_event_id,
            "lastSeq": self.last_seq,
            "lastEventType": self.last_event_type,
            "createdAt": format_timestamp(self.created_at),
            "lastEventAt": format_timestamp(self.last_event_at),
        }


def apply_session(state: SessionState | None, event: StoredEvent) -> SessionState:
    """Fold one event of a session's stream (in ``seq`` order) into the session's state."""
    accepted = event.type == "RunAccepted"
    if state is None:
        return SessionState(
            tenant_id=event.tenant_id,
            session_id=event.session_id,
            created_at=event.created_at,
            last_event_at=event.created_at,
            last_event_id=event.event_id,
            last_seq=event.seq,
            last_event_type=event.type,
            run_count=1 if accepted else 0,
            last_execution_id=event.execution_id if accepted else None,
        )
    return replace(
        state,
        last_event_at=event.created_at,
        last_event_id=event.event_id,
        last_seq=event.seq,
        last_event_type=event.type,
        run_count=state.run_count + 1 if accepted else state.run_count,
        last_execution_id=event.execution_id if accepted else state.last_execution_id,
    )


def fold_session(events: Iterable[StoredEvent]) -> SessionState | None:
    fold = SessionFold()
    for event in events:
        fold.feed(event)
    return fold.state()


class SessionFold:
    """:func:`apply_session` over a whole stream without a new :class:`SessionState` per event
    (``apply_session`` stays the definition; a property test holds the two equal)."""

    __slots__ = ("_first", "_last", "_last_execution_id", "_run_count")

    def __init__(self) -> None:
        self._first: EventFields | None = None
        self._last: EventFields | None = None
        self._run_count = 0
        self._last_execution_id: str | None = None

    @classmethod
    def resume(cls, state: SessionState | None) -> SessionFold:
        """A fold that continues from ``state``, as :meth:`RunFold.resume`."""
        fold = cls()
        if state is None:
            return fold
        fold._first = StoredEvent(
            0, 0, state.tenant_id, state.session_id, None, "", {}, state.created_at
        )
        fold._last = StoredEvent(
            state.last_event_id, state.last_seq, state.tenant_id, state.session_id, None,
            state.last_event_type, {}, state.last_event_at,
        )
        fold._run_count = state.run_count
        fold._last_execution_id = state.last_execution_id
        return fold

    def feed(self, event: EventFields) -> None:
        if self._first is None:
            self._first = event
        self._last = event
        if event.type == "RunAccepted":
            self._run_count += 1
            self._last_execution_id = event.execution_id

    def state(self) -> SessionState | None:
        first, last = self._first, self._last
        if first is None or last is None:
            return None
        return SessionState(
            tenant_id=first.tenant_id,
            session_id=first.session_id,
            created_at=first.created_at,
            last_event_at=last.created_at,
            last_event_id=last.event_id,
            last_seq=last.seq,
            last_event_type=last.type,
            run_count=self._run_count,
            last_execution_id=self._last_execution_id,
        )


@dataclass(frozen=True, slots=True, order=True)
class UsageKey:
    """Usage is totalled per tenant, model and UTC day of the ``Usage`` event."""

    tenant_id: str
    model: str
    day: date


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_micros: int = 0

    def plus(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cost_micros + other.cost_micros,
        )

    def to_json(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cachedInputTokens": self.cached_input_tokens,
            "costMicros": self.cost_micros,
        }


def usage_of(event: EventFields) -> tuple[UsageKey, UsageTotals] | None:
    """What a ``Usage`` event adds, and to which key; ``None`` for every other event."""
    if event.type != "Usage":
        return None
    data = event.data
    day = event.created_at.astimezone(UTC).date()
    key = UsageKey(event.tenant_id, str(data.get("model", "")), day)
    return key, UsageTotals(
        1,
        int(data.get("inputTokens", 0)),
        int(data.get("outputTokens", 0)),
        int(data.get("cachedInputTokens", 0)),
        int(data.get("costMicros") or 0),
    )


def apply_usage(state: UsageTotals | None, event: StoredEvent) -> UsageTotals | None:
    """Fold one event into the totals of its key (the caller groups events by ``usage_of`` key)."""
    found = usage_of(event)
    if found is None:
        return state
    return (state or UsageTotals()).plus(found[1])


def fold_usage(events: Iterable[StoredEvent]) -> dict[UsageKey, UsageTotals]:
    """Usage per tenant, model and day over any events (order does not matter)."""
    totals: dict[UsageKey, UsageTotals] = {}
    for event in events:
        found = usage_of(event)
        if found is not None:
            key, delta = found
            totals[key] = totals.get(key, UsageTotals()).plus(delta)
    return totals


"""A run's journal: its events folded into what replay needs, step by step.

Each ``ctx`` operation of a workflow takes the next step number. The journal remembers, per step,
what the code asked for (an activity's name, ``sleep``, ``signal``) and how far it got (failed
attempts, a scheduled timer, a suspension, a completion), plus the run-level facts a replay needs:
signals delivered, a cancel request, how many workflow emits were already written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentlane.events import TERMINAL_TYPES
from agentlane.records import StoredEvent

#: Written by the engine or by commands; a workflow may not ``ctx.emit`` them.
ENGINE_TYPES: frozenset[str] = frozenset(
    {
        "RunAccepted", "RunStarted", "SignalReceived", "CancelRequested", "Suspended", "Resumed",
        "StepCompleted", "StepFailed", "TimerScheduled", "TimerFired", "ToolResult",
        *TERMINAL_TYPES,
    }
)
#: Written by activities while they run (streamed tokens) or with their completion (usage).
ACTIVITY_TYPES: frozenset[str] = frozenset({"Token", "Usage"})
#: Commands that change what a run must do next.
COMMAND_TYPES: frozenset[str] = frozenset({"SignalReceived", "CancelRequested"})
#: Events that complete a step (one per step, enforced by a unique index: ddl/0015).
COMPLETION_TYPES: frozenset[str] = frozenset({"StepCompleted", "ToolResult", "TimerFired"})

SLEEP = "sleep"
SIGNAL_PREFIX = "signal:"
TOOL_PREFIX = "tool:"


@dataclass(slots=True)
class StepRecord:
    """What the journal holds for one step."""

    name: str
    failures: list[dict[str, Any]] = field(default_factory=list)
    completion: StoredEvent | None = None
    fire_at: datetime | None = None
    suspended: bool = False

    @property
    def kind(self) -> str:
        if self.name == SLEEP:
            return SLEEP
        if self.name.startswith(SIGNAL_PREFIX):
            return SIGNAL_PREFIX
        return "activity"


@dataclass(frozen=True, slots=True)
class Signal:
    """A delivered signal (``SignalReceived``)."""

    event_id: int
    name: str
    payload: Any


@dataclass(slots=True)
class Journal:
    accepted: StoredEvent
    started: dict[str, Any] | None = None
    steps: dict[int, StepRecord] = field(default_factory=dict)
    signals: list[Signal] = field(default_factory=list)
    consumed: set[int] = field(default_factory=set)
    cancel_reason: str | None = None
    cancel_requested: bool = False
    emitted: int = 0
    # The last attempt of each step that streamed Token events: an attempt cut short by a crash
    # left no StepFailed, but its tokens count it, so the re-run streams as the next attempt.
    streamed: dict[int, int] = field(default_factory=dict)
    terminal: StoredEvent | None = None
    last_seq: int = 0

    @classmethod
    def from_events(cls, events: list[StoredEvent]) -> Journal:
        if not events or events[0].type != "RunAccepted":
            raise ValueError("a run's journal starts with RunAccepted")
        journal = cls(accepted=events[0])
        journal.extend(events)
        return journal

    def extend(self, events: list[StoredEvent]) -> None:
        """Fold more of the run's events (in ``seq`` order) into the journal."""
        for event in events:
            if event.seq <= self.last_seq:
                continue
            self.last_seq = event.seq
            self._apply(event)

    def _apply(self, event: StoredEvent) -> None:
        data = event.data
        match event.type:
            case "RunStarted":
                self.started = data
            case "StepCompleted":
                record = self._step(data["step"], data["name"])
                record.name = data["name"]
                record.completion = event
                if record.kind == SIGNAL_PREFIX and isinstance(data.get("result"), dict):
                    consumed = data["result"].get("eventId")
                    if isinstance(consumed, int):
                        self.consumed.add(consumed)
            case "ToolResult":
                self._step(data["step"], TOOL_PREFIX + data["name"]).completion = event
            case "StepFailed":
                self._step(data["step"], data["name"]).failures.append(data)
            case "TimerScheduled":
                self._step(data["step"], SLEEP).fire_at = datetime.fromisoformat(data["fireAt"])
            case "TimerFired":
                self._step(data["step"], SLEEP).completion = event
            case "Suspended" if data.get("step") is not None:
                self._step(data["step"], SIGNAL_PREFIX + str(data.get("name") or "")).suspended = (
                    True
                )
            case "SignalReceived":
                self.signals.append(Signal(event.event_id, data["name"], data.get("payload")))
            case "CancelRequested":
                self.cancel_requested = True
                self.cancel_reason = data.get("reason")
            case "Token" if data.get("step") is not None and data.get("attempt") is not None:
                step, attempt = data["step"], data["attempt"]
                self.streamed[step] = max(attempt, self.streamed.get(step, 0))
            case kind if kind in TERMINAL_TYPES:
                self.terminal = event
            case kind if kind not in ENGINE_TYPES and kind not in ACTIVITY_TYPES:
                self.emitted += 1
            case _:
                pass

    def _step(self, step: int, name: str) -> StepRecord:
        record = self.steps.get(step)
        if record is None:
            record = self.steps[step] = StepRecord(name)
        return record

    def next_signal(self, names: tuple[str, ...]) -> Signal | None:
        """The oldest delivered signal with one of ``names`` no earlier wait consumed."""
        for signal in self.signals:
            if signal.name in names and signal.event_id not in self.consumed:
                return signal
        return None

    @property
    def last_step(self) -> int:
        return max(self.steps, default=-1)

"""A run's journal: its events folded into what replay needs, step by step.

Each ``ctx`` operation of a workflow takes the next step number. The journal remembers, per step,
what the code asked for (an activity's name, ``sleep``, ``signal``) and how far it got (failed
attempts, a scheduled timer, a suspension, a completion), plus the run-level facts a replay needs:
signals delivered, a cancel request, how many workflow emits were already written.

An activity completes with ``StepCompleted``, or with an event type of the workflow's own that a
:class:`Completion` describes (registered with the :class:`~runners.engine.WorkflowRegistry`):
the engine knows nothing of what such an event means beyond what its ``Completion`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentlane.events import COMMAND_TYPES, TERMINAL_TYPES
from agentlane.records import StoredEvent

#: Written by the engine or by commands; a workflow may not ``ctx.emit`` them.
ENGINE_TYPES: frozenset[str] = frozenset(
    {
        "RunAccepted", "RunStarted", "Suspended", "Resumed", "StepCompleted", "StepFailed",
        "TimerScheduled", "TimerFired", "VersionMoved", *COMMAND_TYPES, *TERMINAL_TYPES,
    }
)
#: Written by activities while they run (streamed tokens) or with their completion (usage).
ACTIVITY_TYPES: frozenset[str] = frozenset({"Token", "Usage"})

SLEEP = "sleep"
SIGNAL_PREFIX = "signal:"


@dataclass(frozen=True, slots=True)
class Completion:
    """An event type that completes an activity step with its own data instead of
    ``StepCompleted`` (one per step all the same: ddl/0015 must name it).

    The event's data is ``{"step": n, **result}``; ``activity_name`` tells from that data which
    activity recorded it, so a replay checks the code asks for the same one.
    """

    event_type: str
    activity_name: Callable[[Mapping[str, Any]], str]

    def data(self, step: int, result: Mapping[str, Any]) -> dict[str, Any]:
        return {"step": step, **result}

    @staticmethod
    def result(data: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in data.items() if key != "step"}


@dataclass(slots=True)
class StepRecord:
    """What the journal holds for one step."""

    name: str
    #: Failed attempts as the engine recorded them: these spend the retry budget.
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: Attempts cut short by the loss of their runner (``StepFailed`` with ``abandoned``): void,
    #: and free of the budget.
    abandoned: list[int] = field(default_factory=list)
    completion: StoredEvent | None = None
    fire_at: datetime | None = None
    suspended: bool = False
    #: The ``eventId`` of the ``Suspended`` this wait wrote (signals after it are fresh).
    suspended_at: int | None = None
    #: When the wait ends without a signal (its ``Suspended``'s ``deadline``).
    deadline: datetime | None = None

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
    #: Completion kinds of the workflow's own, by event type.
    completions: Mapping[str, Completion] = field(default_factory=dict)
    started: dict[str, Any] | None = None
    #: The version an operator moved the run to (``VersionMoved``), which replaces the one it
    #: started with.
    moved_to: str | None = None
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
    def from_events(
        cls, events: list[StoredEvent], completions: Mapping[str, Completion] | None = None
    ) -> Journal:
        if not events or events[0].type != "RunAccepted":
            raise ValueError("a run's journal starts with RunAccepted")
        journal = cls(accepted=events[0], completions=completions or {})
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
            case "VersionMoved":
                self.moved_to = data["toVersion"]
            case "StepCompleted":
                record = self._step(data["step"], data["name"])
                record.name = data["name"]
                record.completion = event
                if record.kind == SIGNAL_PREFIX and isinstance(data.get("result"), dict):
                    consumed = data["result"].get("eventId")
                    if isinstance(consumed, int):
                        self.consumed.add(consumed)
            case kind if kind in self.completions:
                name = self.completions[kind].activity_name(data)
                self._step(data["step"], name).completion = event
            case "StepFailed" if data.get("abandoned"):
                self._step(data["step"], data["name"]).abandoned.append(data["attempt"])
            case "StepFailed":
                self._step(data["step"], data["name"]).failures.append(data)
            case "TimerScheduled":
                self._step(data["step"], SLEEP).fire_at = datetime.fromisoformat(data["fireAt"])
            case "TimerFired":
                self._step(data["step"], SLEEP).completion = event
            case "Suspended" if data.get("step") is not None:
                record = self._step(data["step"], SIGNAL_PREFIX + str(data.get("name") or ""))
                record.suspended = True
                record.suspended_at = event.event_id
                if data.get("deadline"):
                    record.deadline = datetime.fromisoformat(data["deadline"])
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

    def next_signal(self, names: tuple[str, ...], *, after: int = 0) -> Signal | None:
        """The oldest delivered signal with one of ``names``, delivered after event ``after``,
        that no earlier wait consumed."""
        for signal in self.signals:
            if (
                signal.name in names
                and signal.event_id > after
                and signal.event_id not in self.consumed
            ):
                return signal
        return None

    def attempt_ended(self, step: int, attempt: int) -> bool:
        """A ``StepFailed`` (abandoned or not) ends ``attempt`` of ``step``."""
        record = self.steps.get(step)
        return record is not None and (
            attempt in record.abandoned or any(f["attempt"] == attempt for f in record.failures)
        )

    @property
    def workflow_version(self) -> tuple[str, str] | None:
        """The workflow and version the run runs with: the one it started with, or the one an
        operator moved it to. None before it started."""
        if self.started is None:
            return None
        return self.started["workflow"], self.moved_to or self.started["version"]

    @property
    def last_step(self) -> int:
        return max(self.steps, default=-1)

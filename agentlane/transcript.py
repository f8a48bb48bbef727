"""What a reader shows of a run: its transcript, folded from its events, clean through crashes.

The rule (docs/contract.md, "Streams"): a step's visible text is the tokens of its latest
attempt that has not failed; a run's transcript is its steps in order, each step's text followed
by its tool calls and their results. A runner that takes over a step cut short by a crash first
appends ``StepFailed`` with ``abandoned`` for the attempt it found, so the partial text goes at
once; an attempt that starts streaming replaces an older one's text even before that
``StepFailed`` arrives (a reader that joined late, or an older log).

:class:`Transcript` folds events one at a time (in ``seq`` order, each once) and returns what
changed, as a client renders it: text appended, a step's text reset, a tool call or result, a
wait, the end. The Python SDK and the TypeScript client implement the same rule, tested against
the same recorded logs (``tests/fixtures/transcripts``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Change",
    "Ended",
    "Reset",
    "TextDelta",
    "ToolCalled",
    "ToolReturned",
    "Transcript",
    "Waiting",
    "transcript_of",
]

# agentlane.events.TERMINAL_STATUS, spelled out: the Python client ships this file as it is, and
# it imports nothing of the server.
_ENDS = {"Completed": "completed", "Failed": "failed", "Cancelled": "cancelled"}


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text appended to ``step``'s visible text."""

    step: int
    text: str


@dataclass(frozen=True, slots=True)
class Reset:
    """``step``'s visible text was dropped: its attempt failed or a newer one began."""

    step: int


@dataclass(frozen=True, slots=True)
class ToolCalled:
    step: int
    call_id: str
    name: str
    arguments: Mapping[str, Any]
    requires_approval: bool


@dataclass(frozen=True, slots=True)
class ToolReturned:
    step: int
    call_id: str
    name: str
    ok: bool
    result: Any
    error: str | None
    #: ``{"sha256", "size"}`` when the result is in the blob store (``result`` is then None):
    #: ``GET /blobs/{sha256}`` gives it.
    result_ref: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """The run waits (``Suspended``): for an approval, a signal or a raised budget."""

    reason: str
    name: str | None
    detail: str | None
    #: When the wait ends by itself (RFC 3339, database time); None: it waits for ever.
    deadline: str | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """The run ended: ``status`` is ``completed``, ``failed`` or ``cancelled``."""

    status: str
    answer: str | None
    reason: str | None
    #: ``{"sha256", "size"}`` when the answer is in the blob store (``answer`` is then None).
    answer_ref: Mapping[str, Any] | None = None


Change = TextDelta | Reset | ToolCalled | ToolReturned | Waiting | Ended


@dataclass(slots=True)
class _Step:
    number: int
    #: The attempt whose tokens show (None: nothing shows).
    attempt: int | None = None
    parts: list[str] = field(default_factory=list)
    #: The next token index expected of the showing attempt (a repeat is ignored).
    next_index: int = 0
    failed: set[int] = field(default_factory=set)
    tools: list[ToolCalled | ToolReturned] = field(default_factory=list)


class Transcript:
    """One run's transcript, folded event by event (module docstring)."""

    def __init__(self) -> None:
        self._steps: dict[int, _Step] = {}
        self.status = "queued"
        self.answer: str | None = None
        self.answer_ref: Mapping[str, Any] | None = None
        self.reason: str | None = None
        self.waiting: Waiting | None = None

    def apply(self, event: Mapping[str, Any]) -> list[Change]:
        """Fold one event (the Event JSON of docs/contract.md); what changed, in order."""
        kind, data = event["type"], event.get("data") or {}
        match kind:
            case "RunStarted" | "Resumed":
                self.status, self.waiting = "running", None
            case "Token":
                return self._token(data)
            case "StepFailed":
                return self._failed(data)
            case "ToolCall":
                called = ToolCalled(
                    data["step"], data["callId"], data["name"], data.get("arguments") or {},
                    bool(data.get("requiresApproval")),
                )
                self._step(called.step).tools.append(called)
                return [called]
            case "ToolResult":
                returned = ToolReturned(
                    data["step"], data["callId"], data["name"], bool(data["ok"]),
                    data.get("result"), data.get("error"), data.get("resultRef"),
                )
                self._step(returned.step).tools.append(returned)
                return [returned]
            case "Suspended":
                self.status = "suspended"
                self.waiting = Waiting(
                    data["reason"], data.get("name"), data.get("detail"), data.get("deadline")
                )
                return [self.waiting]
            case end if end in _ENDS:
                self.status, self.waiting = _ENDS[end], None
                self.answer = data.get("answer")
                self.answer_ref = data.get("answerRef")
                self.reason = data.get("reason")
                return [Ended(self.status, self.answer, self.reason, self.answer_ref)]
        return []

    def _token(self, data: Mapping[str, Any]) -> list[Change]:
        # A token without a step tag (an older writer) belongs to step -1: shown in order first.
        number = data.get("step")
        step = self._step(-1 if number is None else number)
        attempt = data.get("attempt") or 1
        index = data.get("index", step.next_index)
        if attempt in step.failed or (step.attempt is not None and attempt < step.attempt):
            return []  # text of an attempt that already lost
        changes: list[Change] = []
        if attempt != step.attempt:
            # A newer attempt streams: whatever an older one showed goes.
            if step.parts:
                changes.append(Reset(step.number))
            step.attempt, step.parts, step.next_index = attempt, [], 0
        if index < step.next_index:
            return changes  # a repeat
        step.parts.append(data["text"])
        step.next_index = index + 1
        changes.append(TextDelta(step.number, data["text"]))
        return changes

    def _failed(self, data: Mapping[str, Any]) -> list[Change]:
        step = self._step(data["step"])
        step.failed.add(data["attempt"])
        if step.attempt != data["attempt"]:
            return []
        had_text = bool(step.parts)
        step.attempt, step.parts, step.next_index = None, [], 0
        return [Reset(data["step"])] if had_text else []

    def _step(self, number: int) -> _Step:
        step = self._steps.get(number)
        if step is None:
            step = self._steps[number] = _Step(number)
        return step

    def step_texts(self) -> dict[int, str]:
        """Each step's visible text, by step number (steps with none left out)."""
        return {
            number: "".join(step.parts)
            for number, step in sorted(self._steps.items()) if step.parts
        }

    @property
    def text(self) -> str:
        """The run's streamed text: its steps' visible texts in step order."""
        return "".join(self.step_texts().values())

    def to_json(self) -> dict[str, Any]:
        """The transcript as the shared fixtures record it (tests/fixtures/transcripts)."""
        steps = []
        for number, step in sorted(self._steps.items()):
            tools = [_tool_json(tool) for tool in step.tools]
            if step.parts or tools:
                steps.append({"step": number, "text": "".join(step.parts), "tools": tools})
        body = {
            "status": self.status,
            "text": self.text,
            "steps": steps,
            "answer": self.answer,
            "reason": self.reason,
            "waiting": None if self.waiting is None else {
                "reason": self.waiting.reason, "name": self.waiting.name,
                "deadline": self.waiting.deadline,
            },
        }
        if self.answer_ref is not None:
            body["answerRef"] = dict(self.answer_ref)
        return body


def _tool_json(tool: ToolCalled | ToolReturned) -> dict[str, Any]:
    if isinstance(tool, ToolCalled):
        return {"call": tool.name, "callId": tool.call_id, "arguments": dict(tool.arguments),
                "requiresApproval": tool.requires_approval}
    body = {"result": tool.name, "callId": tool.call_id, "ok": tool.ok, "value": tool.result,
            "error": tool.error}
    if tool.result_ref is not None:
        body["valueRef"] = dict(tool.result_ref)
    return body


def transcript_of(events: Iterable[Mapping[str, Any]]) -> Transcript:
    """Fold a run's events (Event JSON, ``seq`` order) into its transcript."""
    transcript = Transcript()
    for event in events:
        transcript.apply(event)
    return transcript

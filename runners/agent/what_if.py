"""What-if: one recorded run's model steps again, against another model, touching nothing.

The run's opening is rebuilt as the agent builds it (the system prompt, the session's history as
it stood when the run was accepted, the run's message). Each model call goes live to the chosen
model; each tool call it asks for is answered with the recorded result of the same call (the same
tool with the same arguments) and never run, so a what-if has no side effects. A call the
recording does not hold is answered with an error the model reads, and reported. Nothing is
written: tokens and usage stay in memory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from agentlane.records import StoredEvent
from runners.agent.model import ModelClient
from runners.agent.workflow import (
    SYSTEM_PROMPT,
    assistant_message,
    history_messages,
    opening_messages,
    tool_message,
)
from runners.engine import StepInfo

#: The most model calls one what-if makes (a model that keeps calling tools is cut off).
MAX_MODEL_CALLS = 16
#: The answer a tool call the recording does not hold gets.
UNRECORDED = "what-if: the recorded run has no result for this call"


@dataclass
class Side:
    """One run as compared: the recorded one, or its what-if."""

    model: str
    answer: str | None = None
    #: ``name(arguments)`` of each tool call, in order.
    tool_calls: list[str] = field(default_factory=list)
    #: Tool calls the what-if asked for that the recording could not answer.
    unrecorded: list[str] = field(default_factory=list)
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    #: None when no call of it was priced.
    cost_micros: int | None = None
    #: The recorded run's time from RunStarted to its end; the what-if's time in model calls.
    seconds: float = 0.0

    def add_usage(self, usage: dict[str, Any]) -> None:
        self.model_calls += 1
        self.input_tokens += int(usage.get("inputTokens", 0))
        self.output_tokens += int(usage.get("outputTokens", 0))
        if usage.get("costMicros") is not None:
            self.cost_micros = (self.cost_micros or 0) + int(usage["costMicros"])

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "answer": self.answer, "toolCalls": self.tool_calls,
            "unrecorded": self.unrecorded, "modelCalls": self.model_calls,
            "inputTokens": self.input_tokens, "outputTokens": self.output_tokens,
            "costMicros": self.cost_micros, "seconds": round(self.seconds, 3),
        }


def call_label(name: str, arguments: Any) -> str:
    """``name(arguments)`` with the arguments in one canonical JSON form, so equal calls match."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            return f"{name}({arguments})"
    return f"{name}({json.dumps(arguments, sort_keys=True, separators=(',', ':'))})"


def recorded_side(run: Sequence[StoredEvent]) -> Side:
    """The recorded run (its events, ``seq`` order) as a :class:`Side`."""
    models = [e.data.get("model", "") for e in run if e.type == "Usage"]
    side = Side(model=", ".join(dict.fromkeys(models)) or "?")
    started = ended = None
    for event in run:
        match event.type:
            case "RunStarted":
                started = event.created_at
            case "Usage":
                side.add_usage(event.data)
            case "ToolCall":
                side.tool_calls.append(call_label(event.data["name"], event.data["arguments"]))
            case "Completed":
                side.answer = str(event.data.get("answer", ""))
                ended = event.created_at
            case "Failed" | "Cancelled":
                ended = event.created_at
    if started is not None and ended is not None:
        side.seconds = (ended - started).total_seconds()
    return side


def recorded_results(run: Sequence[StoredEvent]) -> dict[str, list[dict[str, Any]]]:
    """The run's tool results by ``name(arguments)`` of the call that made each, in order."""
    calls = {e.data["callId"]: e.data for e in run if e.type == "ToolCall"}
    results: dict[str, list[dict[str, Any]]] = {}
    for event in run:
        if event.type == "ToolResult" and event.data.get("callId") in calls:
            call = calls[event.data["callId"]]
            results.setdefault(call_label(call["name"], call["arguments"]), []).append(event.data)
    return results


class _DryStep:
    """What a model client needs of a step, kept in memory: nothing is journaled."""

    def __init__(self, execution_id: str, step: int) -> None:
        self.execution_id = execution_id
        self.step = step
        self.attempt = 1
        self.failures = 0
        self.key = f"what-if:{execution_id}:{step}"

    def stream(self, event_type: str, data: dict[str, Any], *, urgent: bool = True) -> None:
        pass  # the answer comes whole in the call's result

    def after_stream_written(self, callback: Callable[[], None]) -> bool:
        return False  # nothing streamed waits for a commit

    def attach(self, event_type: str, data: dict[str, Any]) -> None:
        pass  # the usage comes with the call's result too


async def what_if(
    run: Sequence[StoredEvent],
    exchanges: list[tuple[str, str]],
    model: ModelClient,
    tool_schemas: list[dict[str, Any]],
    *,
    model_name: str,
    system_prompt: str = SYSTEM_PROMPT,
) -> Side:
    """Run the opening of ``run`` (its events) against ``model``, the session's ``exchanges``
    before it as its history, answering tool calls from the recording."""
    accepted = run[0]
    if accepted.type != "RunAccepted":
        raise ValueError("a run's events start with RunAccepted")
    execution = accepted.execution_id or ""
    recorded = recorded_results(run)
    messages = opening_messages(
        history_messages(exchanges), str(accepted.data.get("message", "")), system=system_prompt
    )
    side = Side(model=model_name)
    for step in range(MAX_MODEL_CALLS):
        dry = _DryStep(execution, step)
        started = time.perf_counter()
        result = await model.complete(cast(StepInfo, dry), messages, tool_schemas)
        side.seconds += time.perf_counter() - started
        side.add_usage(result["usage"])
        if not result["toolCalls"]:
            side.answer = str(result["content"])
            return side
        messages.append(assistant_message(result))
        for call in result["toolCalls"]:
            label = call_label(call["name"], call["arguments"])
            side.tool_calls.append(label)
            answers = recorded.get(label)
            if answers:
                outcome = answers.pop(0)
            else:
                side.unrecorded.append(label)
                outcome = {"ok": False, "error": UNRECORDED}
            messages.append(tool_message(call, outcome))
    return side

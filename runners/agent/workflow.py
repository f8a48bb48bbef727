"""The agent workflow: session history → model (streamed, with tools) → tool steps → answer.

Each model call and each tool call is one journaled step, so a resumed run replays them without
calling anything; a tool that needs approval waits for the signal ``approve:<callId>`` (or
``approve``) until its deadline, if it has one, then takes the tool's default; a run over its
budget of model tokens or model calls waits for the signal ``budget``
(payload ``{"maxTokens": N, "maxAttempts": M}`` raises the limits), up to the server's caps its
``RunAccepted`` records (``capTokens``, ``capAttempts``): a run over its budget at the cap fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from runners.agent.model import ModelClient
from runners.agent.tools import ToolRegistry
from runners.engine import (
    Completion,
    RetryLater,
    RetryPolicy,
    RunInfo,
    Signal,
    StepInfo,
    WorkflowContext,
)

SYSTEM_PROMPT = (
    "You are a helpful assistant. Use the tools you are given when they help; answer concisely."
)
HISTORY_RUNS = 20
#: The error of a tool call whose approval deadline passed with no answer (denied by default).
DEADLINE_DENIAL = "not approved: the approval deadline passed"
#: Activity names of tool steps: ``tool:<tool name>``.
TOOL_PREFIX = "tool:"


def _tool_activity(data: Mapping[str, Any]) -> str:
    return TOOL_PREFIX + str(data["name"])


#: A tool step completes with a ``ToolResult`` event (its data is the tool's answer), not
#: ``StepCompleted``: the contract's event a client renders.
TOOL_RESULT = Completion("ToolResult", activity_name=_tool_activity)


class SessionHistory(Protocol):
    """Where the agent reads a session's earlier exchanges (the event store, or a recording)."""

    async def completed_exchanges(
        self, tenant_id: str, session_id: str, *, before_seq: int, limit: int
    ) -> list[tuple[str, str]]: ...


class BudgetExhausted(Exception):
    """The run used all the model tokens or calls the server allows a run: it fails."""


@dataclass(frozen=True, slots=True)
class Spent:
    """What a run's model calls used so far: tokens, calls, and money (micro-units)."""

    tokens: int = 0
    calls: int = 0
    cost_micros: int = 0

    def plus(self, usage: Mapping[str, Any]) -> Spent:
        return Spent(
            self.tokens + int(usage.get("inputTokens", 0)) + int(usage.get("outputTokens", 0)),
            self.calls + 1,
            self.cost_micros + int(usage.get("costMicros") or 0),
        )


#: (limit field, cap field, ``Spent`` field, the ``budget`` signal's and RunAccepted's key).
_LIMITS = (
    ("max_tokens", "cap_tokens", "tokens", "maxTokens"),
    ("max_calls", "cap_calls", "calls", "maxAttempts"),
    ("max_cost_micros", "cap_cost_micros", "cost_micros", "maxCostMicros"),
)


@dataclass(frozen=True, slots=True)
class Budget:
    max_tokens: int | None = None
    max_calls: int | None = None
    cap_tokens: int | None = None
    cap_calls: int | None = None
    max_cost_micros: int | None = None
    cap_cost_micros: int | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Budget:
        return cls(
            data.get("maxTokens"), data.get("maxAttempts"),
            data.get("capTokens"), data.get("capAttempts"),
            data.get("maxCostMicros"), data.get("capCostMicros"),
        )

    def exceeded(self, spent: Spent) -> bool:
        return any(
            (limit := getattr(self, field)) is not None and getattr(spent, used) >= limit
            for field, _, used, _ in _LIMITS
        )

    def at_cap(self, spent: Spent) -> bool:
        """Over budget where no signal can raise it any more."""
        return any(
            (cap := getattr(self, field)) is not None and getattr(spent, used) >= cap
            for _, field, used, _ in _LIMITS
        )

    def raised(self, payload: Any) -> Budget:
        """The budget a ``budget`` signal asks for, within the caps."""
        if not isinstance(payload, dict):
            return self
        changes = {}
        for field, cap_field, _, key in _LIMITS:
            asked = payload.get(key)
            if isinstance(asked, int) and not isinstance(asked, bool):
                cap = getattr(self, cap_field)
                changes[field] = asked if cap is None else min(asked, cap)
        return replace(self, **changes)

    def at_cap_reason(self, spent: Spent) -> str:
        cost = self.cap_cost_micros is not None
        return (
            f"used {spent.tokens} model tokens and {spent.calls} model calls"
            + (f" costing {spent.cost_micros} micro-units" if cost else "")
            + f": the most the server allows a run ({self.cap_tokens} tokens, "
            f"{self.cap_calls} calls"
            + (f", {self.cap_cost_micros} micro-units)" if cost else ")")
        )

    def describe(self, spent: Spent) -> str:
        text = (
            f"used {spent.tokens} model tokens of {self.max_tokens}, "
            f"{spent.calls} model calls of {self.max_calls}"
        )
        if self.max_cost_micros is not None:
            text += f", {spent.cost_micros} cost micro-units of {self.max_cost_micros}"
        return text


class AgentWorkflow:
    """``run(ctx, payload)`` is the workflow; the instance carries its model, tools and store."""

    def __init__(
        self,
        history: SessionHistory,
        model: ModelClient,
        tools: ToolRegistry,
        *,
        model_retry: RetryPolicy,
        tool_retry: RetryPolicy,
    ) -> None:
        self._history = history
        self.model = model
        self.tools = tools
        self.model_retry = model_retry
        self.tool_retry = tool_retry

    async def run(self, ctx: WorkflowContext, payload: dict[str, Any]) -> dict[str, Any]:
        budget = Budget.of(payload.get("budget") or {})
        timeout_s = payload.get("approvalTimeoutSeconds")
        approval_timeout = timedelta(seconds=timeout_s) if timeout_s else None
        # The run's own choices, recorded in its RunAccepted: every replay makes the same ones.
        options = payload.get("options") or {}
        model = options.get("model")
        allowed = options.get("tools")
        messages = opening_messages(
            await self.history(ctx.run), str(payload.get("message", "")),
            system=options.get("systemPrompt") or SYSTEM_PROMPT,
        )
        schemas = self.tools.schemas()
        if allowed is not None:
            schemas = [s for s in schemas if s["function"]["name"] in allowed]
        offered = {schema["function"]["name"] for schema in schemas}
        spent = Spent()
        while True:
            # Checked before each call, against what the calls so far used and cost.
            while budget.exceeded(spent):
                if budget.at_cap(spent):
                    raise BudgetExhausted(budget.at_cap_reason(spent))
                signal = await ctx.wait_signal(
                    "budget", reason="budget", detail=budget.describe(spent)
                )
                budget = budget.raised(signal.payload)
            result = await ctx.activity(
                "model", self.model.complete, messages, schemas, model, retry=self.model_retry
            )
            spent = spent.plus(result["usage"])
            if not result["toolCalls"]:
                return {"answer": result["content"], "offline": result["offline"]}
            messages.append(assistant_message(result))
            for call in result["toolCalls"]:
                outcome = await self._tool_step(ctx, call, approval_timeout, offered)
                messages.append(tool_message(call, outcome))

    async def _tool_step(
        self,
        ctx: WorkflowContext,
        call: dict[str, Any],
        run_timeout: timedelta | None,
        offered: set[str],
    ) -> dict[str, Any]:
        # A tool the run was not given is unknown to it, whatever the model asks for.
        tool = self.tools.get(call["name"]) if call["name"] in offered else None
        approval = tool is not None and tool.requires_approval
        arguments = _arguments(call["arguments"])
        ctx.emit(
            "ToolCall",
            {
                "step": ctx.next_step + (1 if approval else 0),
                "callId": call["id"],
                "name": call["name"],
                "arguments": arguments if isinstance(arguments, dict) else {},
                "requiresApproval": approval,
            },
        )
        if tool is not None and approval:
            # Only an answer to this call, sent after it was asked, and saying yes, approves:
            # ``approve:<callId>`` (or ``approve`` naming the call in ``callId``) with
            # ``{"approved": true}``. Anything else (no payload, "false", 0, another call) denies.
            # No answer by the deadline: the tool's default.
            signal = await ctx.wait_signal(
                f"approve:{call['id']}",
                "approve",
                reason="approval",
                detail=f"tool {call['name']} needs approval",
                fresh=True,
                timeout=run_timeout or tool.approval_timeout,
            )
            if signal is None and tool.on_approval_timeout == "deny":
                denied: dict[str, Any] = await ctx.activity(
                    TOOL_PREFIX + call["name"], _denied, call, DEADLINE_DENIAL,
                    completion=TOOL_RESULT,
                )
                return denied
            if signal is not None and not _approves(signal, call["id"]):
                denied = await ctx.activity(
                    TOOL_PREFIX + call["name"], _denied, call, "not approved",
                    completion=TOOL_RESULT,
                )
                return denied
        result: dict[str, Any] = await ctx.activity(
            TOOL_PREFIX + call["name"], self._run_tool, call, offered, retry=self.tool_retry,
            completion=TOOL_RESULT,
        )
        return result

    async def _run_tool(
        self, step: StepInfo, call: dict[str, Any], offered: set[str]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {"callId": call["id"], "name": call["name"]}
        tool = self.tools.get(call["name"]) if call["name"] in offered else None
        if tool is None:
            return answer | {"ok": False, "error": f"unknown tool {call['name']!r}"}
        arguments = _arguments(call["arguments"])
        if not isinstance(arguments, dict):
            return answer | {"ok": False, "error": "arguments are not a JSON object"}
        try:
            parsed = tool.arguments.model_validate(arguments)
        except ValidationError as exc:
            return answer | {"ok": False, "error": f"invalid arguments: {exc.errors()[0]['msg']}"}
        try:
            result = await tool.run(step, parsed)
        except RetryLater:
            raise
        except Exception as exc:
            # A tool's own failure is an answer the model can read, not a failed step.
            return answer | {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return answer | {"ok": True, "result": result}

    async def history(self, run: RunInfo) -> list[dict[str, Any]]:
        """The session's earlier exchanges. Runs of a session execute one at a time in order, so
        every earlier run has ended when this one runs and the answer is fixed: replay-safe."""
        if run.accepted_seq <= 1:
            return []  # the session's first event: nothing came before it
        exchanges = await self._history.completed_exchanges(
            run.tenant_id, run.session_id, before_seq=run.accepted_seq, limit=HISTORY_RUNS
        )
        return history_messages(exchanges)


def history_messages(exchanges: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """A session's earlier ``(message, answer)`` exchanges as chat messages."""
    messages: list[dict[str, Any]] = []
    for message, answer in exchanges:
        messages.append({"role": "user", "content": message})
        messages.append({"role": "assistant", "content": answer})
    return messages


def opening_messages(
    history: list[dict[str, Any]], message: str, *, system: str = SYSTEM_PROMPT
) -> list[dict[str, Any]]:
    """What the first model call of a run is sent: the system prompt, the history, the message."""
    return [
        {"role": "system", "content": system},
        *history,
        {"role": "user", "content": message},
    ]


def tool_message(call: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """A tool step's outcome (a ``ToolResult``'s data) as the message the model reads next."""
    content = outcome.get("result") if outcome.get("ok") else {"error": outcome.get("error")}
    return {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(content)}


def _approves(signal: Signal, call_id: str) -> bool:
    payload = signal.payload
    if not isinstance(payload, dict) or payload.get("approved") is not True:
        return False
    return signal.name == f"approve:{call_id}" or payload.get("callId") == call_id


async def _denied(step: StepInfo, call: dict[str, Any], error: str) -> dict[str, Any]:
    return {"callId": call["id"], "name": call["name"], "ok": False, "error": error}


def assistant_message(result: dict[str, Any]) -> dict[str, Any]:
    """A model call's result with tool calls, as the assistant message that asked for them."""
    return {
        "role": "assistant",
        "content": result["content"] or None,
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"] or "{}"},
            }
            for call in result["toolCalls"]
        ],
    }


def _arguments(raw: str) -> Any:
    try:
        return json.loads(raw or "{}")
    except json.JSONDecodeError:
        return None

"""The agent workflow: session history → model (streamed, with tools) → tool steps → answer.

Each model call and each tool call is one journaled step, so a resumed run replays them without
calling anything; a tool that needs approval waits for the signal ``approve:<callId>`` (or
``approve``); a run over its budget of model tokens or model calls waits for the signal ``budget``
(payload ``{"maxTokens": N, "maxAttempts": M}`` raises the limits).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from runners.agent.model import ModelClient
from runners.agent.tools import ToolRegistry
from runners.engine import (
    Completion,
    RetryLater,
    RetryPolicy,
    RunInfo,
    StepInfo,
    WorkflowContext,
)

SYSTEM_PROMPT = (
    "You are a helpful assistant. Use the tools you are given when they help; answer concisely."
)
HISTORY_RUNS = 20
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


@dataclass(frozen=True, slots=True)
class Budget:
    max_tokens: int | None
    max_calls: int | None

    def exceeded(self, tokens: int, calls: int) -> bool:
        return (self.max_tokens is not None and tokens >= self.max_tokens) or (
            self.max_calls is not None and calls >= self.max_calls
        )

    def raised(self, payload: Any) -> Budget:
        if not isinstance(payload, dict):
            return self
        tokens, calls = payload.get("maxTokens"), payload.get("maxAttempts")
        return Budget(
            int(tokens) if isinstance(tokens, int) else self.max_tokens,
            int(calls) if isinstance(calls, int) else self.max_calls,
        )


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
        limits = payload.get("budget") or {}
        budget = Budget(limits.get("maxTokens"), limits.get("maxAttempts"))
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            *await self.history(ctx.run),
            {"role": "user", "content": str(payload.get("message", ""))},
        ]
        schemas = self.tools.schemas()
        tokens = calls = 0
        while True:
            while budget.exceeded(tokens, calls):
                signal = await ctx.wait_signal(
                    "budget",
                    reason="budget",
                    detail=f"used {tokens} model tokens of {budget.max_tokens}, "
                    f"{calls} model calls of {budget.max_calls}",
                )
                budget = budget.raised(signal.payload)
            result = await ctx.activity(
                "model", self.model.complete, messages, schemas, retry=self.model_retry
            )
            calls += 1
            usage = result["usage"]
            tokens += int(usage.get("inputTokens", 0)) + int(usage.get("outputTokens", 0))
            if not result["toolCalls"]:
                return {"answer": result["content"], "offline": result["offline"]}
            messages.append(_assistant_message(result))
            for call in result["toolCalls"]:
                outcome = await self._tool_step(ctx, call)
                content = outcome["result"] if outcome["ok"] else {"error": outcome.get("error")}
                messages.append(
                    {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(content)}
                )

    async def _tool_step(self, ctx: WorkflowContext, call: dict[str, Any]) -> dict[str, Any]:
        tool = self.tools.get(call["name"])
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
        if approval:
            signal = await ctx.wait_signal(
                f"approve:{call['id']}",
                "approve",
                reason="approval",
                detail=f"tool {call['name']} needs approval",
            )
            if isinstance(signal.payload, dict) and signal.payload.get("approved") is False:
                denied: dict[str, Any] = await ctx.activity(
                    TOOL_PREFIX + call["name"], _denied, call, completion=TOOL_RESULT
                )
                return denied
        result: dict[str, Any] = await ctx.activity(
            TOOL_PREFIX + call["name"], self._run_tool, call, retry=self.tool_retry,
            completion=TOOL_RESULT,
        )
        return result

    async def _run_tool(self, step: StepInfo, call: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {"callId": call["id"], "name": call["name"]}
        tool = self.tools.get(call["name"])
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
        messages: list[dict[str, Any]] = []
        for message, answer in exchanges:
            messages.append({"role": "user", "content": message})
            messages.append({"role": "assistant", "content": answer})
        return messages


async def _denied(step: StepInfo, call: dict[str, Any]) -> dict[str, Any]:
    return {"callId": call["id"], "name": call["name"], "ok": False, "error": "not approved"}


def _assistant_message(result: dict[str, Any]) -> dict[str, Any]:
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

"""The ``offline`` model: a deterministic scripted model for dev and tests, no network at all.

It calls a tool when the latest user message asks for one ("time" → ``current_time``,
"calculate EXPR" → ``calculator``, "call TOOL" → any registered tool, e.g. "call send_email",
the approval-gated demo tool) and otherwise answers by echoing; after a tool result it reports
it. Its answers are marked offline. ``AGENTLANE_OFFLINE_PACE`` (words per second; `agentlane dev`
sets 20) streams them word by word.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from agentlane.pricing import EMPTY, PriceTable
from runners.agent.model import attach_usage
from runners.agent.tokens import TokenBatcher
from runners.engine import StepInfo

_CALCULATE = re.compile(r"\bcalculate\s+(.+)$", re.IGNORECASE | re.DOTALL)
_CALL = re.compile(r"\bcall\s+([A-Za-z0-9_-]+)", re.IGNORECASE)
_TIME = re.compile(r"\btime\b", re.IGNORECASE)


class OfflineModel:
    """``words_per_s`` > 0 streams the answer word by word at that pace (a Token every 50 ms or
    so, as a real model's stream arrives); 0 writes it at once."""

    name = "offline"

    def __init__(self, *, words_per_s: float = 0.0, prices: PriceTable = EMPTY) -> None:
        self._pause_s = 1 / words_per_s if words_per_s > 0 else 0.0
        self.prices = prices

    async def complete(
        self,
        step: StepInfo,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None = None,
    ) -> dict[str, Any]:
        # One scripted model whatever the run chose: its answers say they are offline.
        available = {tool["function"]["name"] for tool in tools}
        last = messages[-1] if messages else {"role": "user", "content": ""}
        calls: list[dict[str, Any]] = []
        if last["role"] == "tool":
            answer = f"(offline) The tool answered: {last.get('content', '')}"
        else:
            text = str(last.get("content") or "")
            call = _tool_for(text, available)
            if call is not None:
                name, arguments = call
                calls.append(
                    {"id": f"call_{step.step}_0", "name": name, "arguments": json.dumps(arguments)}
                )
                answer = ""
            else:
                answer = f"(offline) You said: {text}"
        batcher = TokenBatcher(step)
        words = answer.split(" ") if answer else []
        try:
            for index, word in enumerate(words):
                if index and self._pause_s:
                    await asyncio.sleep(self._pause_s)
                batcher.add(word if index == 0 else " " + word)
        finally:
            # As the OpenAI model does: what streamed before a cancellation is written too.
            batcher.close()
        usage = {
            "inputTokens": sum(len(str(m.get("content") or "").split()) for m in messages),
            "outputTokens": len(words) + len(calls),
            "cachedInputTokens": 0,
        }
        usage = attach_usage(step, self.prices, self.name, usage)
        return {
            "model": self.name,
            "content": answer,
            "toolCalls": calls,
            "usage": usage,
            "offline": True,
        }


def _tool_for(text: str, available: set[str]) -> tuple[str, dict[str, Any]] | None:
    named = _CALL.search(text)
    if named and named.group(1) in available:
        return named.group(1), {}
    calculate = _CALCULATE.search(text)
    if calculate and "calculator" in available:
        return "calculator", {"expression": calculate.group(1).strip().rstrip("?.!")}
    if _TIME.search(text) and "current_time" in available:
        return "current_time", {}
    return None

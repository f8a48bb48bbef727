"""The agent workflow on the offline model: tools, approvals, budgets, session history."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from agentlane.commands import BudgetCap
from agentlane.settings import Settings
from runners.agent import Tool
from runners.agent.tools import demo_tools
from runners.agent.workflow import DEADLINE_DENIAL
from runners.api import Outcome
from runners.engine import StepInfo
from runners.workflows import build_executor
from tests.conftest import TEST_SHARDS
from tests.engine.conftest import Harness, fast_options, model_messages, offline_executor


class Target(BaseModel):
    path: str = "/tmp/x"


def approval_tool(calls: list[str], **deadline: Any) -> Tool:
    async def delete(step: StepInfo, arguments: Target) -> dict[str, Any]:
        calls.append(step.key)
        return {"deleted": arguments.path}

    return Tool(
        "delete_file", "Delete a file.", Target, delete, requires_approval=True, **deadline
    )


async def test_build_executor_runs_the_offline_model(harness: Harness) -> None:
    settings = Settings.from_env({"AGENTLANE_SHARDS": str(TEST_SHARDS)})
    executor = build_executor(harness.db, settings, CollectorRegistry())
    run = await harness.start("r1", "please calculate (2 + 3) * 4")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    events = await harness.events(run)
    assert [e.type for e in events if e.type not in ("Token", "Usage")] == [
        "RunAccepted", "RunStarted", "StepCompleted", "ToolCall", "ToolResult", "StepCompleted",
        "Completed",
    ]
    result = next(e for e in events if e.type == "ToolResult").data
    assert result["ok"] is True and result["result"]["value"] == 20
    assert events[-1].data["offline"] is True
    assert "20" in events[-1].data["answer"]
    # Every model call reports usage; streamed text arrives as batched Token events.
    assert [e.data["model"] for e in events if e.type == "Usage"] == ["offline", "offline"]
    tokens = "".join(e.data["text"] for e in events if e.type == "Token")
    assert tokens == events[-1].data["answer"]


async def test_at_a_pace_the_offline_model_streams_word_by_word(harness: Harness) -> None:
    settings = Settings.from_env(
        {"AGENTLANE_SHARDS": str(TEST_SHARDS), "AGENTLANE_OFFLINE_PACE": "40"}
    )
    executor = build_executor(harness.db, settings, CollectorRegistry())
    run = await harness.start("r1", "one two three four five six")
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    events = await harness.events(run)
    tokens = [e.data["text"] for e in events if e.type == "Token"]
    # 25 ms between words, batched every 50 ms: several Token events, not the answer at once.
    assert len(tokens) >= 3, tokens
    answer = "(offline) You said: one two three four five six"
    assert "".join(tokens) == events[-1].data["answer"] == answer


async def test_an_approval_gated_tool_suspends_until_the_signal(harness: Harness) -> None:
    calls: list[str] = []
    executor = offline_executor(harness, fast_options(extra_tools=(approval_tool(calls),)))
    run = await harness.start("r1", "call delete_file now")
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    events = await harness.events(run)
    tool_call = next(e for e in events if e.type == "ToolCall").data
    assert tool_call["requiresApproval"] is True and tool_call["name"] == "delete_file"
    suspended = events[-1]
    assert suspended.type == "Suspended" and suspended.data["reason"] == "approval"
    assert suspended.data["name"] == f"approve:{tool_call['callId']}"
    assert calls == []
    assert await harness.index_row(run) == ("suspended", None)
    await harness.signal(run, f"approve:{tool_call['callId']}", {"approved": True})
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    events = await harness.events(run)
    result = next(e for e in events if e.type == "ToolResult").data
    assert result["ok"] is True and result["result"] == {"deleted": "/tmp/x"}
    assert calls == [f"{run.execution_id}:{result['step']}"]
    assert [e.type for e in events].count("Resumed") == 1


async def test_a_denied_approval_is_reported_to_the_model(harness: Harness) -> None:
    calls: list[str] = []
    executor = offline_executor(harness, fast_options(extra_tools=(approval_tool(calls),)))
    run = await harness.start("r1", "call delete_file now")
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    await harness.signal(run, "approve", {"approved": False})
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    result = next(e for e in await harness.events(run) if e.type == "ToolResult").data
    assert result["ok"] is False and result["error"] == "not approved"
    assert calls == []


@pytest.mark.parametrize(
    ("default", "run_timeout_s"), [("deny", None), ("approve", None), ("deny", 0.5)]
)
async def test_an_approval_nobody_answers_takes_the_tools_default_at_its_deadline(
    harness: Harness, default: str, run_timeout_s: float | None
) -> None:
    calls: list[str] = []
    # The tool's deadline is an hour; a run's own approvalTimeoutSeconds overrides it.
    tool_timeout = timedelta(hours=1) if run_timeout_s else timedelta(seconds=0.5)
    tool = approval_tool(calls, approval_timeout=tool_timeout, on_approval_timeout=default)
    executor = offline_executor(harness, fast_options(extra_tools=(tool,)))
    run = await harness.start("r1", "call delete_file now", approval_timeout_s=run_timeout_s)
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    suspended = (await harness.events(run))[-1]
    deadline = datetime.fromisoformat(suspended.data["deadline"])
    assert deadline - suspended.created_at < timedelta(seconds=1)
    assert await harness.index_row(run) == ("suspended", deadline)
    await harness.sleep_until(deadline)
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    events = await harness.events(run)
    resumed = next(e for e in events if e.type == "Resumed")
    assert resumed.data["reason"] == "deadline"
    result = next(e for e in events if e.type == "ToolResult").data
    if default == "deny":
        assert result["ok"] is False and result["error"] == DEADLINE_DENIAL
        assert calls == []
    else:
        assert result["ok"] is True and calls == [f"{run.execution_id}:{result['step']}"]
    # The model read the outcome and the run answered.
    assert events[-1].type == "Completed"


def _priced(tmp_path: Path, *, input_per_million: int, output_per_million: int) -> dict[str, str]:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"version": "p-1", "models": {"offline": {
        "inputPerMillion": input_per_million, "outputPerMillion": output_per_million}}}))
    return {"AGENTLANE_PRICES_FILE": str(prices)}


async def test_a_money_budget_is_checked_before_each_model_call(
    harness: Harness, tmp_path: Path
) -> None:
    # "what time is it?" makes two model calls around a tool call; the first costs more than the
    # run may spend, so the second waits for a raise instead of running.
    executor = offline_executor(
        harness, env=_priced(tmp_path, input_per_million=1000, output_per_million=1000)
    )
    run = await harness.start(
        "r1", "what time is it?", budget={"maxCostMicros": 5000, "capCostMicros": 100_000}
    )
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    events = await harness.events(run)
    (first,) = [e.data for e in events if e.type == "Usage"]
    assert first["costMicros"] > 5000 and first["priceVersion"] == "p-1"
    assert events[-1].type == "Suspended" and events[-1].data["reason"] == "budget"
    assert f"{first['costMicros']} cost micro-units of 5000" in events[-1].data["detail"]
    # A raise within the cap lets the second call run and the run finish.
    await harness.signal(run, "budget", {"maxCostMicros": 100_000})
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    assert len([e for e in await harness.events(run) if e.type == "Usage"]) == 2


async def test_a_run_at_its_money_cap_fails(harness: Harness, tmp_path: Path) -> None:
    executor = offline_executor(
        harness, env=_priced(tmp_path, input_per_million=1000, output_per_million=1000)
    )
    run = await harness.start(
        "r1", "what time is it?", budget={"maxCostMicros": 5000, "capCostMicros": 5000}
    )
    assert await harness.advance(executor, run) is Outcome.FAILED
    failed = (await harness.events(run))[-1]
    assert failed.data["reason"].startswith("BudgetExhausted:")
    assert "5000 micro-units" in failed.data["reason"]


async def test_a_run_over_its_token_budget_suspends_until_raised(harness: Harness) -> None:
    executor = offline_executor(harness)
    run = await harness.start("r1", "what time is it?", budget={"maxTokens": 5})
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    events = await harness.events(run)
    assert events[-1].type == "Suspended" and events[-1].data["reason"] == "budget"
    assert "of 5" in events[-1].data["detail"]
    # The first model call and its tool ran; the second model call waits for more budget.
    assert [e.data["step"] for e in events if e.type == "Usage"] == [0]
    assert await harness.index_row(run) == ("suspended", None)
    await harness.signal(run, "budget", {"maxTokens": 10_000})
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    events = await harness.events(run)
    assert events[-1].type == "Completed" and "utc" in events[-1].data["answer"]
    assert len([e for e in events if e.type == "Usage"]) == 2


async def test_a_budget_of_model_calls_suspends_too(harness: Harness) -> None:
    executor = offline_executor(harness)
    run = await harness.start("r1", "what time is it?", budget={"maxAttempts": 1})
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    assert (await harness.events(run))[-1].data["reason"] == "budget"
    await harness.signal(run, "budget", {"maxAttempts": 5})
    assert await harness.advance(executor, run) is Outcome.COMPLETED


async def test_the_model_sees_the_session_history(harness: Harness) -> None:
    executor = offline_executor(harness)
    first = await harness.start("r1", "my name is Ada")
    assert await harness.advance(executor, first) is Outcome.COMPLETED
    second = await harness.start("r2", "what did I say?")
    seen = await model_messages(harness, executor, second)
    contents = [m["content"] for m in seen[0] if m["role"] != "system"]
    assert contents == ["my name is Ada", "(offline) You said: my name is Ada", "what did I say?"]


async def test_the_servers_cap_bounds_a_run_and_every_raise(harness: Harness) -> None:
    """A run accepted under a cap of 3 model calls asks for 1, is raised by a signal asking for
    10 (granted 3: the cap), and completes; a run accepted under a cap of 1 that needs 2 calls
    fails when it reaches the cap instead of waiting for a raise it cannot get."""
    harness.budget_cap = BudgetCap(model_calls=3)
    executor = offline_executor(harness)
    run = await harness.start("r1", "what time is it?", budget={"maxAttempts": 1})
    assert _set((await harness.events(run))[0].data["budget"]) == {
        "maxAttempts": 1, "capAttempts": 3
    }
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    await harness.signal(run, "budget", {"maxAttempts": 10})
    assert await harness.advance(executor, run) is Outcome.COMPLETED

    harness.budget_cap = BudgetCap(model_calls=1)
    run = await harness.start("r2", "what time is it?")
    assert _set((await harness.events(run))[0].data["budget"]) == {
        "maxAttempts": 1, "capAttempts": 1
    }
    assert await harness.advance(executor, run) is Outcome.FAILED
    failed = (await harness.events(run))[-1]
    assert failed.type == "Failed" and failed.data["reason"].startswith("BudgetExhausted:")
    assert len([e for e in await harness.events(run) if e.type == "Usage"]) == 1


def _set(budget: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in budget.items() if value is not None}


async def test_an_approval_sent_before_the_call_was_asked_does_not_count(
    harness: Harness,
) -> None:
    """The tool call's id is predictable (the offline model's ``call_0_0``); approvals sent ahead
    of the question, by name or by field, are ignored: the run still suspends and asks."""
    calls: list[str] = []
    executor = offline_executor(harness, fast_options(extra_tools=(approval_tool(calls),)))
    run = await harness.start("r1", "call delete_file now")
    await harness.signal(run, "approve:call_0_0", {"approved": True})
    await harness.signal(run, "approve", {"approved": True, "callId": "call_0_0"})
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    assert calls == []
    await harness.signal(run, "approve:call_0_0", {"approved": True})
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("approve:call_0_0", {"approved": "false"}),
        ("approve:call_0_0", {"approved": "true"}),
        ("approve:call_0_0", {"approved": 1}),
        ("approve:call_0_0", 0),
        ("approve:call_0_0", None),
        ("approve:call_0_0", "no"),
        ("approve:call_0_0", {"deny": True}),
        ("approve", {"approved": True}),  # names no call
        ("approve", {"approved": True, "callId": "call_9_9"}),  # another call's
    ],
)
async def test_only_an_explicit_yes_to_this_call_approves(
    harness: Harness, name: str, payload: Any
) -> None:
    calls: list[str] = []
    executor = offline_executor(harness, fast_options(extra_tools=(approval_tool(calls),)))
    run = await harness.start("r1", "call delete_file now")
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    await harness.signal(run, name, payload)
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    result = next(e for e in await harness.events(run) if e.type == "ToolResult").data
    assert result == {**result, "ok": False, "error": "not approved"}
    assert calls == []


async def test_the_demo_send_email_asks_first_and_sends_nothing(harness: Harness) -> None:
    executor = offline_executor(harness, fast_options(extra_tools=tuple(demo_tools())))
    run = await harness.start("r1", "call send_email please")
    assert await harness.advance(executor, run) is Outcome.SUSPENDED
    await harness.signal(run, "approve:call_0_0", {"approved": True})
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    result = next(e for e in await harness.events(run) if e.type == "ToolResult").data
    assert result["ok"] is True and result["result"]["sent"] is False

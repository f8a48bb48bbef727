"""Recorded agent histories replay against today's code (model: temporalio's ``_replayer.py``).

Each golden file under ``tests/engine/golden/`` is a session the real engine wrote (see
``golden/record.py``). Every run in it must replay with no database, ask for exactly the steps
the journal holds, and end as it ended then: a change to the agent or the engine that would break
runs in flight fails here. The divergence tests prove the replay can fail.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentlane.bus.codec import decode
from agentlane.records import StoredEvent
from runners.agent import AgentWorkflow, RecordedSession
from runners.engine import NonDeterminismError, Replayer, WorkflowContext, WorkflowRegistry
from tests.engine.golden.scenarios import GOLDEN_FORMAT, SCENARIOS, Scenario, agent_workflows

GOLDEN = Path(__file__).parent / "golden"
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


@dataclasses.dataclass(frozen=True)
class Golden:
    scenario: Scenario
    events: list[StoredEvent]
    outcomes: dict[str, str]

    @classmethod
    def load(cls, path: Path) -> Golden:
        body: dict[str, Any] = json.loads(path.read_text())
        assert body["format"] == GOLDEN_FORMAT, path
        events = [decode(json.dumps(event)) for event in body["events"]]
        return cls(BY_NAME[body["scenario"]], events, body["outcomes"])

    def run(self, execution_id: str) -> list[StoredEvent]:
        return [e for e in self.events if e.execution_id == execution_id]

    def workflows(self) -> WorkflowRegistry:
        return agent_workflows(self.scenario, RecordedSession(self.events))


def golden(name: str) -> Golden:
    return Golden.load(GOLDEN / f"{name}.json")


def test_every_scenario_has_a_golden_history() -> None:
    recorded = {path.stem for path in GOLDEN.glob("*.json")}
    assert recorded == set(BY_NAME), "record with: python -m tests.engine.golden.record"


@pytest.mark.parametrize("name", sorted(BY_NAME))
async def test_each_recorded_run_replays_and_ends_as_it_did(name: str) -> None:
    history = golden(name)
    replayer = Replayer(history.workflows())
    for execution_id, outcome in history.outcomes.items():
        result = await replayer.replay(history.run(execution_id))
        assert result.outcome == outcome, execution_id
        assert result.steps > 0


async def test_a_history_cut_short_replays_to_its_frontier() -> None:
    """A run caught mid-flight (here: after its model call, before its tool) replays every
    recorded step and stops where the next step would run live."""
    history = golden("offline-calculator")
    [execution_id] = history.outcomes
    events = history.run(execution_id)
    cut = next(i for i, e in enumerate(events) if e.type == "ToolCall")
    result = await Replayer(history.workflows()).replay(events[: cut + 1])
    assert (result.outcome, result.steps) == ("yielded", 2)


class _ToolFirstAgent(AgentWorkflow):
    """A change that breaks runs in flight: the code now sleeps before it calls the model."""

    async def run(self, ctx: WorkflowContext, payload: dict[str, Any]) -> dict[str, Any]:
        await ctx.sleep(timedelta(0))
        return await super().run(ctx, payload)


class _LouderAgent(AgentWorkflow):
    """A change that keeps the steps but changes how the run ends."""

    async def run(self, ctx: WorkflowContext, payload: dict[str, Any]) -> dict[str, Any]:
        answer = await super().run(ctx, payload)
        return {**answer, "answer": answer["answer"].upper()}


def _with_agent(history: Golden, agent: type[AgentWorkflow]) -> WorkflowRegistry:
    original = history.workflows().get("agent", "1").__self__  # type: ignore[attr-defined]
    changed = agent(
        RecordedSession(history.events), original.model, original.tools,
        model_retry=original.model_retry, tool_retry=original.tool_retry,
    )
    registry = WorkflowRegistry()
    for completion in history.workflows().completions.values():
        registry.register_completion(completion)
    registry.register("agent", "1", changed.run)
    return registry


@pytest.mark.parametrize("name", ["offline-calculator", "approval-pending", "budget-raised"])
async def test_code_that_asks_for_other_steps_is_caught(name: str) -> None:
    history = golden(name)
    execution_id = next(iter(history.outcomes))
    with pytest.raises(NonDeterminismError, match="step 0"):
        await Replayer(_with_agent(history, _ToolFirstAgent)).replay(history.run(execution_id))


async def test_code_that_ends_a_run_differently_is_caught() -> None:
    history = golden("offline-echo")
    execution_id = next(iter(history.outcomes))
    with pytest.raises(NonDeterminismError, match="completed"):
        await Replayer(_with_agent(history, _LouderAgent)).replay(history.run(execution_id))


async def test_a_tool_result_is_read_back_as_the_agent_recorded_it() -> None:
    """Without the agent's ToolResult completion registered, the journal cannot tell which
    activity a ToolResult completed: the replay refuses rather than guessing."""
    history = golden("offline-calculator")
    execution_id = next(iter(history.outcomes))
    bare = WorkflowRegistry()
    bare.register("agent", "1", history.workflows().get("agent", "1"))
    with pytest.raises(NonDeterminismError):
        await Replayer(bare).replay(history.run(execution_id))

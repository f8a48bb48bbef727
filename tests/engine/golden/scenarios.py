"""The agent runs recorded as golden histories: what each scenario does, and the exact agent
configuration it ran with (a replay must register the same code, tools and retry policies).

``python -m tests.engine.golden.record`` plays every scenario against the real engine on a real
Postgres (and the loopback OpenAI server) and writes ``<name>.json``;
``tests/engine/test_golden_replays.py`` replays the files in CI with no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from agentlane.settings import Settings
from runners.agent import AgentOptions, AgentStore, Tool, register_agent
from runners.engine import RetryPolicy, StepInfo, WorkflowRegistry
from tests.fixtures.openai_server import Reply

GOLDEN_FORMAT = 1


class Target(BaseModel):
    path: str = "/tmp/x"


async def _delete(step: StepInfo, arguments: Target) -> dict[str, Any]:
    return {"deleted": arguments.path}


#: A tool a human must approve first (the offline model calls it on "call delete_file").
DELETE_FILE = Tool("delete_file", "Delete a file.", Target, _delete, requires_approval=True)


@dataclass(frozen=True)
class Start:
    run_id: str
    message: str
    budget: dict[str, int] | None = None


@dataclass(frozen=True)
class Advance:
    run_id: str


@dataclass(frozen=True)
class Signal:
    run_id: str
    name: str
    payload: Any = None
    #: ``name`` gets the run's first ToolCall's ``callId`` appended (``approve:<callId>``).
    call_id_suffix: bool = False


@dataclass(frozen=True)
class Cancel:
    run_id: str


Action = Start | Advance | Signal | Cancel


@dataclass(frozen=True)
class Scenario:
    name: str
    actions: tuple[Action, ...]
    #: ``offline`` or ``loopback`` (the openai SDK against the loopback server).
    model: str = "offline"
    replies: tuple[Reply, ...] = ()
    extra_tools: tuple[Tool, ...] = field(default=())


def agent_options(scenario: Scenario) -> AgentOptions:
    """The agent's options when the scenario was recorded: short waits, four model attempts."""
    return AgentOptions(
        fallback_model="m-spare" if scenario.model == "loopback" else None,
        request_timeout=timedelta(seconds=1),
        model_retry=RetryPolicy(
            max_attempts=4,
            initial_interval=timedelta(milliseconds=20),
            max_interval=timedelta(milliseconds=200),
        ),
        extra_tools=scenario.extra_tools,
    )


def agent_settings(scenario: Scenario, *, base_url: str = "http://127.0.0.1:9/v1") -> Settings:
    if scenario.model == "offline":
        return Settings.from_env({})
    return Settings.from_env(
        {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-test", "AGENTLANE_MODEL": "m-1"}
    )


def agent_workflows(
    scenario: Scenario, store: AgentStore, *, base_url: str = "http://127.0.0.1:9/v1"
) -> WorkflowRegistry:
    """The workflows exactly as the scenario ran them (a replay never calls the model)."""
    registry = WorkflowRegistry()
    register_agent(
        registry, store, agent_settings(scenario, base_url=base_url), agent_options(scenario)
    )
    return registry


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("offline-echo", (Start("r1", "hello"), Advance("r1"))),
    Scenario("offline-calculator", (Start("r1", "please calculate (2 + 3) * 4"), Advance("r1"))),
    Scenario(
        "offline-two-runs-with-history",
        (Start("r1", "my name is Ada"), Advance("r1"), Start("r2", "what did I say?"),
         Advance("r2")),
    ),
    Scenario(
        "approval-granted",
        (Start("r1", "call delete_file now"), Advance("r1"),
         Signal("r1", "approve:", {"approved": True}, call_id_suffix=True), Advance("r1")),
        extra_tools=(DELETE_FILE,),
    ),
    Scenario(
        "approval-pending",
        (Start("r1", "call delete_file now"), Advance("r1")),
        extra_tools=(DELETE_FILE,),
    ),
    Scenario(
        "approval-denied",
        (Start("r1", "call delete_file now"), Advance("r1"),
         Signal("r1", "approve", {"approved": False}), Advance("r1")),
        extra_tools=(DELETE_FILE,),
    ),
    Scenario(
        "budget-raised",
        (Start("r1", "what time is it?", {"maxTokens": 5}), Advance("r1"),
         Signal("r1", "budget", {"maxTokens": 10_000}), Advance("r1")),
    ),
    Scenario(
        "cancelled-while-waiting",
        (Start("r1", "call delete_file now"), Advance("r1"), Cancel("r1"), Advance("r1")),
        extra_tools=(DELETE_FILE,),
    ),
    Scenario(
        "loopback-stream-and-tool",
        (Start("r1", "what is six times seven?"), Advance("r1")),
        model="loopback",
        replies=(
            Reply.tool_call("calculator", {"expression": "6 * 7"}, call_id="call_A"),
            Reply.answer(" ".join(f"w{i}" for i in range(80))),
        ),
    ),
    Scenario(
        "loopback-faults-retried",
        (Start("r1", "hello"), Advance("r1")),
        model="loopback",
        replies=(
            Reply.error(429, retry_after="0.1"),
            Reply.error(500),
            Reply.cut("this answer is cut short", after=3),
            Reply.answer("finally"),
        ),
    ),
    Scenario(
        "loopback-failed-for-good",
        (Start("r1", "hello"), Advance("r1")),
        model="loopback",
        replies=(Reply.error(400),),
    ),
)

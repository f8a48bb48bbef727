"""The agent workflow, its model clients (OpenAI-compatible, offline) and its tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from agentlane.pricing import PriceTable
from agentlane.settings import Settings
from runners.agent.model import ModelClient, OpenAIModel, OpenAIOptions, StreamCut
from runners.agent.offline import OfflineModel
from runners.agent.recorded import RecordedSession
from runners.agent.tools import Clock, Tool, ToolRegistry, builtin_tools
from runners.agent.workflow import TOOL_RESULT, AgentWorkflow, SessionHistory
from runners.engine import RetryPolicy, WorkflowRegistry

AGENT_WORKFLOW = "agent"
AGENT_VERSION = "1"


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Tuning of the agent beyond Settings (tests shorten the waits)."""

    fallback_model: str | None = None
    request_timeout: timedelta = timedelta(seconds=60)
    model_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            max_attempts=4,
            initial_interval=timedelta(milliseconds=500),
            max_interval=timedelta(seconds=20),
        )
    )
    tool_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=3))
    extra_tools: tuple[Tool, ...] = ()


def model_client(settings: Settings, options: AgentOptions) -> ModelClient:
    """``offline`` → the scripted model; anything else → the OpenAI-compatible endpoint."""
    prices = PriceTable.load(settings.prices_file)
    if settings.model == "offline":
        return OfflineModel(words_per_s=settings.offline_pace, prices=prices)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused"
    return OpenAIModel(
        OpenAIOptions(
            base_url=settings.openai_base_url,
            api_key=key,
            api_key_file=settings.openai_api_key_file,
            model=settings.model,
            fallback_model=options.fallback_model,
            timeout=options.request_timeout,
        ),
        max_attempts=options.model_retry.max_attempts,
        prices=prices,
    )


class AgentStore(SessionHistory, Clock, Protocol):
    """What the agent reads besides its journal: a session's history and the database's clock
    (the event store; a recorded session when a history is replayed)."""


def agent_tools(clock: Clock, options: AgentOptions) -> ToolRegistry:
    """The tools the agent is given: the built-in ones on ``clock``, and ``options``' extra."""
    return ToolRegistry([*builtin_tools(clock), *options.extra_tools])


def register_agent(
    registry: WorkflowRegistry,
    store: AgentStore,
    settings: Settings,
    options: AgentOptions | None = None,
) -> AgentWorkflow:
    """Register the agent workflow (and its ``ToolResult`` completions) with ``registry``."""
    options = options or AgentOptions()
    workflow = AgentWorkflow(
        store,
        model_client(settings, options),
        agent_tools(store, options),
        model_retry=options.model_retry,
        tool_retry=options.tool_retry,
    )
    registry.register_completion(TOOL_RESULT)
    registry.register(AGENT_WORKFLOW, AGENT_VERSION, workflow.run)
    return workflow


__all__ = [
    "AGENT_VERSION",
    "AGENT_WORKFLOW",
    "TOOL_RESULT",
    "AgentOptions",
    "AgentStore",
    "AgentWorkflow",
    "ModelClient",
    "OfflineModel",
    "OpenAIModel",
    "OpenAIOptions",
    "RecordedSession",
    "StreamCut",
    "Tool",
    "ToolRegistry",
    "agent_tools",
    "builtin_tools",
    "model_client",
    "register_agent",
]

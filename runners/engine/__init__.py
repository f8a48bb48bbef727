"""The durable workflow engine: journal, replay, activities, timers, signals, cancellation.

Build the runner's :class:`runners.api.RunExecutor` with :func:`build_executor`.
"""

from __future__ import annotations

from agentlane.settings import Settings
from agentlane.store import EventStore
from runners.api import RunExecutor
from runners.engine.context import RunInfo, StepInfo, WorkflowContext
from runners.engine.errors import (
    ActivityError,
    EngineError,
    JournalConflict,
    NonDeterminismError,
    UnknownWorkflow,
    WorkflowCancelled,
)
from runners.engine.executor import Executor
from runners.engine.journal import Signal
from runners.engine.registry import WorkflowFn, WorkflowRegistry
from runners.engine.retry import NO_RETRY, NonRetryable, RetryLater, RetryPolicy


def build_executor(store: EventStore, settings: Settings) -> RunExecutor:
    """The executor a runner process uses: every registered workflow (the agent workflow on the
    model ``settings.model`` names, ``offline`` included), advancing runs through ``store``."""
    from runners.agent import AgentOptions, register_agent

    registry = WorkflowRegistry()
    register_agent(registry, store, settings, AgentOptions(fallback_model=settings.model_fallback))
    return Executor(store, registry)


__all__ = [
    "NO_RETRY",
    # errors
    "ActivityError",
    "EngineError",
    # building
    "Executor",
    "JournalConflict",
    "NonDeterminismError",
    "NonRetryable",
    "RetryLater",
    # writing workflows
    "RetryPolicy",
    "RunInfo",
    "Signal",
    "StepInfo",
    "UnknownWorkflow",
    "WorkflowCancelled",
    "WorkflowContext",
    "WorkflowFn",
    "WorkflowRegistry",
    "build_executor",
]

"""The workflows a runner process runs, and the executor that advances them.

The engine knows no workflow and the agent is one workflow among possible others: this is where a
runner process puts them together (the agent workflow, on the model ``AGENTLANE_MODEL`` names,
``offline`` included).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agentlane.blobs import blobs_from_settings
from agentlane.db import Database
from agentlane.run_index import RunIndex
from agentlane.settings import Settings
from agentlane.store import EventStore
from runners.agent import AgentOptions, register_agent
from runners.agent.tools import demo_tools
from runners.api import RunExecutor
from runners.engine import Executor, WorkflowRegistry


def agent_options(settings: Settings) -> AgentOptions:
    """The agent's options on a runner of these settings (its fallback model, the demo tools)."""
    extra = tuple(demo_tools()) if settings.demo_tools else ()
    return AgentOptions(fallback_model=settings.model_fallback, extra_tools=extra)


def workflows(store: EventStore, settings: Settings) -> WorkflowRegistry:
    """Every workflow a runner of these settings runs (today: the agent)."""
    registry = WorkflowRegistry()
    register_agent(registry, store, settings, agent_options(settings))
    return registry


def build_executor(db: Database, settings: Settings, registry: CollectorRegistry) -> RunExecutor:
    """The executor a runner process uses (a :data:`runners.component.ExecutorFactory`)."""
    store = EventStore(db, shards=settings.shards, blobs=blobs_from_settings(settings))
    return Executor(
        store, RunIndex(db), workflows(store, settings), metrics_registry=registry,
        code_version=settings.code_version,
    )

"""Fixtures of the engine tests: a lease of our own on a shard (as a runner would hold it) and
helpers to start runs and advance them in-process against the real database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from agentlane.commands import BudgetCap, Commands
from agentlane.db import Database
from agentlane.leases import Fence
from agentlane.records import StoredEvent
from agentlane.run_index import RunIndex
from agentlane.settings import Settings
from agentlane.sharding import shard_for
from agentlane.store import EventStore
from runners.agent import AgentOptions, register_agent
from runners.api import DueRun, Outcome, RunExecutor
from runners.engine import Executor, RetryPolicy, StepInfo, WorkflowRegistry
from tests.fixtures.openai_server import OpenAIServer


async def claim_shard(
    db: Database, shard_id: int, *, runner_id: str = "test-runner", ttl_s: float = 120.0
) -> Fence:
    """Take the shard's lease the way a runner does: a new token, expiry on database time."""
    async with db.connection() as conn:
        row = await (
            await conn.execute(
                "UPDATE cluster_shards SET runner_id = %s, lease_token = lease_token + 1, "
                "lease_expires_at = now() + make_interval(secs => %s), "
                "acquired_at = now(), renewed_at = now() "
                "WHERE shard_id = %s RETURNING lease_token",
                (runner_id, ttl_s, shard_id),
            )
        ).fetchone()
    assert row is not None, f"shard {shard_id} missing from cluster_shards"
    return Fence(shard_id, runner_id, row[0])


@dataclass
class Harness:
    """Start runs in one session and advance them as the shard's owner."""

    db: Database
    store: EventStore
    tenant: str = "acme"
    session: str = "s-1"
    #: The server's per-run caps the harness's commands accept runs under.
    budget_cap: BudgetCap | None = None

    @property
    def run_index(self) -> RunIndex:
        return RunIndex(self.db)

    @property
    def commands(self) -> Commands:
        return Commands(self.store, self.run_index, budget_cap=self.budget_cap)

    def executor(self, registry: WorkflowRegistry) -> Executor:
        """The engine's executor for the workflows of ``registry``."""
        return Executor(self.store, self.run_index, registry)

    @property
    def shard(self) -> int:
        return shard_for(self.tenant, self.session, self.store.shards)

    async def start(self, run_id: str, message: str, **kwargs: Any) -> DueRun:
        accepted = await self.commands.start_run(
            tenant_id=self.tenant, session_id=self.session, run_id=run_id, message=message,
            **kwargs,
        )
        return DueRun(self.tenant, self.session, accepted.execution_id, self.shard)

    async def signal(self, run: DueRun, name: str, payload: Any = None) -> None:
        await self.commands.signal_run(
            tenant_id=self.tenant, execution_id=run.execution_id, name=name, payload=payload
        )

    async def cancel(self, run: DueRun, reason: str | None = None) -> None:
        await self.commands.cancel_run(
            tenant_id=self.tenant, execution_id=run.execution_id, reason=reason
        )

    async def fence(self, runner_id: str = "test-runner") -> Fence:
        return await claim_shard(self.db, self.shard, runner_id=runner_id)

    async def advance(
        self,
        executor: RunExecutor,
        run: DueRun,
        fence: Fence | None = None,
        *,
        wake: asyncio.Event | None = None,
        stop: asyncio.Event | None = None,
    ) -> Outcome:
        fence = fence or await self.fence()
        async with asyncio.timeout(60):
            return await executor.advance(
                run, fence, wake=wake or asyncio.Event(), stop=stop or asyncio.Event()
            )

    async def sleep_until(self, moment: datetime) -> None:
        """Wait until the database clock reaches ``moment`` (timers run on its time, not ours)."""
        delay = (moment - await self.store.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay + 0.02)
        assert await self.store.now() >= moment

    async def events(self, run: DueRun) -> list[StoredEvent]:
        return await self.store.read_execution(self.tenant, run.execution_id)

    async def types(self, run: DueRun) -> list[str]:
        return [event.type for event in await self.events(run)]

    async def index_row(self, run: DueRun) -> tuple[Any, ...] | None:
        async with self.db.connection() as conn:
            return await (
                await conn.execute(
                    "SELECT status, wake_at FROM run_index WHERE execution_id = %s",
                    (run.execution_id,),
                )
            ).fetchone()

    async def wait_for(
        self, run: DueRun, predicate: Callable[[list[StoredEvent]], bool], timeout_s: float = 20
    ) -> list[StoredEvent]:
        async def poll() -> list[StoredEvent]:
            while True:
                events = await self.events(run)
                if predicate(events):
                    return events
                await asyncio.sleep(0.02)

        async with asyncio.timeout(timeout_s):
            return await poll()


@pytest.fixture
def harness(db: Database, store: EventStore) -> Harness:
    return Harness(db, store)


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """A loopback OpenAI-compatible server (real HTTP + SSE) with a script of faults."""
    with OpenAIServer() as server:
        yield server


def loopback_executor(
    harness: Harness, server: OpenAIServer, options: AgentOptions | None = None,
    env: dict[str, str] | None = None,
) -> Executor:
    """The agent on the real openai SDK pointed at the loopback server; waits kept short."""
    settings = Settings.from_env(
        {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test", "AGENTLANE_MODEL": "m-1"}
        | (env or {})
    )
    registry = WorkflowRegistry()
    register_agent(registry, harness.store, settings, options or fast_options())
    return harness.executor(registry)


def offline_executor(
    harness: Harness, options: AgentOptions | None = None, env: dict[str, str] | None = None
) -> Executor:
    registry = WorkflowRegistry()
    register_agent(registry, harness.store, Settings.from_env(env or {}), options or fast_options())
    return harness.executor(registry)


def fast_options(**overrides: Any) -> AgentOptions:
    values: dict[str, Any] = {
        "request_timeout": timedelta(seconds=1),
        "model_retry": RetryPolicy(
            max_attempts=5,
            initial_interval=timedelta(milliseconds=20),
            max_interval=timedelta(milliseconds=200),
        ),
    }
    values.update(overrides)
    return AgentOptions(**values)


async def model_messages(
    harness: Harness, executor: Executor, run: DueRun
) -> list[list[dict[str, Any]]]:
    """Advance ``run`` to completion with ``executor`` (an agent's), returning the messages each of
    its model calls was sent."""
    seen: list[list[dict[str, Any]]] = []
    workflow = executor.registry.get("agent", "1").__self__  # type: ignore[attr-defined]
    original = workflow.model.complete

    async def spy(
        step: StepInfo, messages: list[dict[str, Any]], tools: Any, model: str | None = None
    ) -> Any:
        seen.append(messages)
        return await original(step, messages, tools, model)

    workflow.model.complete = spy
    assert await harness.advance(executor, run) is Outcome.COMPLETED
    return seen

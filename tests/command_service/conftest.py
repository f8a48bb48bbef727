"""A live command service on a real socket (uvicorn on a free port, in this process) over the
test's own migrated database, and HS256 tokens for two tenants."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import psycopg
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from agentlane.auth import Authenticator
from agentlane.blobs import Blobs
from agentlane.cli.embedded_pg import free_port
from agentlane.db import Database, open_pool
from agentlane.service import build_app
from agentlane.store import EventStore
from command_service import CommandService, Limits
from runners.membership import read_runner_rows
from tests.conftest import TEST_SHARDS

SECRET = "test-secret-of-at-least-32-bytes-long"
AUDIENCE = "agentlane-tests"

#: Generous limits so only the admission tests meet them.
OPEN_LIMITS = Limits(
    max_inflight=1000,
    latency_target_s=0,  # a fixed bound: a slow shared machine must not shrink it mid-test
    max_streams=100,
    rate_per_s=10_000,
    burst=10_000,
    max_active_runs=10_000,
)


@dataclass
class LiveServer:
    base_url: str
    database_url: str
    store: EventStore
    service: CommandService
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        """A sample of this server's /metrics registry (0 when it has none yet)."""
        return self.registry.get_sample_value(name, labels or None) or 0.0

    def count(self, query: str, *params: Any) -> int:
        """A count straight from the database (what was, or was not, written)."""
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    def events_written(self) -> int:
        return self.count("SELECT count(*) FROM agent_events")


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve(
    database_url: str,
    *,
    authenticator: Authenticator,
    limits: Limits = OPEN_LIMITS,
    pool: AsyncConnectionPool | None = None,
    blobs: Blobs | None = None,
) -> AsyncIterator[LiveServer]:
    """The command service as ``agentlane.service`` assembles it, served on 127.0.0.1 (on its
    own pool unless one is given)."""
    async with contextlib.AsyncExitStack() as stack:
        if pool is None:
            pool = await stack.enter_async_context(
                open_pool(database_url, name="test-cmd", min_size=2, max_size=20)
            )
        db = Database(pool)
        registry = CollectorRegistry()
        service = CommandService(
            db=db, shards=TEST_SHARDS, authenticator=authenticator, limits=limits,
            registry=registry, runners=read_runner_rows, blobs=blobs,
        )
        port = free_port()
        config = uvicorn.Config(
            build_app([service], asyncio.Event(), registry=registry),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = _QuietServer(config)
        await stack.enter_async_context(service)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        try:
            yield LiveServer(
                f"http://127.0.0.1:{port}", database_url, service.store, service, registry
            )
        finally:
            server.should_exit = True
            await task


def jwt_authenticator() -> Authenticator:
    return Authenticator(mode="jwt", secret=SECRET, audience=AUDIENCE)


def make_token(tenant: str, *, ttl_s: float = 300, **claims: Any) -> str:
    now = time.time()
    body = {"tenant": tenant, "aud": AUDIENCE, "iat": int(now), "exp": int(now + ttl_s)}
    body.update(claims)
    return jwt.encode(body, SECRET, algorithm="HS256")


def bearer(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(tenant)}"}


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[LiveServer]:
    """The service with HS256 JWT auth and limits nobody reaches."""
    async with serve(database_url, authenticator=jwt_authenticator()) as server:
        yield server


@pytest.fixture
async def client(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as http:
        yield http


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10) -> None:
    """Poll a condition another task or process makes true (a metric, a row)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)

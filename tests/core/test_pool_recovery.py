"""Clients waiting for a connection are served once the database is back, not at their timeout.

psycopg_pool grows for a waiting client only when the client starts waiting; when the attempts
it started gave up (the database was down), clients already waiting used to wait out their whole
``timeout`` although the database was back: the soak measured runners stalled for 20-30 s after
a ``-m immediate`` restart. A real server, stopped for longer than one reconnect attempt lasts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlane.cli.embedded_pg import EmbeddedPostgres
from agentlane.db import RECONNECT_ATTEMPT_S, Database, create_pool


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pgdata")
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")


async def test_waiting_clients_get_a_connection_soon_after_an_outage(
    own_server: EmbeddedPostgres,
) -> None:
    async with create_pool(own_server.url(), name="outage", min_size=1, max_size=2,
                           timeout_s=120) as pool:
        db = Database(pool)
        async with db.connection() as conn:
            await conn.execute("SELECT 1")
        await asyncio.to_thread(own_server.stop, "immediate")
        await pool.check()  # the idle connection is found broken: nothing left in the pool

        async def query() -> float:
            async with db.connection() as conn:
                await conn.execute("SELECT 1")
            return time.monotonic()

        waiting = [asyncio.create_task(query()) for _ in range(3)]
        await asyncio.sleep(RECONNECT_ATTEMPT_S + 3)  # every attempt made meanwhile gave up
        assert not any(task.done() for task in waiting)
        await asyncio.to_thread(own_server.start)
        back = time.monotonic()
        served = await asyncio.wait_for(asyncio.gather(*waiting), 60)
    # Well inside the clients' 120 s timeout: the pool kept trying for them.
    assert max(served) - back < 15, [round(t - back, 1) for t in served]

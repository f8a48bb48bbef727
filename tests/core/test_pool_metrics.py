"""The pools' own statistics at ``/metrics``: what a pool holds, lends and makes wait, per pool,
read at scrape time from psycopg_pool."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from agentlane.db import Database, open_database
from agentlane.pool_metrics import PoolCollector


def _scrape() -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(PoolCollector())
    samples: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.labels.get("pool") == "metered":
                samples[sample.name] = sample.value
    return samples


async def test_a_pool_reports_what_it_lends_and_who_waits(app_database_url: str) -> None:
    async with open_database(app_database_url, name="metered", min_size=1, max_size=1) as db:
        for _ in range(3):
            async with db.connection() as conn:
                await conn.execute("SELECT 1")
        held = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with db.connection():
                held.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await held.wait()
        waiter = asyncio.create_task(_one_query(db))
        await asyncio.sleep(0.2)
        during = _scrape()
        release.set()
        await asyncio.gather(holder, waiter)
        after = _scrape()
    assert during["agentlane_db_pool_requests_waiting"] == 1
    assert during["agentlane_db_pool_connections"] == 1
    assert during["agentlane_db_pool_connections_max"] == 1
    assert after["agentlane_db_pool_requests_waiting"] == 0
    assert after["agentlane_db_pool_requests_total"] >= 5
    assert after["agentlane_db_pool_requests_queued_total"] >= 1
    assert after["agentlane_db_pool_request_wait_seconds_total"] >= 0.15
    # A closed pool leaves the metrics.
    assert _scrape() == {}


async def _one_query(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute("SELECT 1")

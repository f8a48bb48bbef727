"""The horizon-age metric as a least-privilege role sees it (issue 13, bug 5).

``pg_stat_activity`` hides other roles' transaction ids from a role without
``pg_read_all_stats``: asking it alone, the projector's role read an age of 0 while a transaction
held every tail reader back."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg import sql

from agentlane.db import Database, open_database
from agentlane.store import HorizonWatch


async def _watch(url: str, *, for_s: float) -> list[float]:
    async with open_database(url, name="watcher", min_size=1, max_size=1) as watcher_db:
        watch = HorizonWatch(watcher_db)
        ages = []
        for _ in range(int(for_s / 0.2)):
            ages.append(await watch.age_s())
            await asyncio.sleep(0.2)
        return ages


async def test_a_role_without_monitoring_rights_sees_the_horizon_held(
    db: Database, database_url: str
) -> None:
    role = "horizon_watcher"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    watcher_url = psycopg.conninfo.make_conninfo(database_url, user=role)
    try:
        # Nothing holds the horizon: 0.
        assert max(await _watch(watcher_url, for_s=0.6)) == 0.0
        # Another role's transaction holds an id for about 1.5 s.
        async with db.transaction() as holder:
            await holder.execute("SELECT pg_current_xact_id()")
            ages = await _watch(watcher_url, for_s=1.6)
        assert ages[-1] >= 1.0, ages
        assert ages == sorted(ages), "the age grows while the same transaction holds it"
        assert max(await _watch(watcher_url, for_s=0.4)) == 0.0, "released: back to 0"
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))

"""A tenant with a deep backlog does not delay another tenant's run beyond a dispatch round: a
real runner process (the test workflow of ``harness.py``) with 4 slots, tenant A's 200 queued
runs, then one run of tenant B."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.fixtures.processes import stop_all
from tests.runners_process.harness import ATTEMPTS_DDL, runner_env, spawn_runner, work_message
from tests.runners_process.journal_checks import scalar, wait_for

BACKLOG = 200


def _completed(url: str, tenant: str) -> int:
    return int(scalar(
        url, "SELECT count(*) FROM agent_events WHERE event_type = 'Completed' AND tenant_id = %s",
        (tenant,),
    ))


async def _start(url: str, tenant: str, runs: int, message: str) -> None:
    async with open_database(url, name="test-commands", min_size=1, max_size=8) as db:
        commands = Commands(EventStore(db, shards=TEST_SHARDS), RunIndex(db))
        await asyncio.gather(*(
            commands.start_run(tenant_id=tenant, session_id=f"{tenant}-{n}", run_id=f"r{n}",
                               message=message)
            for n in range(runs)
        ))


@pytest.mark.slow
def test_a_deep_backlog_does_not_delay_another_tenants_run(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(ATTEMPTS_DDL)
    asyncio.run(_start(database_url, "a", BACKLOG, work_message(steps=1, step_s=0.3)))
    runner = spawn_runner(
        "runner", runner_env(database_url, "runner"), tmp_path,
        args=("--max-concurrent-runs", "4"),
    )
    try:
        wait_for(lambda: _completed(database_url, "a") >= 1, 60, "tenant a's first run", [runner])
        asyncio.run(_start(database_url, "b", 1, work_message(steps=1, step_s=0.05)))
        wait_for(lambda: _completed(database_url, "b") == 1, 60, "tenant b's run", [runner])
        # Oldest-first dispatch served all of a's backlog before b's run (about 15 s of a's
        # work); in turns, b's run took a slot within a round or two of a's 0.3 s steps.
        done_before_b = _completed(database_url, "a")
        assert done_before_b <= 20, f"{done_before_b} of a's runs finished before b's one"
    finally:
        stop_all([runner])

"""A run past its wall-time deadline is cancelled by the runner that owns it, working or waiting:
a real runner process (the test workflow of ``harness.py``), runs accepted with a 2 s cap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from agentlane.commands import BudgetCap, Commands
from agentlane.db import open_database
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.fixtures.processes import stop_all
from tests.runners_process.harness import ATTEMPTS_DDL, runner_env, spawn_runner, work_message
from tests.runners_process.journal_checks import metric, query, wait_for


async def _start(url: str, runs: dict[str, str]) -> None:
    async with open_database(url, name="test-commands", min_size=1, max_size=4) as db:
        commands = Commands(EventStore(db, shards=TEST_SHARDS), RunIndex(db),
                            budget_cap=BudgetCap(seconds=2))
        for session, message in runs.items():
            await commands.start_run(tenant_id="t", session_id=session, run_id=session,
                                     message=message)


@pytest.mark.slow
def test_runs_past_their_deadline_are_cancelled_working_or_waiting(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(ATTEMPTS_DDL)
    asyncio.run(_start(database_url, {
        "working": work_message(steps=1, step_s=60),  # inside a 60 s activity
        "waiting": work_message(steps=1, sleep_s=60),  # on a 60 s durable timer
        "quick": work_message(steps=1, step_s=0.05),  # done long before its deadline
    }))
    runner = spawn_runner("runner", runner_env(database_url, "runner"), tmp_path)
    try:
        def ended() -> dict[str, tuple[str, str]]:
            rows = query(
                database_url,
                "SELECT session_id, event_type, coalesce(payload ->> 'reason', '') "
                "FROM agent_events WHERE event_type IN ('Completed', 'Cancelled', 'Failed')",
            )
            return {row[0]: (row[1], row[2]) for row in rows}

        wait_for(lambda: len(ended()) == 3, 60, "all three runs to end", [runner])
        outcome = ended()
        assert outcome["quick"][0] == "Completed"
        for session in ("working", "waiting"):
            assert outcome[session][0] == "Cancelled", outcome
            assert outcome[session][1].startswith("deadline"), outcome
        assert metric(runner, "agentlane_runner_runs_expired_total") == 2
    finally:
        stop_all([runner])

"""A tenant's cap on unfinished runs is the database's: racing starts from several processes,
whatever door they came through, never leave more runs than the cap, and a retry of an accepted
run is answered, not refused."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import psycopg
import pytest

from agentlane.commands import Commands
from agentlane.db import Connection, Database
from agentlane.errors import TooManyActiveRuns
from agentlane.run_index import ActiveRunCap, RunIndex
from agentlane.store import EventStore
from tests.core.cap_racer import TENANT

CAP = 7


def _written(database_url: str, tenant: str) -> tuple[int, int]:
    """(runs in the work index, RunAccepted events) of ``tenant``."""
    with psycopg.connect(database_url) as conn:
        indexed = conn.execute(
            "SELECT count(*) FROM run_index WHERE tenant_id = %s", (tenant,)
        ).fetchone()
        accepted = conn.execute(
            "SELECT count(*) FROM agent_events WHERE tenant_id = %s AND event_type = 'RunAccepted'",
            (tenant,),
        ).fetchone()
    assert indexed is not None and accepted is not None
    return int(indexed[0]), int(accepted[0])


@pytest.mark.slow
def test_racing_processes_never_exceed_the_cap(database_url: str) -> None:
    """Four processes start 20 runs each in the same instant: a read-then-write cap lets dozens
    through (every start reads the count before any commits); exactly CAP get in."""
    start_at = time.time() + 3.0
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.core.cap_racer", database_url, f"p{i}", "20", str(CAP),
             str(start_at)],
            stdout=subprocess.PIPE, text=True,
        )
        for i in range(4)
    ]
    results = [json.loads(racer.communicate(timeout=120)[0]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert sum(r["accepted"] for r in results) == CAP, results
    assert sum(r["refused"] for r in results) == 80 - CAP
    assert _written(database_url, TENANT) == (CAP, CAP)


@pytest.mark.parametrize("on_conflict", ["enqueue", "reject"])
async def test_racing_starts_in_one_process_never_exceed_the_cap(
    store: EventStore, commands: Commands, database_url: str, on_conflict: str
) -> None:
    """Both write paths hold the cap: the group-committed enqueue and the per-run transaction of
    ``reject``/``interrupt``."""
    capped = Commands(store, commands.runs, cap=ActiveRunCap(3, 2.0))

    async def start(n: int) -> str:
        try:
            await capped.start_run(
                tenant_id="t", session_id=f"s{n}", run_id=f"r{n}", message="m",
                on_conflict=on_conflict,  # type: ignore[arg-type]
            )
        except TooManyActiveRuns as refused:
            assert refused.retry_after_s == 2.0 and refused.code == "too_many_active_runs"
            return "refused"
        return "accepted"

    outcomes = await asyncio.gather(*(start(n) for n in range(30)))
    assert outcomes.count("accepted") == 3
    assert _written(database_url, "t") == (3, 3)
    # Another tenant is not touched by t's cap.
    await capped.start_run(tenant_id="u", session_id="s", run_id="r", message="m")


async def test_a_retry_at_the_cap_gets_its_run_and_an_ended_run_frees_a_place(
    store: EventStore, commands: Commands, database_url: str
) -> None:
    capped = Commands(store, commands.runs, cap=ActiveRunCap(2, 1.0))
    first = await capped.start_run(tenant_id="t", session_id="s1", run_id="r1", message="m")
    await capped.start_run(tenant_id="t", session_id="s2", run_id="r2", message="m")
    with pytest.raises(TooManyActiveRuns):
        await capped.start_run(tenant_id="t", session_id="s3", run_id="r3", message="m")
    again = await capped.start_run(tenant_id="t", session_id="s1", run_id="r1", message="m")
    assert (again.execution_id, again.created) == (first.execution_id, False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM run_index WHERE execution_id = %s", (first.execution_id,))
    third = await capped.start_run(tenant_id="t", session_id="s3", run_id="r3", message="m")
    assert third.created


async def test_a_start_waits_for_a_racing_start_of_its_tenant_then_counts_it(
    db: Database,
) -> None:
    """Two transactions each index a run of tenant t (cap 1). Under READ COMMITTED neither sees
    the other's row, so without the tenant's lock both would count 1 and commit; with it, the
    second waits for the first to commit, then counts 2 and fails, writing nothing."""
    cap = {"t": ActiveRunCap(1, 1.0)}

    async def index(conn: Connection, n: int) -> None:
        await RunIndex.enqueue(
            conn, execution_id=f"ex_{n}", tenant_id="t", session_id=f"s{n}", run_id=f"r{n}",
            shard_id=0, accepted_seq=1,
        )
        await RunIndex.hold_caps(conn, cap)

    async with db.transaction() as first:
        await index(first, 1)

        async def second() -> None:
            async with db.transaction() as conn:
                await index(conn, 2)

        racing = asyncio.create_task(second())
        done, _ = await asyncio.wait({racing}, timeout=0.5)
        assert not done, "the second start counted without waiting for the first"
    with pytest.raises(TooManyActiveRuns):
        await racing
    async with db.connection() as conn:
        rows = await (await conn.execute("SELECT execution_id FROM run_index")).fetchall()
    assert rows == [("ex_1",)]

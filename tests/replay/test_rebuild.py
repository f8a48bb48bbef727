"""``replay rebuild`` while writers keep appending: the swapped-in read models equal a fresh fold
of the events up to the checkpoint they were rebuilt to, and ``verify`` agrees afterwards."""

from __future__ import annotations

import asyncio
import os
import sys

import psycopg

from agentlane.commands import Commands
from agentlane.db import Database
from agentlane.folds import fold_run, fold_session
from agentlane.readmodels import ReadModels
from agentlane.records import NewEvent
from agentlane.replay.parallel import run_verify
from agentlane.store import Checkpoints, EventStore
from agentlane.store.audit import EventFilter
from tests.conftest import TEST_SHARDS
from tests.replay.conftest import Seeded, write_run


async def test_rebuild_while_writes_continue(
    commands: Commands, store: EventStore, db: Database, seeded: Seeded, database_url: str
) -> None:
    url = database_url
    stop = asyncio.Event()
    written = 0

    async def writer(session: str) -> None:
        nonlocal written
        number = 0
        while not stop.is_set():
            number += 1
            ex = await write_run(commands, "default", session, f"{session}-{number}", tokens=2)
            await store.append(NewEvent("default", session, "CancelRequested", {}, ex))
            written += 1
            await asyncio.sleep(0.05)  # a steady trickle, not a flood the fold check must re-read

    writers = [asyncio.create_task(writer(f"w{i}")) for i in range(3)]
    await asyncio.sleep(0.3)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentlane.cli", "replay", "rebuild",
        env={"PATH": os.environ["PATH"], "DATABASE_URL": url,
             "AGENTLANE_SHARDS": str(TEST_SHARDS), "AGENTLANE_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=90)
    before_stop = written
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*writers)
    assert child.returncode == 0, err.decode()
    assert out.decode().startswith("rebuilt the read models from ")
    assert before_stop > 0 and written > before_stop  # writes ran during and after the rebuild

    # Independently of verify: every session and run in the read models is the fold of exactly
    # the events up to the checkpoint the rebuild set (per stream: up to its highest seq there).
    position = (await Checkpoints(db).position("read_models")).checkpoint
    with psycopg.connect(url) as conn:
        streams = conn.execute(
            "SELECT tenant_id, session_id, max(seq) FROM agent_events "
            "WHERE (tx_id, event_id) <= (%s::text::xid8, %s) GROUP BY 1, 2",
            (str(position.tx_id), position.event_id),
        ).fetchall()
        total_sessions = conn.execute("SELECT count(*) FROM read_sessions").fetchone()
    assert total_sessions is not None and total_sessions[0] == len(streams)
    for tenant, session, upto in streams:
        stream = await store.read_session(tenant, session, limit=10_000)
        events = [e for e in stream if e.seq <= upto]
        assert await ReadModels(db).get_session(tenant, session) == fold_session(events)
        for ex in {e.execution_id for e in events if e.execution_id}:
            assert await ReadModels(db).get_run(tenant, ex) == fold_run(
                [e for e in events if e.execution_id == ex]
            )

    found: list[str] = []
    outcome = run_verify(
        url, EventFilter(), jobs=1, report=lambda m: found.append(m.describe()),
        advance=lambda n: None,
    )
    assert found == [] and outcome.summary.mismatches == 0

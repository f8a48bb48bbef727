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
from agentlane.sharding import shard_for
from agentlane.store import Checkpoints, EventStore
from agentlane.store.audit import EventFilter
from tests.conftest import TEST_SHARDS
from tests.replay.conftest import Seeded, replay, write_run


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


async def test_rebuild_recreates_the_stream_heads_and_the_run_index_from_events(
    commands: Commands, db: Database, seeded: Seeded, database_url: str
) -> None:
    unfinished = [
        seeded.runs[("default", "s2")][1],
        await write_run(commands, "default", "s3", "r5", end=None),
        await write_run(commands, "acme", "s9", "r6", end=None),
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        expected_heads = conn.execute(_HEADS).fetchall()
        # The engine's own state of a run waiting for a signal: kept as it is.
        conn.execute(
            "UPDATE run_index SET status = 'suspended', wake_at = NULL WHERE execution_id = %s",
            (unfinished[0],),
        )
        conn.execute("DELETE FROM run_index WHERE execution_id = %s", (unfinished[1],))
        conn.execute(
            "UPDATE run_index SET shard_id = (shard_id + 1) %% %s WHERE execution_id = %s",
            (TEST_SHARDS, unfinished[2]),
        )
        conn.execute(
            "INSERT INTO run_index (execution_id, tenant_id, session_id, run_id, shard_id, "
            "accepted_seq, status, wake_at) VALUES ('ex_ghost', 'default', 's1', 'g', 0, 99, "
            "'queued', now())"
        )
        conn.execute("DELETE FROM agent_stream_heads WHERE session_id = 's1'")  # both tenants'
        conn.execute("UPDATE agent_stream_heads SET last_seq = 1 WHERE session_id = 's2'")
        conn.execute(
            "INSERT INTO agent_stream_heads (tenant_id, session_id, last_seq, last_hash) "
            "VALUES ('default', 'no-events', 3, '\\x00')"
        )
    result = await asyncio.to_thread(replay, database_url, "rebuild")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.strip().endswith(
        "stream heads: 3 repaired, 1 removed; run index: 1 added, 1 fixed, 5 removed"
    ), out
    with psycopg.connect(database_url) as conn:
        assert conn.execute(_HEADS).fetchall() == expected_heads
        rows = conn.execute(
            "SELECT execution_id, shard_id, status, wake_at IS NULL FROM run_index"
        ).fetchall()
    shards = {
        ex: shard_for(tenant, session, TEST_SHARDS)
        for (tenant, session), runs in {
            **seeded.runs, ("default", "s3"): [unfinished[1]], ("acme", "s9"): [unfinished[2]],
        }.items()
        for ex in runs
    }
    assert sorted(rows) == sorted([
        (unfinished[0], shards[unfinished[0]], "suspended", True),  # kept as the engine left it
        (unfinished[1], shards[unfinished[1]], "running", False),  # added: due now
        (unfinished[2], shards[unfinished[2]], "queued", False),  # fixed: due now
    ])
    verified = await asyncio.to_thread(replay, database_url, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


_HEADS = (
    "SELECT tenant_id, session_id, last_seq, last_hash FROM agent_stream_heads "
    "ORDER BY tenant_id, session_id"
)

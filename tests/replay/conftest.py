"""Fixtures for the replay CLI: a small history written by the real append path, read models
built by the projector's own rebuild, and a way to run ``agentlane replay`` as a real process."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
import pytest
from psycopg.types.json import Jsonb

from agentlane.commands import Commands
from agentlane.db import Database
from agentlane.hashchain import GENESIS_HASH, chain_hash
from agentlane.records import NewEvent
from agentlane.store import event_hash_input
from agentlane.store.recorder import EVENT_COLUMNS, row_to_event
from tests.conftest import TEST_SHARDS


@dataclass(frozen=True)
class Seeded:
    """What :func:`seeded` wrote: (tenant, session) -> execution ids in order."""

    runs: dict[tuple[str, str], list[str]]


async def write_run(
    commands: Commands,
    tenant: str,
    session: str,
    run_id: str,
    *,
    end: str | None = "Completed",
    tokens: int = 3,
) -> str:
    """One run as a runner journals it (RunAccepted through the command path)."""
    accepted = await commands.start_run(
        tenant_id=tenant, session_id=session, run_id=run_id, message=f"ask {run_id}"
    )
    ex = accepted.execution_id
    events = [NewEvent(tenant, session, "RunStarted", {"workflow": "agent", "version": "1"}, ex)]
    events += [
        NewEvent(tenant, session, "Token", {"text": f"t{i} ", "index": i}, ex)
        for i in range(tokens)
    ]
    if end is not None:
        events += [
            NewEvent(
                tenant, session, "StepCompleted", {"step": 0, "name": "model", "result": 1}, ex
            ),
            NewEvent(
                tenant, session, "Usage",
                {"model": "offline", "inputTokens": 10, "outputTokens": tokens,
                 "costMicros": 10 + 4 * tokens, "priceVersion": "test-1"}, ex,
            ),
        ]
        data = {"answer": f"answer {run_id}"} if end == "Completed" else {"reason": "boom"}
        events.append(NewEvent(tenant, session, end, data, ex))
    for event in events:  # one transaction each, as a runner's steps commit
        await commands.store.append(event)
    return ex


@pytest.fixture
async def seeded(commands: Commands, owner_db: Database) -> Seeded:
    """Three streams in two tenants: finished runs, a failed one, one still running; read models
    rebuilt by the projector so they equal the events."""
    from projector import rebuild_read_models

    runs = {
        ("default", "s1"): [
            await write_run(commands, "default", "s1", "r1"),
            await write_run(commands, "default", "s1", "r2"),
        ],
        ("default", "s2"): [
            await write_run(commands, "default", "s2", "r3"),
            await write_run(commands, "default", "s2", "r4", end=None),
        ],
        ("acme", "s1"): [await write_run(commands, "acme", "s1", "r1", end="Failed")],
    }
    await rebuild_read_models(owner_db)  # an operator's tool: the owner's
    return Seeded(runs)


def replay(
    database_url: str, *args: str, timeout_s: float = 60, extra_env: Mapping[str, str] = {}
) -> subprocess.CompletedProcess[str]:
    """``agentlane replay ARGS`` as a real process, stdout and stderr captured (pipes: no bars)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": database_url,
        "AGENTLANE_SHARDS": str(TEST_SHARDS),
        "AGENTLANE_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-m", "agentlane.cli", "replay", *args],
        env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
    )


def replay_in_process(
    database_url: str, *args: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, str, str]:
    """The same CLI code (router included) in this process: exit code, stdout, stderr.

    Cheaper than a process for tests about output rather than exit codes."""
    from agentlane.cli import main

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AGENTLANE_LOG_LEVEL", "WARNING")
    capsys.readouterr()
    try:
        code = main(["replay", *args])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def tamper(database_url: str, statements: Sequence[str]) -> None:
    """Edit history behind the append-only trigger, as a superuser could."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE agent_events DISABLE TRIGGER agent_events_no_update_delete")
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.execute("ALTER TABLE agent_events ENABLE TRIGGER agent_events_no_update_delete")


def event_id_of(database_url: str, tenant: str, session: str, seq: int) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT event_id FROM agent_events "
            "WHERE tenant_id = %s AND session_id = %s AND seq = %s",
            (tenant, session, seq),
        ).fetchone()
    assert row is not None
    return int(row[0])


def rewrite_history(
    database_url: str, tenant: str, session: str, seq: int, data: dict[str, object]
) -> None:
    """What a superuser can do that the chain alone cannot show: replace one event's data and
    recompute the hash chain after it and the stream head, so ``verify`` agrees again."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM agent_events "
            "WHERE tenant_id = %s AND session_id = %s ORDER BY seq",
            (tenant, session),
        ).fetchall()
        events = [row_to_event(row) for row in rows]
        updates, prev = [], GENESIS_HASH
        for event in events:
            if event.seq == seq:
                event = dataclasses.replace(event, data=data)
            digest = chain_hash(prev, event_hash_input(event))
            updates.append((Jsonb(event.data), prev, digest, event.event_id))
            prev = digest
        with conn.transaction():
            conn.execute(
                "ALTER TABLE agent_events DISABLE TRIGGER agent_events_no_update_delete"
            )
            conn.cursor().executemany(
                "UPDATE agent_events SET payload = %s, prev_hash = %s, hash = %s "
                "WHERE event_id = %s",
                updates,
            )
            conn.execute(
                "ALTER TABLE agent_events ENABLE TRIGGER agent_events_no_update_delete"
            )
            conn.execute(
                "UPDATE agent_stream_heads SET last_hash = %s "
                "WHERE tenant_id = %s AND session_id = %s",
                (prev, tenant, session),
            )

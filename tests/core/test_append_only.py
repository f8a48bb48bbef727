"""Invariant 1: agent_events is append-only in the database; edits behind its back are detected."""

from __future__ import annotations

import psycopg
import pytest

from agentlane.records import NewEvent
from agentlane.store import EventStore


async def seed(store: EventStore) -> None:
    await store.append_batch(
        [NewEvent("t1", "s", "Token", {"text": f"t{i}", "index": i}) for i in range(4)]
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE agent_events SET payload = '{}'",
        "DELETE FROM agent_events WHERE seq = 2",
        "TRUNCATE agent_events",
    ],
)
async def test_update_delete_truncate_fail(
    store: EventStore, database_url: str, statement: str
) -> None:
    await seed(store)
    with psycopg.connect(database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)
    assert len(await store.read_session("t1", "s")) == 4


def behind_the_trigger(database_url: str, statement: str) -> None:
    """What a superuser (or an attacker with one) can still do: disable the trigger and edit."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE agent_events DISABLE TRIGGER agent_events_no_update_delete")
        conn.execute(statement)
        conn.execute("ALTER TABLE agent_events ENABLE TRIGGER agent_events_no_update_delete")


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        (
            'UPDATE agent_events SET payload = \'{"text": "forged", "index": 1}\' WHERE seq = 2',
            "hash does not match",
        ),
        ("DELETE FROM agent_events WHERE seq = 3", "seq 4, expected 3"),
        (
            "UPDATE agent_events SET seq = 1000 WHERE seq = 2;"
            "UPDATE agent_events SET seq = 2 WHERE seq = 3;"
            "UPDATE agent_events SET seq = 3 WHERE seq = 1000",
            "hash does not match",
        ),
        (
            "UPDATE agent_events SET created_at = created_at + interval '1 s' WHERE seq = 1",
            "hash does not match",
        ),
    ],
)
async def test_edits_behind_the_trigger_break_the_chain(
    store: EventStore, database_url: str, statement: str, problem: str
) -> None:
    await seed(store)
    assert await store.check_chain("t1", "s") == []
    behind_the_trigger(database_url, statement)
    problems = await store.check_chain("t1", "s")
    assert any(problem in p.problem for p in problems), problems

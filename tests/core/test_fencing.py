"""Invariant 4 at the store: a stale token or an expired lease is fenced out; nothing is written."""

from __future__ import annotations

import psycopg
import pytest

from agentlane.errors import FencedOut
from agentlane.leases import Fence
from agentlane.records import NewEvent
from agentlane.sharding import shard_for
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS

SESSION = "fenced-session"
SHARD = shard_for("t1", SESSION, TEST_SHARDS)


def claim(database_url: str, runner: str, *, ttl: str = "30 seconds") -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE cluster_shards SET runner_id = %s, lease_token = lease_token + 1, "
            "lease_expires_at = now() + %s::interval WHERE shard_id = %s RETURNING lease_token",
            (runner, ttl, SHARD),
        ).fetchone()
    assert row is not None
    return int(row[0])


def event(i: int) -> NewEvent:
    return NewEvent("t1", SESSION, "Token", {"text": "x", "index": i})


async def test_current_lease_appends(store: EventStore, database_url: str) -> None:
    token = claim(database_url, "runner-a")
    result = await store.append(event(0), fence=Fence(SHARD, "runner-a", token))
    assert result.created and result.event.seq == 1


async def test_stale_token_is_rejected_and_writes_nothing(
    store: EventStore, database_url: str
) -> None:
    old = claim(database_url, "runner-a")
    claim(database_url, "runner-b")  # the lease moved on
    with pytest.raises(FencedOut) as caught:
        await store.append(event(0), fence=Fence(SHARD, "runner-a", old))
    assert caught.value.key == SHARD
    with pytest.raises(FencedOut):
        await store.append_batch([event(1), event(2)], fence=Fence(SHARD, "runner-a", old))
    assert await store.read_session("t1", SESSION) == []
    # The stream head was not advanced either: the next real append is seq 1.
    fresh = await store.append(event(3))
    assert fresh.event.seq == 1


async def test_expired_lease_is_rejected(store: EventStore, database_url: str) -> None:
    token = claim(database_url, "runner-a", ttl="-1 second")
    with pytest.raises(FencedOut):
        await store.append(event(0), fence=Fence(SHARD, "runner-a", token))
    assert await store.read_session("t1", SESSION) == []


async def test_a_fence_for_another_shard_is_refused(store: EventStore, database_url: str) -> None:
    token = claim(database_url, "runner-a")
    with pytest.raises(FencedOut):
        await store.append(event(0), fence=Fence((SHARD + 1) % TEST_SHARDS, "runner-a", token))

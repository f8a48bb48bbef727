"""Invariant 4 for every lease table: one holder at a time, fenced writes, takeover only after
expiry. The same contract runs against the shard leases and the projector lease (one
implementation, parameterised by table)."""

from __future__ import annotations

import time

import pytest

from agentlane.db import Database
from agentlane.errors import FencedOut
from agentlane.leases import PROJECTOR_LEASE, SHARD_LEASES, Leases, LeaseTable, check_fence

KEYS = {SHARD_LEASES.name: [3], PROJECTOR_LEASE.name: ["projector"]}


@pytest.fixture(params=[SHARD_LEASES, PROJECTOR_LEASE], ids=lambda t: t.name)
def table(request: pytest.FixtureRequest) -> LeaseTable:
    return request.param  # type: ignore[no-any-return]


async def expire(db: Database, table: LeaseTable) -> None:
    async with db.connection() as conn:
        await conn.execute(
            f"UPDATE {table.name} SET {table.expires} = now() - interval '1 second' "
            f"WHERE {table.holder} IS NOT NULL"
        )


async def test_one_holder_at_a_time_and_a_deposed_holder_is_fenced_out(
    db: Database, table: LeaseTable
) -> None:
    keys = KEYS[table.name]
    first = Leases(db, table, holder="a", ttl_s=30)
    second = Leases(db, table, holder="b", ttl_s=30)
    sent = time.monotonic()
    [lease] = await first.claim(1, keys=keys)
    assert sent + 25 < lease.deadline <= time.monotonic() + 30, "a conservative local deadline"
    assert await second.claim(1, keys=keys) == [], "a live lease cannot be taken"
    assert set(await first.renew([lease])) == {lease.key}

    await expire(db, table)
    assert await first.renew([lease]) == {}, "an expired lease is not renewed"
    [taken] = await second.claim(1, keys=keys)
    assert taken.token == lease.token + 1, "each claim bumps the fencing token"

    async with db.transaction() as conn:
        await check_fence(conn, taken.fence)
    with pytest.raises(FencedOut) as refused:
        async with db.transaction() as conn:
            await check_fence(conn, lease.fence)
    assert (refused.value.table, refused.value.token) == (table.name, lease.token)

    assert await second.release([taken]) == [taken.key]
    [again] = await first.claim(1, keys=keys)
    assert again.token == lease.token + 2, "a released lease is free at once"


async def test_a_release_of_a_lease_that_moved_frees_nothing(
    db: Database, table: LeaseTable
) -> None:
    keys = KEYS[table.name]
    first = Leases(db, table, holder="a", ttl_s=30)
    [old] = await first.claim(1, keys=keys)
    await expire(db, table)
    [current] = await Leases(db, table, holder="b", ttl_s=30).claim(1, keys=keys)
    assert await first.release([old]) == []
    async with db.transaction() as conn:
        await check_fence(conn, current.fence)


async def test_claims_skip_held_and_avoided_shards(db: Database) -> None:
    a = Leases(db, SHARD_LEASES, holder="a", ttl_s=30)
    b = Leases(db, SHARD_LEASES, holder="b", ttl_s=30)
    mine = await a.claim(4)
    assert [lease.shard_id for lease in mine] == [0, 1, 2, 3]
    theirs = await b.claim(3, avoid=[4, 6])
    assert [lease.shard_id for lease in theirs] == [5, 7, 8]

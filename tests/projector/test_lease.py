"""The projector's leader lease: one holder, fenced batches, takeover only after expiry."""

from __future__ import annotations

import pytest

from agentlane.store import EventStore
from projector.errors import LostLeadership
from projector.lease import LeaderLease


async def test_one_holder_at_a_time_and_a_deposed_leader_is_fenced_out(store: EventStore) -> None:
    first = LeaderLease(store.pool, holder="a", ttl_s=30)
    second = LeaderLease(store.pool, holder="b", ttl_s=30)
    token = await first.try_claim()
    assert token is not None
    assert await second.try_claim() is None, "a live lease cannot be taken"
    await first.renew()

    async with store.pool.connection() as conn:
        await conn.execute("UPDATE projector_lease SET expires_at = now() - interval '1 second'")
    with pytest.raises(LostLeadership):
        await first.renew()
    assert await second.try_claim() == token + 1, "each claim bumps the fencing token"

    async with store.pool.connection() as conn, conn.transaction():
        await second.check(conn)
    with pytest.raises(LostLeadership):
        async with store.pool.connection() as conn, conn.transaction():
            await first.check(conn)

    await second.release()
    assert await first.try_claim() == token + 2, "a released lease is free at once"

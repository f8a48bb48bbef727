"""A projector that stops hands its lease back, even when the stop is cut short mid-release."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg

from agentlane.db import Database
from agentlane.leases import PROJECTOR_LEASE, Leases
from projector.component import LEASE_KEY
from tests.projector.conftest import running_projector


async def test_a_drain_cut_short_mid_release_still_hands_the_lease_back(
    db: Database, database_url: str
) -> None:
    async with running_projector(db, holder="leader", lease_ttl_s=60) as projector:
        assert projector.lease is not None
        async with await psycopg.AsyncConnection.connect(database_url) as blocker:
            # Another session holds the lease row, so the release's UPDATE waits on it.
            await blocker.execute(
                "SELECT 1 FROM projector_lease WHERE name = %s FOR UPDATE", (LEASE_KEY,)
            )
            drain = asyncio.create_task(projector.drain())
            await asyncio.sleep(0.5)
            assert not drain.done(), "the release should be waiting on the row lock"
            drain.cancel()  # the shutdown grace ran out mid-release
            with contextlib.suppress(asyncio.CancelledError):
                await drain
            await blocker.rollback()
        assert projector.lease is not None, "a release that did not return is not forgotten"
    # The exit released it: a standby takes it at once, not after the 60 s TTL.
    standby = Leases(db, PROJECTOR_LEASE, holder="standby", ttl_s=60)
    assert len(await standby.claim(1, keys=[LEASE_KEY])) == 1

"""The delivery contract, run against both buses (``postgres`` and ``pubsub`` on the emulator).

10,000 events over 100 sessions by 8 concurrent writers, some transactions committing late: a live
subscriber receives every event, per session in seq order (repeats dropped by eventId), and the
read models equal a fresh fold of the events.
"""

from __future__ import annotations

import asyncio

from agentlane.db import Database
from tests.projector.conftest import Live, running_projector
from tests.projector.workload import (
    assert_read_models_match_fold,
    assert_session_order,
    collect,
    wait_caught_up,
    write_workload,
)


async def test_every_event_arrives_in_session_order_and_read_models_equal_the_fold(
    live: Live, db: Database
) -> None:
    async with (
        live.bus.subscribe() as subscription,
        running_projector(db, publisher=live.publisher(), batch_size=500),
    ):
        workload = await write_workload(db, events=10_000, sessions=100, writers=8)
        assert len(workload.written) >= 10_000 and workload.late_commits > 50
        received = await collect(subscription, lambda: workload.ids, timeout_s=120)
        assert_session_order(received)
        assert {e.event_id for e in received} == workload.ids
        assert {(e.tenant_id, e.session_id) for e in received} == {
            (e.tenant_id, e.session_id) for e in workload.written
        }
        await wait_caught_up(db, timeout_s=60)
        assert await assert_read_models_match_fold(db) == 500
        if live.pubsub is not None:
            await wait_caught_up(db, timeout_s=30, name="publish")
        # Nothing more arrives: every event was delivered once to the reader.
        await asyncio.sleep(0.5)
        assert subscription._queue.empty()

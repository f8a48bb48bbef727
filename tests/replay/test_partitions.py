"""Parallel verify splits the streams by events, not by count: one long stream gets a worker of
its own instead of leaving the other worker idle."""

from __future__ import annotations

import asyncio

from agentlane.records import NewEvent
from agentlane.store import EventStore
from agentlane.store.audit import EventFilter, partitions, snapshot


async def test_a_long_stream_is_a_share_of_its_own(database_url: str, store: EventStore) -> None:
    await store.append_batch(
        [NewEvent("t", "a-long", "Token", {"text": "x", "index": i}) for i in range(60)]
        + [
            NewEvent("t", f"b{number}", "Token", {"text": "x", "index": i})
            for number in range(6)
            for i in range(5)
        ]
    )

    def split(where: EventFilter, jobs: int) -> list[tuple[object, object]]:
        with snapshot(database_url) as conn:
            return [(part.from_stream, part.to_stream) for part in partitions(conn, where, jobs)]

    # 90 events: the long stream holds two thirds, so the second share starts right after it.
    assert await asyncio.to_thread(split, EventFilter(), 2) == [
        (None, ("t", "b0")), (("t", "b0"), None)
    ]
    # A stream is never split: three shares of 30 events give two ranges, the long one alone.
    assert await asyncio.to_thread(split, EventFilter(), 3) == [
        (None, ("t", "b0")), (("t", "b0"), None)
    ]
    assert await asyncio.to_thread(split, EventFilter(), 9) == [
        (None, ("t", "b0")), (("t", "b0"), ("t", "b2")), (("t", "b2"), ("t", "b4")),
        (("t", "b4"), None),
    ]
    assert await asyncio.to_thread(split, EventFilter(tenant_id="t"), 1) == [(None, None)]
    assert await asyncio.to_thread(split, EventFilter(tenant_id="nobody"), 4) == [(None, None)]

"""Subscription.get_batch: a consumer that fell behind takes what is queued in one go, in order,
never waits for more than one event, and still sees the bus's failure, after the events queued
before it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentlane.bus.base import Subscription
from agentlane.records import StoredEvent


def _event(event_id: int) -> StoredEvent:
    return StoredEvent(event_id, event_id, "t", "s", None, "Token", {}, datetime.now(UTC))


@given(queued=st.integers(1, 50), limit=st.integers(1, 20), fail=st.booleans())
def test_batches_are_the_queue_in_order_then_the_failure(
    queued: int, limit: int, fail: bool
) -> None:
    async def scenario() -> None:
        subscription = Subscription()
        for event_id in range(1, queued + 1):
            await subscription.put(_event(event_id))
        if fail:
            await subscription.fail(ConnectionError("bus lost"))
        got: list[int] = []
        while len(got) < queued:
            batch = await subscription.get_batch(limit)
            assert 1 <= len(batch) <= limit
            got += [e.event_id for e in batch]
        assert got == list(range(1, queued + 1))
        if fail:
            for _ in range(2):  # and it stays failed
                with pytest.raises(ConnectionError):
                    await subscription.get_batch(limit)
        else:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(subscription.get_batch(limit), 0.01)

    asyncio.run(scenario())

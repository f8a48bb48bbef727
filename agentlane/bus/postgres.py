"""The ``postgres`` bus: the gap-safe global tail, woken by LISTEN/NOTIFY, for one machine.

Every subscription follows ``agent_events`` itself (a :class:`~agentlane.store.Follower`) from the
position current when it subscribed, so delivery needs no projector; NOTIFY only wakes it and a
poll covers a lost notification. Each session's events are put back in ``seq`` order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator

from agentlane.bus.base import Subscription
from agentlane.errors import StoreUnavailable
from agentlane.records import Checkpoint, TailedEvent
from agentlane.store import EventStore, Follower, Tail, in_memory
from agentlane.store.ordering import SessionKey, in_seq_order, session_key

logger = logging.getLogger(__name__)


class PostgresBus:
    """Live delivery straight from the event store (``AGENTLANE_BUS=postgres``)."""

    name = "postgres"

    def __init__(
        self,
        store: EventStore,
        tail: Tail,
        *,
        batch: int = 1000,
        poll_s: float = 1.0,
        queue_size: int = 10_000,
        tracked_sessions: int = 100_000,
    ) -> None:
        self._store = store
        self._tail = tail
        self.batch = batch
        self.poll_s = poll_s
        self.queue_size = queue_size
        self.tracked_sessions = tracked_sessions

    @contextlib.asynccontextmanager
    async def subscribe(self, *, after: Checkpoint | None = None) -> AsyncIterator[Subscription]:
        """Events committed after this call (or after ``after``), until the context exits."""
        subscription = Subscription(capacity=self.queue_size)
        start = after if after is not None else await self._tail.live_position()
        # Last seq delivered per session. Bounded: a session not tracked (new since the start, or
        # forgotten) resumes after its highest seq at or before the batch's position, which
        # everything up to that position has already delivered or predates the subscription.
        heads: OrderedDict[SessionKey, int] = OrderedDict()

        async def deliver(batch: list[TailedEvent], after: Checkpoint) -> None:
            events = [t.event for t in batch]
            untracked = {session_key(event) for event in events} - heads.keys()
            if untracked:
                heads.update(await self._store.heads_at(untracked, after))
            ordered = await in_seq_order(self._store, events, heads)
            for key, events in ordered.items():
                for event in events:
                    await subscription.offer(event)
                heads[key] = events[-1].seq
                heads.move_to_end(key)
            while len(heads) > self.tracked_sessions:
                heads.popitem(last=False)

        follower = Follower(
            self._tail,
            deliver,
            name="postgres bus",
            resume=in_memory(start),
            batch_size=self.batch,
            poll_s=self.poll_s,
            retry_on=(StoreUnavailable,),
        )
        async with asyncio.TaskGroup() as group:
            task = group.create_task(self._pump(follower, subscription), name="pg-bus")
            try:
                yield subscription
            finally:
                task.cancel()

    @staticmethod
    async def _pump(follower: Follower, subscription: Subscription) -> None:
        try:
            await follower.run()
        except Exception as exc:
            logger.exception("postgres bus: delivery stopped")
            await subscription.fail(exc)

"""The ``postgres`` bus: the gap-safe global tail, woken by LISTEN/NOTIFY, for one machine.

Every subscription tails ``agent_events`` itself from the position current when it subscribed, so
delivery needs no projector; NOTIFY only wakes it and a poll covers a lost notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator

from agentlane.bus.base import Subscription
from agentlane.bus.ordering import SessionKey, in_seq_order
from agentlane.db import Backoff
from agentlane.errors import StoreUnavailable
from agentlane.records import Checkpoint
from agentlane.store import EventStore, Wakeups

logger = logging.getLogger(__name__)


class PostgresBus:
    """Live delivery straight from the event store (``AGENTLANE_BUS=postgres``)."""

    name = "postgres"

    def __init__(
        self,
        store: EventStore,
        database_url: str,
        *,
        batch: int = 1000,
        poll_s: float = 1.0,
        queue_size: int = 10_000,
        tracked_sessions: int = 100_000,
    ) -> None:
        self.store = store
        self.database_url = database_url
        self.batch = batch
        self.poll_s = poll_s
        self.queue_size = queue_size
        self.tracked_sessions = tracked_sessions

    @contextlib.asynccontextmanager
    async def subscribe(self, *, after: Checkpoint | None = None) -> AsyncIterator[Subscription]:
        """Events committed after this call (or after ``after``), until the context exits."""
        subscription = Subscription(capacity=self.queue_size)
        start = after if after is not None else await self.store.live_checkpoint()
        async with Wakeups(self.database_url) as wakeups, asyncio.TaskGroup() as group:
            task = group.create_task(self._pump(subscription, wakeups, start), name="pg-bus")
            try:
                yield subscription
            finally:
                task.cancel()

    async def _pump(self, subscription: Subscription, wakeups: Wakeups, start: Checkpoint) -> None:
        try:
            await self._tail(subscription, wakeups, start)
        except Exception as exc:
            logger.exception("postgres bus: delivery stopped")
            await subscription.fail(exc)

    async def _tail(self, subscription: Subscription, wakeups: Wakeups, start: Checkpoint) -> None:
        position = start
        # Last seq delivered per session (bounded: a forgotten session restarts at its next event).
        heads: OrderedDict[SessionKey, int] = OrderedDict()
        backoff = Backoff(initial_s=0.2, maximum_s=5.0)
        while True:
            try:
                tailed = await self.store.read_tail(position, limit=self.batch)
                if tailed:
                    async with self.store.pool.connection() as conn:
                        ordered = await in_seq_order(
                            conn, [t.event for t in tailed], heads, unknown_head=None
                        )
            except StoreUnavailable as exc:
                logger.warning("postgres bus: store unavailable (%s); retrying", exc)
                await backoff.sleep()
                continue
            backoff.reset()
            if not tailed:
                await wakeups.wait(self.poll_s)
                continue
            for key, events in ordered.items():
                for event in events:
                    await subscription.offer(event)
                heads[key] = events[-1].seq
                heads.move_to_end(key)
            while len(heads) > self.tracked_sessions:
                heads.popitem(last=False)
            position = tailed[-1].position
            if len(tailed) < self.batch:
                await wakeups.wait(self.poll_s)

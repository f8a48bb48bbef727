"""What every bus offers: a subscription to the live events of every session.

A :class:`Subscription` yields each event once (redeliveries are dropped by ``eventId``) and, per
session, in ``seq`` order. It is live-only: the gateway reads history from the store.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from agentlane.records import StoredEvent


class Deduper:
    """Remembers the last ``capacity`` event ids; ``first_time(id)`` is False for a repeat."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[int, None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, event_id: int) -> bool:
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            self.duplicates += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def forget(self, event_id: int) -> None:
        """Undo ``first_time`` for an event whose handling failed: its redelivery is no repeat."""
        self._seen.pop(event_id, None)


class Subscription:
    """Live events from a bus, through a bounded queue filled by the bus's background task."""

    def __init__(self, *, capacity: int = 10_000, dedupe_capacity: int = 100_000) -> None:
        self._queue: asyncio.Queue[StoredEvent | BaseException] = asyncio.Queue(capacity)
        self.deduper = Deduper(dedupe_capacity)
        #: The failure a batch stopped at, raised by the next read.
        self._failure: BaseException | None = None

    @property
    def duplicates(self) -> int:
        """Redeliveries dropped so far."""
        return self.deduper.duplicates

    async def offer(self, event: StoredEvent) -> bool:
        """Queue an event unless it was delivered before (waits while the queue is full)."""
        if not self.deduper.first_time(event.event_id):
            return False
        await self.put(event)
        return True

    async def put(self, event: StoredEvent) -> None:
        """Queue an event the caller has already checked with :attr:`deduper`."""
        await self._queue.put(event)

    async def fail(self, error: BaseException) -> None:
        """End the subscription: once the queued events are read, ``get`` raises ``error``."""
        await self._queue.put(error)

    async def get(self) -> StoredEvent:
        if self._failure is not None:
            raise self._failure
        item = await self._queue.get()
        if isinstance(item, BaseException):
            self._failure = item  # every later read fails too, rather than wait forever
            raise item
        return item

    async def get_batch(self, limit: int = 1000) -> list[StoredEvent]:
        """The next event and those already queued behind it (at most ``limit``), without
        waiting for more: a consumer that fell behind catches up a batch at a time."""
        batch = [await self.get()]
        while len(batch) < limit:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if isinstance(item, BaseException):
                self._failure = item
                break
            batch.append(item)
        return batch

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StoredEvent:
        return await self.get()


class EventBus(Protocol):
    """Live fan-out of committed events: ``pubsub`` or ``postgres`` (``AGENTLANE_BUS``)."""

    name: str

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """A live subscription, from now on, until the context exits."""
        ...

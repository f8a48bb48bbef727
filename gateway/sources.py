"""Live sources: where a gateway process learns of new events (one per process, never per socket).

- :class:`PostgresSource`: the gap-safe global tail of the event store, woken by LISTEN/NOTIFY.
  It does not depend on the projector at all.
- :class:`BusSource`: the projector's bus, i.e. with Pub/Sub this process's own subscription on
  the fan-out topic (ordering enabled, expiring if the process dies without deleting it, deleted
  on shutdown).

Either may deliver late, twice or out of order; :class:`gateway.handoff.SessionFeed` turns that
into each event once, in ``seq`` order, filling gaps from Postgres.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from agentlane.bus import EventBus
from agentlane.db import Backoff
from agentlane.errors import StoreError
from agentlane.records import Checkpoint
from agentlane.store import EventStore, Wakeups
from gateway.hub import Hub, LiveEvent
from gateway.metrics import LIVE_EVENTS

logger = logging.getLogger(__name__)


class LiveSource(Protocol):
    """Feeds the hub until cancelled; ``ready`` once it delivers everything from now on."""

    name: str
    ready: asyncio.Event

    async def run(self, hub: Hub) -> None: ...


class PostgresSource:
    """The gap-safe tail from "now", dispatched by ``(tenant, session)``."""

    name = "postgres"

    def __init__(
        self, store: EventStore, database_url: str, *, batch: int = 1000, poll_s: float = 1.0
    ) -> None:
        self._store = store
        self._url = database_url
        self._batch = batch
        self._poll_s = poll_s
        self.ready = asyncio.Event()

    async def run(self, hub: Hub) -> None:
        backoff = Backoff(initial_s=0.2, maximum_s=5.0)
        position: Checkpoint | None = None
        async with Wakeups(self._url) as wakeups:
            while True:
                try:
                    if position is None:
                        position = await self._store.live_checkpoint()
                        self.ready.set()
                    events = await self._store.read_tail(position, limit=self._batch)
                except StoreError as exc:
                    logger.warning("live tail failed; retrying: %s", exc)
                    await backoff.sleep()
                    continue
                backoff.reset()
                if events:
                    position = events[-1].position
                    LIVE_EVENTS.labels(self.name).inc(len(events))
                    hub.publish_stored(tailed.event for tailed in events)
                    if len(events) == self._batch:
                        continue
                await wakeups.wait(self._poll_s)


class BusSource:
    """Any :class:`agentlane.bus.EventBus` (the projector's Pub/Sub topic through this process's
    own subscription, created at start and deleted on shutdown) feeding the hub.

    If the subscription fails it is replaced, and every socket then re-reads the store once:
    whatever was published in between is never waited for.
    """

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.name = bus.name
        self.ready = asyncio.Event()

    async def run(self, hub: Hub) -> None:
        backoff = Backoff(initial_s=0.5, maximum_s=10.0)
        while True:
            try:
                async with self._bus.subscribe() as subscription:
                    self.ready.set()
                    hub.resync()
                    logger.info("live source subscribed", extra={"bus": self.name})
                    async for event in subscription:
                        backoff.reset()
                        LIVE_EVENTS.labels(self.name).inc()
                        if hub.wants(event.tenant_id, event.session_id):
                            hub.publish(LiveEvent.of(event))
            except Exception as exc:  # any failure: resubscribe, never stream silently stale
                logger.warning("live source failed; resubscribing: %r", exc)
            self.ready.clear()
            await backoff.sleep()

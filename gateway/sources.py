"""Where a gateway process learns of new events: one live source per process, never per socket.

:class:`BusSource` feeds the hub from any :class:`agentlane.bus.EventBus`: the ``postgres`` bus
(the gap-safe global tail, woken by LISTEN/NOTIFY; it does not depend on the projector) or
``pubsub`` (this process's own subscription on the projector's topic: ordering enabled, expiring
if the process dies without deleting it, deleted on shutdown). The bus contract suite
(``tests/projector/test_delivery.py``) runs against both.

A bus may still deliver late (a resubscription); :class:`gateway.handoff.SessionFeed` turns
whatever arrives into each event once, in ``seq`` order, filling gaps from Postgres.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from agentlane.backoff import Backoff
from agentlane.bus import EventBus
from gateway.hub import Hub, LiveEvent, StreamKey
from gateway.metrics import GatewayMetrics

logger = logging.getLogger(__name__)


class LiveSource(Protocol):
    """Feeds the hub until cancelled; ``ready`` once it delivers everything from now on."""

    name: str
    ready: asyncio.Event

    async def run(self, hub: Hub) -> None: ...


class BusSource:
    """A bus subscription feeding the hub.

    If the subscription fails it is replaced, and every socket then re-reads the store once:
    whatever was committed in between is never waited for.
    """

    def __init__(self, bus: EventBus, metrics: GatewayMetrics) -> None:
        self._bus = bus
        self._live_events = metrics.live_events.labels(bus.name)
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
                    while True:
                        batch = await subscription.get_batch()
                        backoff.reset()
                        self._live_events.inc(len(batch))
                        streams: dict[StreamKey, list[LiveEvent]] = {}
                        for event in batch:
                            key = (event.tenant_id, event.session_id)
                            if hub.wants(*key):
                                streams.setdefault(key, []).append(LiveEvent.of(event))
                        for events in streams.values():
                            hub.publish_stream(events)
            except Exception as exc:  # any failure: resubscribe, never stream silently stale
                logger.warning("live source failed; resubscribing: %r", exc)
            self.ready.clear()
            await backoff.sleep()

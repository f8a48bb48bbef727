"""Live event delivery behind one interface: ``pubsub`` (the projector's topic) or ``postgres``.

    async with bus.subscribe() as subscription:
        async for event in subscription:   # each event once, per session in seq order
            ...

:func:`bus_for` builds the bus ``AGENTLANE_BUS`` names; the contract suite
(``tests/projector/test_delivery.py``) runs against both.
"""

from agentlane.bus.base import Deduper, EventBus, Subscription
from agentlane.bus.clients import pubsub_project
from agentlane.bus.codec import attributes, decode, encode, ordering_key
from agentlane.bus.errors import BusError, BusUnavailable
from agentlane.bus.postgres import PostgresBus
from agentlane.bus.pubsub import PubSubBus, PubSubConsumer, ensure_subscription
from agentlane.settings import Settings
from agentlane.store import EventStore, Tail


def bus_for(
    settings: Settings, store: EventStore, tail: Tail, *, subscription_prefix: str
) -> EventBus:
    """The bus ``settings.bus`` names: Pub/Sub subscriptions named ``subscription_prefix…``, or
    the postgres tail through ``store`` and ``tail``."""
    if settings.bus == "pubsub":
        return PubSubBus(
            project=pubsub_project(settings),
            topic=settings.topic,
            emulator_host=settings.pubsub_emulator_host,
            subscription_prefix=subscription_prefix,
        )
    return PostgresBus(store, tail)


__all__ = [
    "BusError",
    "BusUnavailable",
    "Deduper",
    "EventBus",
    "PostgresBus",
    "PubSubBus",
    "PubSubConsumer",
    "Subscription",
    "attributes",
    "bus_for",
    "decode",
    "encode",
    "ensure_subscription",
    "ordering_key",
    "pubsub_project",
]

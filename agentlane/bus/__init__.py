"""Live event delivery behind one interface: ``pubsub`` (the projector's topic) or ``postgres``.

    async with bus.subscribe() as subscription:
        async for event in subscription:   # each event once, per session in seq order
            ...
"""

from agentlane.bus.base import Deduper, EventBus, Subscription
from agentlane.bus.codec import attributes, decode, encode, ordering_key
from agentlane.bus.errors import BusError, BusUnavailable
from agentlane.bus.ordering import in_seq_order, read_seq_range
from agentlane.bus.postgres import PostgresBus
from agentlane.bus.pubsub import PubSubBus, PubSubConsumer, ensure_subscription

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
    "decode",
    "encode",
    "ensure_subscription",
    "in_seq_order",
    "ordering_key",
    "read_seq_range",
]

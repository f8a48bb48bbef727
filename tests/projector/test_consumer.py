"""The Pub/Sub consumer helper: dedupe by eventId, nack on failure, poison messages dropped."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest

from agentlane.bus import PubSubConsumer, attributes, encode, ensure_subscription, ordering_key
from agentlane.bus.clients import publisher_client, subscriber_client
from agentlane.records import StoredEvent
from tests.projector.conftest import PubSubTarget

pytestmark = pytest.mark.pubsub


def event(event_id: int, seq: int) -> StoredEvent:
    return StoredEvent(event_id, seq, "t1", "s1", None, "Token", {"text": "x", "index": seq},
                       datetime.now(UTC))


async def test_each_event_is_handled_once_failures_are_redelivered_and_poison_is_dropped(
    pubsub_target: PubSubTarget,
) -> None:
    subscriber = subscriber_client(pubsub_target.host)
    topic = f"projects/{pubsub_target.project}/topics/{pubsub_target.topic}"
    path = subscriber.subscription_path(pubsub_target.project, f"c-{uuid.uuid4().hex[:8]}")
    await ensure_subscription(subscriber, subscription_path=path, topic_path=topic)
    await ensure_subscription(subscriber, subscription_path=path, topic_path=topic)  # idempotent

    handled: list[int] = []
    failed_once: set[int] = set()

    async def handler(e: StoredEvent) -> None:
        if e.event_id == 2 and e.event_id not in failed_once:
            failed_once.add(e.event_id)
            raise RuntimeError("transient")
        handled.append(e.event_id)

    publisher = publisher_client(pubsub_target.host)
    events = [event(1, 1), event(2, 2), event(3, 3), event(1, 1)]  # the last one is a repeat
    for e in events:
        publisher.publish(topic, encode(e), **attributes(e)).result(timeout=30)
    publisher.publish(topic, b"not json", type="Token").result(timeout=30)
    publisher.stop()

    async with PubSubConsumer(subscriber, path, handler) as consumer:
        for _ in range(300):
            if sorted(handled) == [1, 2, 3] and consumer.poison == 1:
                break
            await asyncio.sleep(0.1)
    subscriber.close()
    assert sorted(handled) == [1, 2, 3], "each event handled exactly once"
    assert consumer.failed == 1 and consumer.duplicates >= 1 and consumer.poison == 1
    assert ordering_key(events[0]) == "t1/s1"
    assert json.loads(encode(events[0]))["eventId"] == 1

"""EventPublisher's sequencing: per ordering key, requests in order, one at a time, within limits.

The property runs against a recording stand-in for the GAPIC client (the sequencing is ours; the
client only carries requests). The emulator test sends the same shape through Google's emulator
and reads it back in order with an ordered subscription.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from hypothesis import given, settings
from hypothesis import strategies as st

from agentlane.records import StoredEvent
from projector import EventPublisher
from projector.errors import PublishFailed
from tests.projector.conftest import PubSubTarget
from tests.projector.workload import assert_session_order, collect


def _events(keys: list[int]) -> list[StoredEvent]:
    """One event per entry, of session ``s<entry>``, seqs counted per session."""
    seqs: dict[int, int] = {}
    events = []
    for event_id, key in enumerate(keys, start=1):
        seqs[key] = seqs.get(key, 0) + 1
        events.append(StoredEvent(
            event_id=event_id, seq=seqs[key], tenant_id="t", session_id=f"s{key}",
            execution_id="e", type="Token",
            data={"text": "x" * (event_id % 7), "index": seqs[key], "step": 0, "attempt": 1},
            created_at=datetime.now(UTC),
        ))
    return events


@dataclass
class RecordingClient:
    """Answers publish requests after a random pause; the second request of a ``failing`` key
    fails (its first went through)."""

    rng: random.Random
    failing: frozenset[str] = frozenset()
    requests: list[Any] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)
    most_in_flight: int = 0
    most_per_key: int = 0
    calls: dict[str, int] = field(default_factory=dict)

    async def publish(self, *, request: Any, retry: Any, timeout: float) -> None:  # noqa: ASYNC109
        key = request.messages[0].ordering_key
        assert all(m.ordering_key == key for m in request.messages), "one key per request"
        self.in_flight[key] = self.in_flight.get(key, 0) + 1
        self.calls[key] = self.calls.get(key, 0) + 1
        self.most_per_key = max(self.most_per_key, self.in_flight[key])
        self.most_in_flight = max(self.most_in_flight, sum(self.in_flight.values()))
        try:
            await asyncio.sleep(self.rng.random() / 1000)
            if key in self.failing and self.calls[key] == 2:
                raise gexc.ServiceUnavailable("emulated outage of one key")  # type: ignore[no-untyped-call]
            self.requests.append(request)
        finally:
            self.in_flight[key] -= 1


def _publisher(client: RecordingClient, **limits: int) -> EventPublisher:
    publisher = EventPublisher(project="p", topic="t", **limits)  # type: ignore[arg-type]
    publisher._client = client  # type: ignore[assignment]
    return publisher


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.integers(0, 5), min_size=1, max_size=80),
    max_messages=st.integers(1, 7),
    max_concurrent=st.integers(1, 4),
    failing=st.frozensets(st.integers(0, 5), max_size=2),
    seed=st.integers(0, 2**16),
)
def test_each_key_is_sent_in_order_one_request_at_a_time_and_a_failed_key_stops(
    keys: list[int], max_messages: int, max_concurrent: int, failing: frozenset[int], seed: int
) -> None:
    events = _events(keys)
    failing_keys = frozenset(f"t/s{k}" for k in failing)
    client = RecordingClient(random.Random(seed), failing_keys)
    publisher = _publisher(client, max_messages=max_messages, max_concurrent=max_concurrent)
    failed_keys = frozenset(
        f"t/s{k}" for k in failing if keys.count(k) > max_messages
    )

    async def publish() -> None:
        await publisher.publish(events)

    if failed_keys:
        with pytest.raises(PublishFailed) as failure:
            asyncio.run(publish())
        assert failure.value.ordering_keys == failed_keys
    else:
        asyncio.run(publish())

    assert client.most_per_key <= 1, "two requests of one key in flight"
    assert client.most_in_flight <= max_concurrent
    sent: dict[str, list[int]] = {}
    for request in client.requests:
        assert 1 <= len(request.messages) <= max_messages
        for message in request.messages:
            sent.setdefault(message.ordering_key, []).append(int(message.attributes["eventId"]))
    expected: dict[str, list[int]] = {}
    for event in events:
        expected.setdefault(f"t/{event.session_id}", []).append(event.event_id)
    # Every key that did not fail went out whole and in order; a failed key sent its first
    # request and nothing after the one that failed.
    assert sent == {
        key: ids[:max_messages] if key in failed_keys else ids for key, ids in expected.items()
    }


def test_requests_are_cut_by_bytes_as_well_as_by_count() -> None:
    client = RecordingClient(random.Random(0))
    events = _events([0] * 10)
    one = _publisher(RecordingClient(random.Random(0)))._messages_by_key(events[:1])["t/s0"][0]
    size = type(one).pb(one).ByteSize()
    asyncio.run(_publisher(client, max_bytes=size * 3 + size // 2).publish(events))
    assert [len(r.messages) for r in client.requests] == [3, 3, 3, 1]


@pytest.mark.pubsub
async def test_small_requests_of_many_keys_arrive_in_session_order(
    pubsub_target: PubSubTarget,
) -> None:
    events = _events([random.Random(7).randrange(12) for _ in range(240)])
    async with pubsub_target.bus().subscribe() as subscription:
        async with pubsub_target.publisher(max_messages=5, max_concurrent=3) as publisher:
            for start in range(0, len(events), 80):
                await publisher.publish(events[start:start + 80])
        received = await collect(
            subscription, lambda: {e.event_id for e in events}, timeout_s=60
        )
    assert_session_order(received)
    assert len(received) == len(events)

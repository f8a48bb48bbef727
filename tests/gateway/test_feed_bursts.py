"""A socket's feed through two overflows in a row (issue 13, bug 4).

A burst overflows the buffer while the sender is busy: the feed re-reads the store. A second
overflow during that re-read (and a ping queued meanwhile) must not be left behind when the re-read
ends with the buffer empty: the rest of the burst would wait for the next ping, and the queued ping
would never be sent (the client then closes on a pong timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from agentlane.records import NewEvent, StoredEvent
from agentlane.store import EventStore
from gateway.handoff import SessionFeed
from gateway.history import HistoryReads
from gateway.hub import LiveEvent
from gateway.metrics import GatewayMetrics
from gateway.protocol import ping_frame

TENANT, SESSION = "t", "s"


async def _append(store: EventStore, count: int) -> list[StoredEvent]:
    return await store.append_batch([
        NewEvent(TENANT, SESSION, "Token", {"text": f"w{i}", "index": i}) for i in range(count)
    ])


async def test_a_second_overflow_during_a_re_read_still_sends_the_rest_and_the_ping(
    store: EventStore,
) -> None:
    sent: list[str] = []
    gate = asyncio.Event()
    gate.set()
    waiting = asyncio.Event()  # set while a send waits at the gate
    progressed = asyncio.Event()  # set on every frame sent

    async def send(frame: str) -> None:
        if json.loads(frame).get("type") == "event":
            while not gate.is_set():
                waiting.set()
                await gate.wait()
            waiting.clear()
        sent.append(frame)
        progressed.set()

    async def until(done: Callable[[], bool]) -> None:
        while not done():
            progressed.clear()
            await progressed.wait()

    reads = HistoryReads(store, GatewayMetrics(CollectorRegistry()), concurrency=2)
    failures: list[BaseException] = []
    feed = SessionFeed(
        reads, tenant_id=TENANT, session_id=SESSION, after_event_id=0, send=send,
        on_failure=failures.append, buffer_size=2, stall_s=60,
    )
    feed.start()
    await asyncio.wait_for(until(lambda: bool(sent)), 5)  # the ready frame
    gate.clear()
    first = await _append(store, 4)
    for event in first:  # e1 blocks in its send; e2, e3 fill the buffer; e4 overflows it
        feed.offer(LiveEvent.of(event))
        await asyncio.sleep(0)
    await asyncio.wait_for(waiting.wait(), 5)
    gate.set()  # e1 goes; the re-read after the overflow sends e2...
    await asyncio.sleep(0)
    gate.clear()  # ...and blocks there
    await asyncio.wait_for(waiting.wait(), 5)
    second = await _append(store, 3)  # committed after the re-read's page was read
    for event in second:  # overflows again, while the re-read is sending
        feed.offer(LiveEvent.of(event))
    feed.send_control(ping_frame(0))
    gate.set()
    expected = [e.event_id for e in [*first, *second]]

    def event_ids() -> list[int]:
        frames = [json.loads(frame) for frame in sent]
        return [f["event"]["eventId"] for f in frames if f["type"] == "event"]

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            until(lambda: event_ids() == expected and ping_frame(0) in sent), 3
        )
    await feed.stop()
    assert event_ids() == expected, "each event once, in order, without waiting for a ping"
    assert ping_frame(0) in sent, "the queued ping was sent"
    assert failures == []

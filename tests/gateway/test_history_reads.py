"""Shared history reads (a reconnect storm): sockets asking for the same history at once share
one Postgres read, and a read whose query has started is never joined, so nobody is handed a
snapshot older than their own subscription."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from agentlane.records import NewEvent, StoredEvent
from agentlane.store import EventStore
from gateway.history import HistoryReads
from gateway.metrics import GatewayMetrics

TENANT, SESSION = "t", "s"


async def _append(store: EventStore, *texts: str) -> list[StoredEvent]:
    return await store.append_batch(
        [NewEvent(TENANT, SESSION, "Token", {"text": t, "index": i}) for i, t in enumerate(texts)]
    )


def _reads(store: EventStore, concurrency: int = 1) -> tuple[HistoryReads, GatewayMetrics]:
    metrics = GatewayMetrics(CollectorRegistry())
    return HistoryReads(store, metrics, concurrency=concurrency), metrics


async def test_a_burst_of_identical_requests_is_one_read(store: EventStore) -> None:
    events = await _append(store, "a", "b", "c")
    reads, metrics = _reads(store)
    histories = await asyncio.gather(
        *(reads.after(TENANT, SESSION, events[0].event_id, 500) for _ in range(50))
    )
    assert metrics.gap_fetches._value.get() == 1
    assert metrics.history_reads_joined._value.get() == 49
    for history in histories:
        assert history.seq_at == events[0].seq
        assert [e.event_id for e in history.events] == [e.event_id for e in events[1:]]
    assert histories[0].events[0] is histories[1].events[0]  # serialised once for all


async def test_the_seq_at_a_position_comes_with_an_empty_page(store: EventStore) -> None:
    events = await _append(store, "a", "b")
    reads, _ = _reads(store)
    history = await reads.after(TENANT, SESSION, events[-1].event_id, 500)
    assert history.seq_at == events[-1].seq and history.events == []
    assert (await reads.after(TENANT, "never-written", 0, 500)).seq_at == 0


async def test_a_read_whose_query_started_takes_no_joiner(store: EventStore) -> None:
    """The second request comes after the first read left the waiting room (its query is about
    to run) and after an event was committed: it must get its own read, with that event."""
    first = await _append(store, "a")
    started, proceed = asyncio.Event(), asyncio.Event()
    real = store.read_history

    async def slow_read(*args: object, **kwargs: object) -> object:
        started.set()
        await proceed.wait()
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    store.read_history = slow_read  # type: ignore[method-assign]
    reads, metrics = _reads(store, concurrency=2)
    early = asyncio.ensure_future(reads.after(TENANT, SESSION, 0, 500))
    await started.wait()
    later_event = await _append(store, "b")
    store.read_history = real  # type: ignore[method-assign]
    later = await reads.after(TENANT, SESSION, 0, 500)
    assert [e.event_id for e in later.events] == [first[0].event_id, later_event[0].event_id]
    assert metrics.history_reads_joined._value.get() == 0
    proceed.set()
    await early


async def test_one_joiner_leaving_does_not_cancel_the_read_of_the_others(
    store: EventStore,
) -> None:
    events = await _append(store, "a")
    reads, _ = _reads(store)
    leaving = asyncio.ensure_future(reads.after(TENANT, SESSION, 0, 500))
    staying = asyncio.ensure_future(reads.after(TENANT, SESSION, 0, 500))
    await asyncio.sleep(0)
    leaving.cancel()
    history = await asyncio.wait_for(staying, 10)
    assert [e.event_id for e in history.events] == [events[0].event_id]
    await reads.close()


async def test_a_failed_read_fails_every_joiner_and_the_next_request_reads_again(
    store: EventStore,
) -> None:
    events = await _append(store, "a")
    real = store.read_history
    calls = 0

    async def flaky(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database went away")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    store.read_history = flaky  # type: ignore[method-assign]
    reads, _ = _reads(store)
    outcomes = await asyncio.gather(
        *(reads.after(TENANT, SESSION, 0, 500) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    history = await reads.after(TENANT, SESSION, 0, 500)
    assert [e.event_id for e in history.events] == [events[0].event_id]


async def test_requests_within_the_join_window_share_one_read(store: EventStore) -> None:
    """Sockets of a reconnect storm arrive milliseconds apart, not in the same loop turn."""
    events = await _append(store, "a")
    metrics = GatewayMetrics(CollectorRegistry())
    reads = HistoryReads(store, metrics, concurrency=4, join_window_s=0.2)
    first = asyncio.ensure_future(reads.after(TENANT, SESSION, 0, 500))
    await asyncio.sleep(0.05)
    second = await reads.after(TENANT, SESSION, 0, 500)
    assert [e.event_id for e in (await first).events] == [events[0].event_id]
    assert second.events == (await first).events
    assert metrics.gap_fetches._value.get() == 1

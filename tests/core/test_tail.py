"""Invariant 6: the global tail never skips an event that commits late, and never repeats one."""

from __future__ import annotations

import asyncio

import psycopg

from agentlane.records import Checkpoint, NewEvent, TailedEvent
from agentlane.store import EventStore, Wakeups, tail


def token(session: str, index: int) -> NewEvent:
    return NewEvent("t1", session, "Token", {"text": "x", "index": index})


async def drain(store: EventStore, after: Checkpoint) -> tuple[list[TailedEvent], Checkpoint]:
    got: list[TailedEvent] = []
    while batch := await store.read_tail(after, limit=7):
        got.extend(batch)
        after = batch[-1].position
    return got, after


async def test_a_transaction_that_appends_first_and_commits_last_is_still_delivered(
    store: EventStore, database_url: str
) -> None:
    await store.append(token("before", 0))
    seen, position = await drain(store, Checkpoint())
    assert [t.event.session_id for t in seen] == ["before"]

    # The slow writer takes its xid and inserts first, then holds its transaction open.
    slow = await psycopg.AsyncConnection.connect(database_url)
    await slow.execute("SELECT pg_current_xact_id()")
    await slow.execute(
        "INSERT INTO agent_events (tenant_id, session_id, seq, event_type, payload, prev_hash,"
        " hash) VALUES ('t1', 'slow', 1, 'Token', '{\"text\": \"late\", \"index\": 0}',"
        " '\\x00', '\\x00')"
    )
    for i in range(20):
        await store.append(token("fast", i))

    # While it is open, the tail stops below it: later commits are withheld, not skipped past.
    early, position = await drain(store, position)
    assert early == []

    await slow.commit()
    await slow.close()
    late, position = await drain(store, position)
    sessions = [t.event.session_id for t in late]
    assert sessions == ["slow"] + ["fast"] * 20, "the late commit comes first: its xid is oldest"
    again, _ = await drain(store, position)
    assert again == [], "nothing is delivered twice"

    every, _ = await drain(store, Checkpoint())
    ids = [t.event.event_id for t in every]
    assert len(ids) == len(set(ids)) == 22


async def test_concurrent_writers_with_late_commits_lose_nothing(
    store: EventStore, database_url: str
) -> None:
    """Many writers, some holding their transaction open, while a reader tails continuously."""
    stop = asyncio.Event()
    delivered: list[int] = []

    async def reader() -> None:
        position = Checkpoint()
        while True:
            batch = await store.read_tail(position, limit=50)
            delivered.extend(t.event.event_id for t in batch)
            if batch:
                position = batch[-1].position
            elif stop.is_set():
                return
            await asyncio.sleep(0.005)

    async def writer(w: int) -> None:
        for i in range(30):
            if i % 10 == 5:
                async with store.pool.connection() as conn, conn.transaction():
                    await store.append_in_transaction(conn, [token(f"w{w}", i)])
                    await asyncio.sleep(0.05)  # commits late, after others
            else:
                await store.append(token(f"w{w}", i))

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(8)))
    stop.set()
    await reading
    assert len(delivered) == len(set(delivered)) == 240


async def test_tail_iterator_wakes_on_notify(store: EventStore, database_url: str) -> None:
    async with Wakeups(database_url) as wakeups:
        start = await store.live_checkpoint()
        stream = tail(store, wakeups, start, poll_s=30)
        await store.append(token("n", 0))
        batch = await asyncio.wait_for(anext(stream), timeout=10)
        assert [t.event.session_id for t in batch] == ["n"]
        await store.append(token("n", 1))
        batch = await asyncio.wait_for(anext(stream), timeout=10)
        assert [t.event.data["index"] for t in batch] == [1]
        await stream.aclose()


async def test_live_checkpoint_skips_history_but_not_what_follows(store: EventStore) -> None:
    await store.append_batch([token("h", i) for i in range(5)])
    start = await store.live_checkpoint()
    assert await store.read_tail(start) == []
    await store.append(token("h", 5))
    assert [t.event.seq for t in await store.read_tail(start)] == [6]


async def test_tail_order_is_numeric_across_a_transaction_id_digit_boundary(
    store: EventStore, database_url: str
) -> None:
    """Regression: sorting tx ids as text put '999' after '1000' and delivered events twice."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        current = int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        boundary = 10 ** len(str(current))
        for _ in range(boundary - current - 3):
            conn.execute("SELECT pg_current_xact_id()")
    for i in range(6):  # one transaction each, straddling 10^k
        await store.append(token("digits", i))
    delivered: list[int] = []
    position = Checkpoint()
    while batch := await store.read_tail(position, limit=1):
        delivered.append(batch[0].event.seq)
        position = batch[0].position
    assert delivered == [1, 2, 3, 4, 5, 6]

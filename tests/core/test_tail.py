"""Invariant 6: the global tail never skips an event that commits late, and never repeats one;
and the one loop that follows it."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlane.backoff import Backoff
from agentlane.db import Database
from agentlane.errors import CheckpointMoved, FencedOut, StoreUnavailable
from agentlane.records import Checkpoint, NewEvent, TailedEvent
from agentlane.store import Checkpoints, EventStore, Follower, Tail, in_memory
from tests.conftest import TEST_SHARDS


def token(session: str, index: int) -> NewEvent:
    return NewEvent("t1", session, "Token", {"text": "x", "index": index})


@pytest.fixture
def tail(db: Database) -> Tail:
    return Tail(db)


async def drain(tail: Tail, after: Checkpoint) -> tuple[list[TailedEvent], Checkpoint]:
    got: list[TailedEvent] = []
    while batch := await tail.read(after, limit=7):
        got.extend(batch)
        after = batch[-1].position
    return got, after


async def test_a_transaction_that_appends_first_and_commits_last_is_still_delivered(
    store: EventStore, tail: Tail, database_url: str
) -> None:
    await store.append(token("before", 0))
    seen, position = await drain(tail, Checkpoint())
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
    early, position = await drain(tail, position)
    assert early == []

    await slow.commit()
    await slow.close()
    late, position = await drain(tail, position)
    sessions = [t.event.session_id for t in late]
    assert sessions == ["slow"] + ["fast"] * 20, "the late commit comes first: its xid is oldest"
    again, _ = await drain(tail, position)
    assert again == [], "nothing is delivered twice"

    every, _ = await drain(tail, Checkpoint())
    ids = [t.event.event_id for t in every]
    assert len(ids) == len(set(ids)) == 22


async def test_concurrent_writers_with_late_commits_lose_nothing(
    store: EventStore, tail: Tail, db: Database
) -> None:
    """Many writers, some holding their transaction open, while a reader tails continuously."""
    stop = asyncio.Event()
    delivered: list[int] = []

    async def reader() -> None:
        position = Checkpoint()
        while True:
            batch = await tail.read(position, limit=50)
            delivered.extend(t.event.event_id for t in batch)
            if batch:
                position = batch[-1].position
            elif stop.is_set():
                return
            await asyncio.sleep(0.005)

    async def writer(w: int) -> None:
        for i in range(30):
            if i % 10 == 5:
                async with db.transaction() as conn:
                    await store.append_in_transaction(conn, [token(f"w{w}", i)])
                    await asyncio.sleep(0.05)  # commits late, after others
            else:
                await store.append(token(f"w{w}", i))

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(8)))
    stop.set()
    await reading
    assert len(delivered) == len(set(delivered)) == 240


async def queueing_follower(
    tail: Tail, batches: asyncio.Queue[list[TailedEvent]], *, poll_s: float
) -> Follower:
    """A follower from now on that puts each batch it handles on ``batches``."""

    async def handle(batch: list[TailedEvent], _after: Checkpoint) -> None:
        await batches.put(batch)

    start = await tail.live_position()
    return Follower(tail, handle, name="test", resume=in_memory(start), poll_s=poll_s)


async def test_a_follower_wakes_on_notify_not_on_its_poll(store: EventStore, tail: Tail) -> None:
    batches: asyncio.Queue[list[TailedEvent]] = asyncio.Queue()
    follower = await queueing_follower(tail, batches, poll_s=30)
    following = asyncio.create_task(follower.run())
    try:
        await asyncio.sleep(0.5)  # listening
        await store.append(token("n", 0))
        batch = await asyncio.wait_for(batches.get(), timeout=10)
        assert [t.event.session_id for t in batch] == ["n"]
        await store.append(token("n", 1))
        batch = await asyncio.wait_for(batches.get(), timeout=10)
        assert [t.event.data["index"] for t in batch] == [1]
    finally:
        following.cancel()
        await asyncio.wait([following])


async def test_an_event_held_behind_a_silent_transaction_comes_soon_not_at_the_poll(
    store: EventStore, tail: Tail, database_url: str
) -> None:
    """The wake-up for an append can arrive while another transaction that announces nothing (a
    lease renewal, a checkpoint) holds the horizon below it; the follower looks again soon after
    that transaction ends instead of sleeping its whole poll interval."""
    batches: asyncio.Queue[list[TailedEvent]] = asyncio.Queue()
    follower = await queueing_follower(tail, batches, poll_s=30)
    following = asyncio.create_task(follower.run())
    silent = await psycopg.AsyncConnection.connect(database_url)
    try:
        await asyncio.sleep(0.5)  # listening
        await silent.execute("SELECT pg_current_xact_id()")  # holds the horizon, notifies nothing
        await store.append(token("held", 0))
        await asyncio.sleep(0.5)  # the wake-up came and its read found nothing below the horizon
        assert batches.empty()
        await silent.commit()
        batch = await asyncio.wait_for(batches.get(), timeout=5)
        assert [t.event.session_id for t in batch] == ["held"]
    finally:
        await silent.close()
        following.cancel()
        await asyncio.wait([following])


async def test_a_failed_batch_is_handled_again_and_nothing_is_skipped(
    store: EventStore, tail: Tail
) -> None:
    """read → handle fails → back off → the same batch again (volatile follower)."""
    await store.append_batch([token("f", i) for i in range(3)])
    seen: list[list[int]] = []
    done = asyncio.Event()

    async def handle(batch: list[TailedEvent], _after: Checkpoint) -> None:
        seen.append([t.event.seq for t in batch])
        if len(seen) == 1:
            raise StoreUnavailable("the database went away mid-batch")
        done.set()

    follower = Follower(tail, handle, name="test", resume=in_memory(Checkpoint()), poll_s=0.1)
    following = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        following.cancel()
        await asyncio.wait([following])
    assert seen[:2] == [[1, 2, 3], [1, 2, 3]]


async def test_a_durable_follower_rewinds_to_its_stored_checkpoint(
    store: EventStore, tail: Tail, db: Database
) -> None:
    """After a failure or a moved checkpoint the stored checkpoint is the truth, not memory."""
    checkpoints = Checkpoints(db)
    await store.append_batch([token("d", i) for i in range(4)])
    handled: list[list[int]] = []
    moved = asyncio.Event()

    async def handle(batch: list[TailedEvent], after: Checkpoint) -> None:
        handled.append([t.event.seq for t in batch])
        if len(handled) == 1:
            # Someone else (a rebuild) set the checkpoint to the end of the second event.
            async with db.transaction() as conn:
                await Checkpoints.set(conn, "publish", batch[1].position)
        async with db.transaction() as conn:
            await Checkpoints.advance(conn, "publish", after, batch[-1].position)
        moved.set()

    follower = Follower(tail, handle, name="test", resume=checkpoints.resume("publish"))
    following = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(moved.wait(), timeout=10)
    finally:
        following.cancel()
        await asyncio.wait([following])
    assert handled == [[1, 2, 3, 4], [3, 4]], "the moved checkpoint was resumed from at once"
    assert (await checkpoints.load("publish")) == (await tail.read(Checkpoint()))[-1].position


async def test_a_refused_fence_ends_the_follower(store: EventStore, tail: Tail) -> None:
    await store.append(token("x", 0))

    async def handle(batch: list[TailedEvent], _after: Checkpoint) -> None:
        raise FencedOut(table="projector_lease", key="projector", holder="me", token=1)

    follower = Follower(tail, handle, name="test", resume=in_memory(Checkpoint()))
    with pytest.raises(FencedOut):
        await asyncio.wait_for(follower.run(), timeout=10)


async def test_checkpoints_compare_and_set(db: Database) -> None:
    async with db.transaction() as conn:
        await Checkpoints.advance(conn, "publish", Checkpoint(), Checkpoint(5, 7))
    with pytest.raises(CheckpointMoved):
        async with db.transaction() as conn:
            await Checkpoints.advance(conn, "publish", Checkpoint(), Checkpoint(6, 8))
    assert await Checkpoints(db).load("publish") == Checkpoint(5, 7)


async def test_live_position_skips_history_but_not_what_follows(
    store: EventStore, tail: Tail
) -> None:
    await store.append_batch([token("h", i) for i in range(5)])
    start = await tail.live_position()
    assert await tail.read(start) == []
    await store.append(token("h", 5))
    assert [t.event.seq for t in await tail.read(start)] == [6]


async def test_tail_order_is_numeric_across_a_transaction_id_digit_boundary(
    store: EventStore, tail: Tail, database_url: str
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
    while batch := await tail.read(position, limit=1):
        delivered.append(batch[0].event.seq)
        position = batch[0].position
    assert delivered == [1, 2, 3, 4, 5, 6]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    events=st.integers(1, 12),
    batch_size=st.integers(1, 4),
    failures=st.lists(st.sampled_from(["ok", "fail", "moved"]), max_size=12),
)
def test_the_read_ahead_never_skips_or_reorders_whatever_the_handler_does(
    loop_and_db: tuple[asyncio.AbstractEventLoop, Database],
    events: int,
    batch_size: int,
    failures: list[str],
) -> None:
    """Full batches start the next read while they are handled; a handler that fails or finds
    its checkpoint moved drops that read, and the batches it goes on to handle are still the log
    in order, each starting where the last one handled ended."""
    loop, db = loop_and_db
    session = f"ahead-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        store, tail = EventStore(db, shards=TEST_SHARDS), Tail(db)
        await store.append_batch([token(session, i) for i in range(events)])
        outcomes = iter(failures)
        handled: list[list[int]] = []
        done = asyncio.Event()

        async def handle(batch: list[TailedEvent], _after: Checkpoint) -> None:
            mine = [t.event.seq for t in batch if t.event.session_id == session]
            outcome = next(outcomes, "ok")
            if outcome == "fail":
                raise StoreUnavailable("gone mid-batch")
            if outcome == "moved":
                raise CheckpointMoved("publish")
            handled.append(mine)
            if mine and mine[-1] == events:
                done.set()

        follower = Follower(
            tail, handle, name="test", resume=in_memory(Checkpoint()), batch_size=batch_size,
            poll_s=0.05, backoff=Backoff(initial_s=0.001, maximum_s=0.001),
        )
        following = asyncio.create_task(follower.run())
        try:
            await asyncio.wait_for(done.wait(), timeout=20)
        finally:
            following.cancel()
            await asyncio.wait([following])
        mine = [seq for batch in handled for seq in batch]
        assert mine == list(range(1, events + 1))

    loop.run_until_complete(scenario())


async def test_catch_up_reads_ahead_and_hands_over_every_batch_in_order(
    store: EventStore, tail: Tail
) -> None:
    await store.append_batch([token("c", i) for i in range(9)])
    handled: list[list[int]] = []

    async def handle(batch: list[TailedEvent], _after: Checkpoint) -> None:
        handled.append([t.event.seq for t in batch])

    follower = Follower(tail, handle, name="test", resume=in_memory(Checkpoint()), batch_size=4)
    end = await follower.catch_up(Checkpoint())
    assert handled == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert end == (await tail.read(Checkpoint()))[-1].position

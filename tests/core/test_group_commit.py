"""Group commit: concurrent appends share transactions, and grouping changes no caller's answer.

Every test runs on the real server. The property test drives random mixes of batches (fresh and
stale fences, taken idempotency keys, refusing hooks, shared streams) through one store at once
and checks each caller got exactly what writing its batch alone would have given it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlane.db import Connection, Database, open_database, with_session_options
from agentlane.errors import DuplicateEvent, FencedOut
from agentlane.leases import Fence
from agentlane.notifications import Wakeups
from agentlane.records import NewEvent, StoredEvent
from agentlane.sharding import shard_for
from agentlane.store import WAKEUP_CHANNEL, Collective, EventStore, lock_stream
from tests.conftest import TEST_SHARDS


def token(session: str, index: int, *, tenant: str = "t1") -> NewEvent:
    return NewEvent(tenant, session, "Token", {"text": f"tok{index}", "index": index})


def claim(database_url: str, shard: int, runner: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE cluster_shards SET runner_id = %s, lease_token = lease_token + 1, "
            "lease_expires_at = now() + interval '60 seconds' WHERE shard_id = %s "
            "RETURNING lease_token",
            (runner, shard),
        ).fetchone()
    assert row is not None
    return int(row[0])


def session_on_shard(shard: int, prefix: str) -> str:
    names = (f"{prefix}{i}" for i in range(10_000))
    return next(name for name in names if shard_for("t1", name, TEST_SHARDS) == shard)


async def test_concurrent_appends_share_transactions(db: Database) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)

    written = await asyncio.gather(*(store.append(token(f"s{i % 7}", i)) for i in range(60)))

    assert store.committer.batches == 60
    assert store.committer.groups < 10, "one writer in flight: the others must have grouped"
    for i, result in enumerate(written):
        assert result.created and result.event.data["index"] == i
        assert result.event.session_id == f"s{i % 7}"
    for s in range(7):
        events = await store.read_session("t1", f"s{s}")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        # Callers' order is kept inside a stream, also across the batches of one group.
        assert [e.data["index"] for e in events] == list(range(s, 60, 7))
        assert await store.check_chain("t1", f"s{s}") == []


async def test_a_stale_fence_fails_only_its_own_batch(db: Database, database_url: str) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)
    shard_a, shard_b = 1, 2
    session_a, session_b = session_on_shard(shard_a, "a"), session_on_shard(shard_b, "b")
    stale = claim(database_url, shard_a, "runner-x")
    claim(database_url, shard_a, "runner-y")  # the lease moved on
    fresh = claim(database_url, shard_b, "runner-x")

    results = await asyncio.gather(
        store.append(token("unfenced", 0)),  # goes alone: the others group behind it
        store.append_batch([token(session_a, 1)], fence=Fence(shard_a, "runner-x", stale)),
        store.append_batch([token(session_b, 2)], fence=Fence(shard_b, "runner-x", fresh)),
        store.append(token("unfenced", 3)),
        return_exceptions=True,
    )

    assert isinstance(results[1], FencedOut)
    assert not isinstance(results[2], BaseException) and not isinstance(results[3], BaseException)
    assert store.committer.groups == 2
    assert await store.read_session("t1", session_a) == []
    assert [e.data["index"] for e in await store.read_session("t1", session_b)] == [2]
    assert [e.data["index"] for e in await store.read_session("t1", "unfenced")] == [0, 3]
    # The refused stream's head did not move: its next append is seq 1.
    assert (await store.append(token(session_a, 4))).event.seq == 1


async def test_a_taken_key_or_a_refusing_hook_fails_only_its_own_batch(db: Database) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)
    keyed = NewEvent("t1", "k", "RunAccepted", {"runId": "r", "message": "m"}, "ex1", "run:r")
    await store.append(keyed)

    class Refused(Exception):
        pass

    async def refuse(conn: Connection, written: list[StoredEvent]) -> None:
        raise Refused()

    blocker = asyncio.ensure_future(store.append(token("first", 0)))
    results = await asyncio.gather(
        store.append_batch([token("k", 1), keyed]),
        store.append_batch([token("hooked", 2)], in_transaction=refuse),
        store.append(token("ok", 3)),
        store.append(keyed),
        return_exceptions=True,
    )
    await blocker

    assert isinstance(results[0], DuplicateEvent)
    assert isinstance(results[1], Refused)
    assert not isinstance(results[2], BaseException) and results[2].created
    assert not isinstance(results[3], BaseException) and not results[3].created
    assert [e.type for e in await store.read_session("t1", "k")] == ["RunAccepted"]
    assert await store.read_session("t1", "hooked") == []
    assert [e.data["index"] for e in await store.read_session("t1", "ok")] == [3]


async def test_a_caller_cancelled_while_waiting_writes_nothing(
    db: Database, database_url: str
) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)
    await store.append(token("held", 0))
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await lock_stream(holder, "t1", "held")  # the first group waits on this lock
        first = asyncio.ensure_future(store.append(token("held", 1)))
        waiting = asyncio.ensure_future(store.append(token("withdrawn", 2)))
        await asyncio.sleep(0.2)
        waiting.cancel()
        await holder.rollback()
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await store.read_session("t1", "withdrawn") == []
    assert (await store.append(token("withdrawn", 3))).event.seq == 1


async def test_groups_of_two_processes_never_deadlock(database_url: str) -> None:
    """Batches spanning the same streams in opposite orders, from two stores (two processes'
    committers): the heads are locked in one global order, so no transaction waits in a cycle
    (a deadlock would surface as a StoreError after Postgres's deadlock_timeout)."""
    sessions = [f"d{i}" for i in range(6)]

    async def writer(db: Database, reverse: bool, seed: int) -> None:
        store = EventStore(db, shards=TEST_SHARDS, max_in_flight=4)
        rng = random.Random(seed)

        async def one(i: int) -> None:
            chosen = rng.sample(sessions, 3)
            chosen.sort(reverse=reverse)
            await store.append_batch([token(s, i) for s in chosen])

        await asyncio.gather(*(one(i) for i in range(600)))
        assert store.committer.split == 0, "a group failed: deadlocked?"

    async with (
        _database(database_url) as one_db,
        _database(database_url) as other_db,
    ):
        await asyncio.gather(writer(one_db, False, 1), writer(other_db, True, 2))
        store = EventStore(one_db, shards=TEST_SHARDS)
        total = 0
        for s in sessions:
            events = await store.read_session("t1", s, limit=None)
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert await store.check_chain("t1", s) == []
            total += len(events)
    assert total == 2 * 600 * 3


async def test_wakeups_go_out_after_the_commit_not_inside_it(
    db: Database, database_url: str
) -> None:
    store = EventStore(db, shards=TEST_SHARDS)
    async with db.connection() as conn:
        triggers = await (
            await conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'agent_events'::regclass "
                "AND NOT tgisinternal ORDER BY tgname"
            )
        ).fetchall()
    # Only the append-only guards are left: nothing in the append's transaction NOTIFYs.
    assert [row[0] for row in triggers] == [
        "agent_events_no_truncate",
        "agent_events_no_update_delete",
    ]
    async with Wakeups(database_url, WAKEUP_CHANNEL) as wakeups:
        assert await wakeups.wait(5.0)  # the connect itself wakes
        await asyncio.sleep(0.2)
        assert not await wakeups.wait(0.2)
        await store.append(token("woken", 0))
        assert await wakeups.wait(5.0)
    # The notification's asynchronous commit stays local to its own transaction: the one
    # connection of this pool keeps the synchronous commits its session asked for.
    durable = with_session_options(database_url, synchronous_commit="on")
    async with open_database(durable, name="test", min_size=1, max_size=1) as one:
        one.notify_after_commit(WAKEUP_CHANNEL)
        await one.settle_notifications()
        async with one.connection() as conn:
            row = await (await conn.execute("SHOW synchronous_commit")).fetchone()
    assert row == ("on",)


_KEYS = ["run:a", "run:b"]


@st.composite
def batch_specs(draw: st.DrawFn) -> list[tuple[str, str, str | None]]:
    """Batches as (kind, session, key): kind fresh/stale fence, none, or a refusing hook."""
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["none", "fresh", "stale", "hook"]),
                st.sampled_from(["p", "q", "r"]),
                st.one_of(st.none(), st.sampled_from(_KEYS)),
            ),
            min_size=1,
            max_size=12,
        )
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(specs=batch_specs(), in_flight=st.integers(1, 3))
async def test_grouping_gives_every_caller_what_it_would_get_alone(
    database_url: str, specs: list[tuple[str, str, str | None]], in_flight: int
) -> None:
    async with _database(database_url) as db:
        await _reset(db)
        store = EventStore(db, shards=TEST_SHARDS, max_in_flight=in_flight)
        fresh = {
            s: Fence(shard, "me", claim(database_url, shard, "me"))
            for s in "pqr"
            for shard in [shard_for("t1", s, TEST_SHARDS)]
        }

        async def refuse(conn: Connection, written: list[StoredEvent]) -> None:
            raise LookupError("refused")

        def submit(i: int, kind: str, session: str, key: str | None) -> asyncio.Future[object]:
            data = {"runId": str(i), "message": "m"}
            event = NewEvent("t1", session, "RunAccepted", data, f"ex{i}", key)
            fence = {"fresh": fresh[session], "stale": _stale(fresh[session])}.get(kind)
            hook = refuse if kind == "hook" else None
            return asyncio.ensure_future(
                store.append_batch([event], fence=fence, in_transaction=hook)
            )

        outcomes = await asyncio.gather(
            *(submit(i, *spec) for i, spec in enumerate(specs)), return_exceptions=True
        )

        winners: dict[str, list[int]] = {}
        for i, ((kind, _, key), outcome) in enumerate(zip(specs, outcomes, strict=True)):
            if kind == "stale":
                assert isinstance(outcome, FencedOut), (i, outcome)
            elif key is not None and isinstance(outcome, DuplicateEvent):
                assert outcome.idempotency_key == key
            elif kind == "hook":
                assert isinstance(outcome, LookupError), (i, outcome)
            else:
                assert not isinstance(outcome, BaseException), (i, outcome)
                if key is not None:
                    winners.setdefault(key, []).append(i)
        # Each key a writable batch carried was written by exactly one of them.
        contested = {key for kind, _, key in specs if kind in ("none", "fresh") and key}
        assert {key: len(won) for key, won in winners.items()} == dict.fromkeys(contested, 1)
        written = {int(e.data["runId"]) for s in "pqr" for e in await store.read_session("t1", s)}
        succeeded = {i for i, o in enumerate(outcomes) if not isinstance(o, BaseException)}
        assert written == succeeded
        for s in "pqr":
            assert await store.check_chain("t1", s) == []


def _stale(fence: Fence) -> Fence:
    return Fence(fence.key, fence.holder, fence.token - 1)


async def _reset(db: Database) -> None:
    """A clean log for each example (the append-only trigger refuses DELETE; TRUNCATE of a test
    database is done as its owner with the guard briefly off)."""
    async with db.transaction() as conn:
        await conn.execute("ALTER TABLE agent_events DISABLE TRIGGER agent_events_no_truncate")
        await conn.execute("TRUNCATE agent_events, agent_stream_heads")
        await conn.execute("ALTER TABLE agent_events ENABLE TRIGGER agent_events_no_truncate")


def _database(database_url: str) -> contextlib.AbstractAsyncContextManager[Database]:
    return open_database(database_url, name="test", min_size=1, max_size=10)


async def test_streamed_tokens_of_many_runs_share_one_commit_per_tick(db: Database) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=2)
    store.committer.tick_s = 0.05

    async def run(i: int) -> None:
        for flush in range(5):  # five token flushes per run, as a streaming model makes them
            await store.append_batch([token(f"run{i}", flush)], deferrable=True)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(run(i) for i in range(40)))
    elapsed = loop.time() - started

    # 200 writes, one transaction per tick: commits do not grow with the number of runs.
    assert store.committer.batches == 200
    assert store.committer.groups <= 7, store.committer.groups
    assert elapsed >= 5 * 0.05 * 0.9, "a deferrable write must wait for its tick"
    for i in range(40):
        events = await store.read_session("t1", f"run{i}")
        assert [e.data["index"] for e in events] == list(range(5))


async def test_a_write_that_may_not_wait_takes_waiting_tokens_along(db: Database) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=2)
    store.committer.tick_s = 30.0  # the tick never comes within this test
    tokens = asyncio.ensure_future(store.append_batch([token("s", 0)], deferrable=True))
    await asyncio.sleep(0.1)
    assert not tokens.done(), "a deferrable write waits for its tick"
    await store.append(token("other", 1))
    await asyncio.wait_for(tokens, 5)
    assert store.committer.groups == 1 and store.committer.batches == 2


async def test_collective_work_of_a_group_is_one_call_in_its_transaction(db: Database) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)
    calls: list[list[tuple[object, list[int]]]] = []

    async def index(conn: Connection, items: list[tuple[object, list[StoredEvent]]]) -> None:
        # Inside the transaction: the group's events are visible to it.
        ids = [e.event_id for _, written in items for e in written]
        count = await (
            await conn.execute("SELECT count(*) FROM agent_events WHERE event_id = ANY(%s)", (ids,))
        ).fetchone()
        assert count == (len(items),)
        calls.append([(item, [e.seq for e in written]) for item, written in items])

    await asyncio.gather(
        *(store.append(token(f"c{i}", i), collective=Collective(index, i)) for i in range(10))
    )

    assert len(calls) == 2, "the first append goes alone, the nine behind it as one group"
    assert calls[0] == [(0, [1])]
    assert calls[1] == [(i, [1]) for i in range(1, 10)]

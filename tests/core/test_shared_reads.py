"""Shared reads: idempotency look-ups and runs' journal reads share queries under load, and
sharing changes no caller's answer.

The store tests run on the real server: concurrent run starts (fresh keys, keys stored before,
the same key twice, one key in two tenants) and concurrent reads of runs (from several points,
another tenant's, a run with no events) must each get what a read of their own would give, in
fewer queries than callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlane.db import Database
from agentlane.records import NewEvent, StoredEvent
from agentlane.store import EventStore
from agentlane.store.lookups import SharedReads
from tests.conftest import TEST_SHARDS


def accepted(tenant: str, session: str, run: str) -> NewEvent:
    return NewEvent(
        tenant, session, "RunAccepted", {"runId": run, "message": f"hi {run}"},
        execution_id=f"{tenant}-{run}", idempotency_key=f"run:{run}",
    )


async def test_concurrent_starts_share_lookups_and_each_gets_its_own_answer(db: Database) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)
    before = [(await store.append(accepted("t1", "s", f"old{i}"))).event for i in range(5)]
    queries_before = store.key_lookups.queries

    # Fresh keys, keys stored before, a key asked for twice at once, a stored key's name in
    # another tenant (a different key there).
    starts = [accepted("t1", "s", f"new{i}") for i in range(30)]
    starts += [accepted("t1", "s", f"old{i}") for i in range(5)]
    starts += [accepted("t1", "s", "twice"), accepted("t1", "s", "twice")]
    starts += [accepted("t2", "s", "old0")]
    results = await asyncio.gather(*(store.append(event) for event in starts))

    assert store.key_lookups.queries - queries_before < len(starts) / 3, "look-ups must group"
    for event, result in zip(starts, results, strict=True):
        assert result.event.tenant_id == event.tenant_id
        assert result.event.data["runId"] == event.data["runId"]
    assert all(result.created for result in results[:30])
    assert [result.event for result in results[30:35]] == before
    assert not any(result.created for result in results[30:35])
    twice = results[35:37]
    assert sorted(result.created for result in twice) == [False, True]
    assert twice[0].event == twice[1].event
    assert results[37].created and results[37].event.tenant_id == "t2"
    assert len(await store.read_session("t1", "s")) == 5 + 30 + 1


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    stored=st.sets(st.integers(0, 20), max_size=10),
    asked=st.lists(st.tuples(st.sampled_from(["t1", "t2"]), st.integers(0, 30)), max_size=40),
    in_flight=st.integers(1, 3),
)
async def test_grouped_lookups_answer_as_single_ones(
    db: Database, stored: set[int], asked: list[tuple[str, int]], in_flight: int
) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=in_flight)
    prefix = f"p{id(stored)}-{len(asked)}-"
    events = {
        n: (await store.append(accepted("t1", "h", f"{prefix}{n}"))).event for n in stored
    }

    found = await asyncio.gather(
        *(store.find_by_idempotency_key(tenant, f"run:{prefix}{n}") for tenant, n in asked)
    )

    assert found == [events.get(n) if tenant == "t1" else None for tenant, n in asked]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 6), min_size=1, max_size=6),
    asked=st.lists(
        st.tuples(st.sampled_from(["t1", "t2"]), st.integers(0, 6), st.integers(0, 7)),
        max_size=30,
    ),
    in_flight=st.integers(1, 3),
)
async def test_grouped_run_reads_answer_as_single_ones(
    db: Database, sizes: list[int], asked: list[tuple[str, int, int]], in_flight: int
) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=in_flight)
    prefix = f"x{id(sizes)}-{len(asked)}-"
    runs: dict[int, list[StoredEvent]] = {}
    for n, size in enumerate(sizes):
        runs[n] = await store.append_batch([
            NewEvent("t1", f"{prefix}s{n % 2}", "Token", {"text": str(i), "index": i},
                     execution_id=f"{prefix}{n}")
            for i in range(size)
        ])

    read = await asyncio.gather(*(
        store.read_execution(tenant, f"{prefix}{n}", gt_seq=after) for tenant, n, after in asked
    ))

    assert read == [
        [e for e in runs.get(n, []) if e.seq > after] if tenant == "t1" else []
        for tenant, n, after in asked
    ]
    assert store.run_reads.queries <= max(len(asked), 1)


async def test_concurrent_reads_of_runs_share_queries(db: Database) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)
    for n in range(20):
        await store.append(accepted("t1", f"s{n}", f"r{n}"))
    before = store.run_reads.queries

    read = await asyncio.gather(*(store.read_execution("t1", f"t1-r{n}") for n in range(20)))

    assert [events[0].data["runId"] for events in read] == [f"r{n}" for n in range(20)]
    assert store.run_reads.queries - before <= 3


class _Gated:
    """A fetch that holds every query until released, recording the keys of each."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []
        self.release = asyncio.Event()
        self.error: Exception | None = None

    async def __call__(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredEvent | None]:
        self.calls.append(list(keys))
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return {}


async def test_a_caller_cancelled_while_waiting_leaves_the_next_query() -> None:
    fetch = _Gated()
    lookups = SharedReads(fetch, None, max_in_flight=1)
    first = asyncio.create_task(lookups.get(("t", "a")))
    await asyncio.sleep(0)
    gone = asyncio.create_task(lookups.get(("t", "b")))
    kept = asyncio.create_task(lookups.get(("t", "c")))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    fetch.release.set()

    assert await first is None and await kept is None
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert fetch.calls == [[("t", "a")], [("t", "c")]]


async def test_a_failed_query_fails_every_caller_it_carried() -> None:
    fetch = _Gated()
    fetch.error = RuntimeError("database away")
    lookups = SharedReads(fetch, None, max_in_flight=1)
    tasks = [asyncio.create_task(lookups.get(("t", key))) for key in "abc"]
    await asyncio.sleep(0)
    fetch.release.set()

    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert [str(outcome) for outcome in outcomes] == ["database away"] * 3
    assert fetch.calls == [[("t", "a")], [("t", "b"), ("t", "c")]]


async def test_concurrent_clock_reads_share_queries_and_read_after_they_asked(
    db: Database,
) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)
    before = store._clock_reads.queries
    async with db.connection() as conn:
        row = await (await conn.execute("SELECT clock_timestamp()")).fetchone()
    assert row is not None

    moments = await asyncio.gather(*(store.now() for _ in range(30)))

    assert store._clock_reads.queries - before <= 3
    assert all(moment >= row[0] for moment in moments)

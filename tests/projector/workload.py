"""A realistic write load for projector tests, and the checks every delivery test shares."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from agentlane.bus import Subscription
from agentlane.db import Database
from agentlane.folds import fold_run, fold_session, fold_usage
from agentlane.readmodels import ReadModels
from agentlane.records import NewEvent, StoredEvent
from agentlane.store import Checkpoints, EventStore
from tests.conftest import TEST_SHARDS

TENANTS = ("t1", "t2")
MODELS = ("model-a", "model-b")


def session_names(count: int) -> list[tuple[str, str]]:
    return [(TENANTS[i % len(TENANTS)], f"s{i:03d}") for i in range(count)]


def run_events(tenant: str, session: str, execution: str, tokens: int) -> list[list[NewEvent]]:
    """One run as the runner would write it, in three appends."""
    model = MODELS[sum(map(ord, execution)) % len(MODELS)]
    return [
        [NewEvent(tenant, session, "RunAccepted", {"runId": execution, "message": "hi"},
                  execution_id=execution, idempotency_key=f"run:{execution}")],
        [NewEvent(tenant, session, "RunStarted", {"workflow": "agent", "version": "1"},
                  execution_id=execution)]
        + [NewEvent(tenant, session, "Token", {"text": f"w{i} ", "index": i},
                    execution_id=execution) for i in range(tokens)],
        [NewEvent(tenant, session, "Usage", {"model": model, "inputTokens": 10 + tokens,
                                             "outputTokens": tokens, "cachedInputTokens": 2,
                                             "costMicros": 7 + 3 * tokens, "priceVersion": "w-1"},
                  execution_id=execution),
         NewEvent(tenant, session, "Completed", {"answer": f"answer of {execution}"},
                  execution_id=execution)],
    ]


@dataclass
class Workload:
    """What the writers wrote (every event, in write order) and how many appends were late."""

    written: list[StoredEvent] = field(default_factory=list)
    late_commits: int = 0

    @property
    def ids(self) -> set[int]:
        return {e.event_id for e in self.written}


async def write_workload(
    db: Database,
    *,
    events: int = 10_000,
    sessions: int = 100,
    writers: int = 8,
    late_every: int = 15,
    late_hold_s: float = 0.15,
    tag: str = "",
    pace_s: float = 0.0,
    tokens: int = 16,
) -> Workload:
    """About ``events`` events in runs of ``tokens + 4`` over ``sessions`` sessions by ``writers``
    concurrent writers. Every ``late_every``-th append runs in a transaction that first writes to
    another session (taking an early transaction id), holds it open, then appends: it commits
    after later transactions of the same session, so the tail hands its events out before lower
    seqs."""
    store = EventStore(db, shards=TEST_SHARDS)
    names = session_names(sessions)
    # Late transactions lock their side session first and a run's session second; side sessions
    # carry no runs, so no two transactions ever wait on each other in a cycle.
    sides, names = names[-writers:], names[:-writers]
    runs = max(1, events // (tokens + 4))
    queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
    for r in range(runs):
        tenant, session = names[r % len(names)]
        queue.put_nowait((r, tenant, session))
    result = Workload()

    async def writer(w: int) -> None:
        appends = 0
        while not queue.empty():
            r, tenant, session = queue.get_nowait()
            execution = f"ex{tag}_{r:05d}"
            for chunk in run_events(tenant, session, execution, tokens=tokens):
                appends += 1
                if appends % late_every == w % late_every:
                    other_tenant, other = sides[w]
                    async with db.transaction() as conn:
                        side = await store.append_in_transaction(
                            conn, [NewEvent(other_tenant, other, "Token", {"text": "", "index": 0})]
                        )
                        await asyncio.sleep(late_hold_s)
                        stored = side + await store.append_in_transaction(conn, chunk)
                    result.late_commits += 1
                else:
                    stored = await store.append_batch(chunk)
                result.written.extend(stored)
                if pace_s:
                    await asyncio.sleep(pace_s)

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return result


async def collect(
    subscription: Subscription,
    expected: Callable[[], set[int]],
    *,
    timeout_s: float,
    into: list[StoredEvent] | None = None,
) -> list[StoredEvent]:
    """Read the subscription until every expected id arrived (AssertionError naming how many are
    missing after ``timeout_s``). ``expected`` is re-evaluated: writers may still be running."""
    received = into if into is not None else []
    seen: set[int] = {e.event_id for e in received}
    target = expected()
    deadline = time.monotonic() + timeout_s
    while True:
        if len(seen) >= len(target):
            target = expected()
            if target <= seen:
                return received
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = expected() - seen
            raise AssertionError(f"{len(missing)} events never arrived, e.g. {sorted(missing)[:5]}")
        try:
            event = await asyncio.wait_for(subscription.get(), timeout=min(remaining, 1.0))
        except TimeoutError:
            target = expected()
            continue
        received.append(event)
        seen.add(event.event_id)


def assert_session_order(received: list[StoredEvent]) -> None:
    """Per ordering key, events in strictly increasing seq (repeats were dropped by eventId)."""
    last: dict[tuple[str, str], int] = defaultdict(int)
    for event in received:
        key = (event.tenant_id, event.session_id)
        assert event.seq > last[key], f"{key}: seq {event.seq} after {last[key]}"
        last[key] = event.seq
    assert len({e.event_id for e in received}) == len(received)


async def wait_caught_up(db: Database, *, timeout_s: float, name: str = "read_models") -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        position = await Checkpoints(db).position(name)
        if position.lag_events == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: still {position.lag_events} events behind")
        await asyncio.sleep(0.2)


async def all_events(db: Database) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    async with db.connection() as conn:
        cursor = await conn.execute(
            "SELECT event_id, seq, tenant_id, session_id, execution_id, event_type, payload, "
            "created_at FROM agent_events ORDER BY tenant_id, session_id, seq"
        )
        for row in await cursor.fetchall():
            out.append(StoredEvent(*row))
    return out


async def assert_read_models_match_fold(db: Database) -> int:
    """The read models equal a fresh fold of every event (runs, sessions, usage); returns the
    number of runs compared."""
    read_models = ReadModels(db)
    events = await all_events(db)
    by_session: dict[tuple[str, str], list[StoredEvent]] = defaultdict(list)
    by_execution: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in events:
        by_session[(event.tenant_id, event.session_id)].append(event)
        if event.execution_id:
            by_execution[event.execution_id].append(event)
    for (tenant, session), stream in by_session.items():
        assert await read_models.get_session(tenant, session) == fold_session(stream)
    for execution, stream in by_execution.items():
        expected = fold_run(stream)
        assert expected is not None
        assert await read_models.get_run(expected.tenant_id, execution) == expected
    async with db.connection() as conn:
        cursor = await conn.execute("SELECT count(*) FROM read_runs")
        row = await cursor.fetchone()
        assert row is not None and row[0] == len(by_execution)
    usage = fold_usage(events)
    for tenant in TENANTS:
        assert await read_models.get_usage(tenant) == {
            k: v for k, v in usage.items() if k.tenant_id == tenant
        }
    return len(by_execution)

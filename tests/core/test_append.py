"""Invariants 2 and 3: gap-free per-session order and idempotent appends under concurrency."""

from __future__ import annotations

import asyncio

import pytest

from agentlane.errors import DuplicateEvent, InvalidEvent
from agentlane.records import NewEvent
from agentlane.store import EventStore


def token(session: str, index: int, *, tenant: str = "t1") -> NewEvent:
    return NewEvent(tenant, session, "Token", {"text": f"tok{index}", "index": index})


async def test_sixteen_writers_on_one_session_get_contiguous_seq(store: EventStore) -> None:
    async def writer(w: int) -> None:
        for i in range(100):
            await store.append(token("shared", w * 1000 + i))

    await asyncio.gather(*(writer(w) for w in range(16)))

    events = await store.read_session("t1", "shared", limit=5000)
    assert [e.seq for e in events] == list(range(1, 1601))
    ids = [e.event_id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 1600
    indexes = sorted(e.data["index"] for e in events)
    assert indexes == sorted(w * 1000 + i for w in range(16) for i in range(100))
    assert await store.check_chain("t1", "shared") == []


async def test_fifty_racing_appends_with_one_key_make_one_event(store: EventStore) -> None:
    def accepted(attempt: int) -> NewEvent:
        return NewEvent(
            "t1",
            "s1",
            "RunAccepted",
            {"runId": "r1", "message": f"hello {attempt}"},
            execution_id=f"ex{attempt}",
            idempotency_key="run:r1",
        )

    results = await asyncio.gather(*(store.append(accepted(i)) for i in range(50)))

    assert sum(r.created for r in results) == 1
    assert all(r.event == results[0].event for r in results)
    assert len(await store.read_session("t1", "s1")) == 1


async def test_same_key_in_another_session_returns_the_first_event(store: EventStore) -> None:
    first = await store.append(
        NewEvent("t1", "a", "RunAccepted", {"runId": "r", "message": "m"}, "e1", "run:r")
    )
    second = await store.append(
        NewEvent("t1", "b", "RunAccepted", {"runId": "r", "message": "m"}, "e2", "run:r")
    )
    assert not second.created and second.event == first.event
    assert await store.read_session("t1", "b") == []
    # Another tenant's identical key is a different command.
    other = await store.append(
        NewEvent("t2", "a", "RunAccepted", {"runId": "r", "message": "m"}, "e3", "run:r")
    )
    assert other.created and other.event.tenant_id == "t2"


async def test_batch_is_atomic_across_sessions_and_keeps_order(store: EventStore) -> None:
    batch = [token("x", i) for i in range(5)] + [token("y", i) for i in range(3)]
    written = await store.append_batch(batch)
    assert [(e.session_id, e.seq) for e in written] == [("x", s) for s in range(1, 6)] + [
        ("y", s) for s in range(1, 4)
    ]
    keyed = NewEvent("t1", "x", "Completed", {"answer": "a"}, "e1", "done:e1")
    await store.append(keyed)
    with pytest.raises(DuplicateEvent):
        await store.append_batch([token("y", 10), keyed])
    assert len(await store.read_session("t1", "y")) == 3, "nothing of a failed batch is written"
    assert await store.check_chain("t1", "x") == []


async def test_bad_data_is_refused_and_nothing_is_written(store: EventStore) -> None:
    with pytest.raises(InvalidEvent, match=r"data\.text"):
        await store.append(NewEvent("t1", "s", "Token", {"index": 0}))
    with pytest.raises(InvalidEvent, match="unknown event type"):
        await store.append(NewEvent("t1", "s", "Nope", {}))
    with pytest.raises(InvalidEvent, match="NUL"):
        await store.append(NewEvent("t1", "s", "Token", {"text": "a\x00b", "index": 0}))
    with pytest.raises(InvalidEvent, match="sessionId"):
        await store.append(NewEvent("t1", "", "Token", {"text": "a", "index": 0}))
    assert await store.read_session("t1", "s") == []


async def test_reads_are_per_tenant(store: EventStore) -> None:
    await store.append(NewEvent("t1", "s", "RunAccepted", {"runId": "r", "message": "m"}, "e1"))
    assert await store.read_session("t2", "s") == []
    assert await store.read_execution("t2", "e1") == []
    assert len(await store.read_execution("t1", "e1")) == 1


async def test_read_session_pages_after_event_id(store: EventStore) -> None:
    await store.append_batch([token("p", i) for i in range(10)])
    first = await store.read_session("t1", "p", limit=4)
    rest = await store.read_session("t1", "p", gt=first[-1].event_id)
    assert [e.seq for e in first + rest] == list(range(1, 11))


async def test_read_session_ranges_by_event_id_and_seq_either_way(store: EventStore) -> None:
    """The one range read every consumer uses (gateway history, gap fills, the bus's order)."""
    events = await store.append_batch([token("r", i) for i in range(10)])
    ids = [e.event_id for e in events]

    async def seqs(**bounds: object) -> list[int]:
        return [e.seq for e in await store.read_session("t1", "r", **bounds)]  # type: ignore[arg-type]

    assert await seqs(gt=ids[2], lte=ids[5]) == [4, 5, 6]
    assert await seqs(gt_seq=7) == [8, 9, 10]
    assert await seqs(gt_seq=2, lte_seq=4) == [3, 4]
    assert await seqs(lte=ids[6], desc=True, limit=1) == [7]
    assert await seqs(desc=True, limit=3) == [10, 9, 8]
    assert await seqs(gt_seq=0, lte_seq=10, limit=None) == list(range(1, 11))
    assert await store.read_session("t2", "r") == [], "another tenant's stream is empty"

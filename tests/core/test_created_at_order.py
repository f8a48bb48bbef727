"""``createdAt`` never goes backwards inside a session (issue 13, bug 6).

An append that waited on the stream's head lock used to stamp its events with its transaction's
start (``now()``), taken before the wait: earlier than the events another writer committed while
it waited. ``replay export --since`` the latter's time then skipped the waiting writer's events."""

from __future__ import annotations

import asyncio

import pytest

from agentlane.db import Database
from agentlane.events import format_timestamp
from agentlane.records import NewEvent
from agentlane.store import EventStore
from tests.replay.conftest import replay_in_process


def _token(text: str) -> NewEvent:
    return NewEvent("t", "s", "Token", {"text": text, "index": 0})


async def test_a_writer_that_waited_for_the_head_stamps_after_what_it_waited_for(
    db: Database, store: EventStore, database_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with db.transaction() as early:
        await early.execute("SELECT 1")  # the transaction starts: now() is fixed here
        await asyncio.sleep(0.2)
        overtaking = (await store.append(_token("committed while the early writer waited"))).event
        [late] = await store.append_in_transaction(early, [_token("the early writer's event")])
    assert (overtaking.seq, late.seq) == (1, 2)
    assert late.created_at >= overtaking.created_at
    # An export from the first event's time has both.
    since = format_timestamp(overtaking.created_at)
    code, out, err = replay_in_process(
        database_url, "export", "--since", since, capsys=capsys, monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert len(out.strip().splitlines()) == 2


async def test_created_at_is_monotonic_under_concurrent_writers(store: EventStore) -> None:
    async def writer(n: int) -> None:
        for i in range(10):
            await store.append(_token(f"{n}.{i}"))

    await asyncio.gather(*(writer(n) for n in range(8)))
    events = await store.read_session("t", "s", limit=None)
    assert [e.seq for e in events] == list(range(1, 81))
    stamps = [e.created_at for e in events]
    assert stamps == sorted(stamps)

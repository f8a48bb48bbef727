"""The postgres bus delivers each session's events once, in seq order, whatever the tail's order.

The tail hands out ``(tx_id, event_id)`` order: a writer that took its transaction id early and
appended ``seq`` 2 after a younger transaction committed ``seq`` 1 comes out first. A page that
ends between the two must not make the bus start the session at 2 and drop 1 (issue 13, bug 3),
neither for a session it has never seen nor for one it forgot (``tracked_sessions``)."""

from __future__ import annotations

import asyncio
import contextlib

from agentlane.bus import PostgresBus
from agentlane.bus.base import Subscription
from agentlane.db import Database
from agentlane.records import NewEvent, StoredEvent
from agentlane.store import EventStore, Tail

TENANT = "t"


def _event(session: str, text: str) -> NewEvent:
    return NewEvent(TENANT, session, "Token", {"text": text, "index": 0})


async def _append_out_of_xid_order(db: Database, store: EventStore, session: str) -> None:
    """Two events of ``session`` whose seq order is the reverse of their transactions' age."""
    async with db.transaction() as older:
        await older.execute("SELECT pg_current_xact_id()")  # this transaction's id, taken first
        await store.append(_event(session, "younger transaction, lower seq"))
        await store.append_in_transaction(older, [_event(session, "older transaction, higher seq")])


async def _received(subscription: Subscription, count: int) -> list[tuple[str, int]]:
    """``(session, seq)`` of the next ``count`` events, or of those that came within 5 s."""
    got: list[StoredEvent] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            while len(got) < count:
                got.append(await subscription.get())
    return [(e.session_id, e.seq) for e in got]


async def test_a_page_between_an_out_of_order_pair_loses_nothing(
    db: Database, store: EventStore
) -> None:
    bus = PostgresBus(store, Tail(db), batch=1, poll_s=0.05)
    async with bus.subscribe() as subscription:
        await _append_out_of_xid_order(db, store, "s1")
        assert await _received(subscription, 2) == [("s1", 1), ("s1", 2)]


async def test_a_forgotten_session_resumes_after_what_it_delivered(
    db: Database, store: EventStore
) -> None:
    bus = PostgresBus(store, Tail(db), batch=1, poll_s=0.05, tracked_sessions=1)
    async with bus.subscribe() as subscription:
        await store.append(_event("a", "first"))
        assert await _received(subscription, 1) == [("a", 1)]
        await store.append(_event("b", "pushes a out of the tracked sessions"))
        assert await _received(subscription, 1) == [("b", 1)]
        await _append_out_of_xid_order(db, store, "a")
        assert await _received(subscription, 2) == [("a", 2), ("a", 3)]


async def test_events_committed_before_the_subscription_are_not_delivered(
    db: Database, store: EventStore
) -> None:
    await store.append(_event("s1", "before"))
    bus = PostgresBus(store, Tail(db), batch=1, poll_s=0.05)
    async with bus.subscribe() as subscription:
        await store.append(_event("s1", "after"))
        assert await _received(subscription, 1) == [("s1", 2)]
        await asyncio.sleep(0.3)
        assert subscription.duplicates == 0

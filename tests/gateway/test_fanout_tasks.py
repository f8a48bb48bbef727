"""Fanning an event out to sockets that keep up creates no task per socket (issue 21: a task per
socket per event was ~28% of the gateway's CPU at 10,000 sockets), and every socket still gets
every event once, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Generator
from typing import Any

from websockets.sync.client import connect

from tests.gateway.harness import gateway_thread
from tests.gateway.test_stream import event_ids, frames_until

SOCKETS, EVENTS = 20, 10


def test_live_events_reach_keeping_up_sockets_without_a_task_each(database_url: str) -> None:
    with gateway_thread(database_url, manual=True) as gw, contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(f"{gw.ws_url}/ws/s")) for _ in range(SOCKETS)]
        for ws in sockets:
            assert frames_until(ws, lambda f: len(f) == 1)[0]["type"] == "ready"
        created: list[str] = []

        async def count_tasks() -> None:
            loop = asyncio.get_running_loop()

            def factory(
                loop: asyncio.AbstractEventLoop,
                coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
                **kwargs: Any,
            ) -> asyncio.Task[Any]:
                created.append(getattr(coro, "__qualname__", repr(coro)))
                return asyncio.Task(coro, loop=loop, **kwargs)  # type: ignore[arg-type]

            loop.set_task_factory(factory)  # type: ignore[arg-type]

        gw.run(count_tasks())
        for _ in range(EVENTS):
            events = gw.append("default", "s", ["token"])
            gw.deliver(events)  # one event at a time, as a keeping-up socket sees them
            for ws in sockets:
                assert event_ids(frames_until(ws, lambda f: len(f) == 1)) == [
                    events[0].event_id
                ]
        sending = [name for name in created if name.startswith("SessionFeed.")]
        assert sending == [], f"{len(sending)} sender tasks for {SOCKETS * EVENTS} deliveries"

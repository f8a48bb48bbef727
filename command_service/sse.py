"""Server-sent events of one session: history after ``Last-Event-ID``, then live.

Live events come from re-reading the session (``read_session`` after the last sent ``eventId``)
whenever the store's append NOTIFY fires (one LISTEN connection per process, fanned out by
:class:`WakeBroadcast`) and at least every ``poll_s`` (NOTIFY is only a hint). Within a session
``eventId`` grows with ``seq`` and commit order, so reading after the last sent id never skips one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from starlette.types import Receive, Scope, Send

from agentlane.errors import StoreError
from agentlane.notifications import Wakeups
from agentlane.records import StoredEvent
from agentlane.store import EventStore

log = logging.getLogger(__name__)

PAGE = 500
PING_EVERY_S = 15.0


class WakeBroadcast:
    """Turns the single LISTEN connection's wake-ups into an event every stream can await.

    A stream takes :meth:`ticket` *before* reading the store, then waits on it: a wake-up that
    arrives while it reads has already set that ticket, so the stream reads again at once.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def close(self) -> None:
        """End every stream (drain): clients reconnect with Last-Event-ID, to another instance."""
        self.closed = True
        self.wake()

    def ticket(self) -> asyncio.Event:
        return self._event

    @staticmethod
    async def wait(ticket: asyncio.Event, timeout_s: float) -> None:
        """Return once ``ticket`` is set (a wake-up since it was taken), or after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await ticket.wait()

    def wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def pump(self, wakeups: Wakeups) -> None:
        """Forever: forward each NOTIFY (runs as a task of the component's task group)."""
        while True:
            if await wakeups.wait(5.0):
                self.wake()


def format_event(event: StoredEvent) -> bytes:
    body = json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.event_id}\ndata: {body}\n\n".encode()


class EventStream:
    """ASGI response: the session's events as ``text/event-stream`` until the client leaves."""

    def __init__(
        self,
        store: EventStore,
        broadcast: WakeBroadcast,
        *,
        tenant: str,
        session_id: str,
        after: int,
        poll_s: float = 2.0,
    ) -> None:
        self.store = store
        self.broadcast = broadcast
        self.tenant = tenant
        self.session_id = session_id
        self.after = after
        self.poll_s = poll_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        # The stream ends when the client disconnects or the store fails (the client reconnects
        # with Last-Event-ID): whichever task finishes first ends the other.
        async with asyncio.TaskGroup() as group:
            streaming = group.create_task(self._stream(send))
            listening = group.create_task(_until_disconnect(receive))
            await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
            streaming.cancel()
            listening.cancel()
        if listening.cancelled():
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, send: Send) -> None:
        last = self.after
        idle_s = 0.0
        try:
            await _send_chunk(send, b": connected\n\n")
            while not self.broadcast.closed:
                ticket = self.broadcast.ticket()
                events = await self.store.read_session(
                    self.tenant, self.session_id, gt=last, limit=PAGE
                )
                if events:
                    chunk = b"".join(format_event(event) for event in events)
                    await _send_chunk(send, chunk)
                    last = events[-1].event_id
                    idle_s = 0.0
                    if len(events) == PAGE:
                        continue
                if idle_s >= PING_EVERY_S:
                    await _send_chunk(send, b": ping\n\n")
                    idle_s = 0.0
                loop = asyncio.get_running_loop()
                started = loop.time()
                await self.broadcast.wait(ticket, self.poll_s)
                if self.broadcast.closed:
                    return
                idle_s += loop.time() - started
        except OSError:
            return  # the client went away mid-send (ASGI 2.4 servers raise instead of dropping)
        except StoreError as exc:
            log.warning("event stream ended: %s", exc)


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _send_chunk(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})

"""Replay-then-live handoff for one socket: the reconnect guarantee of docs/contract.md lives here.

The socket is registered with the hub *before* history is read, so nothing committed while the
history is being sent can be missed: it waits in a bounded buffer. History after ``lastEventId``
comes from Postgres; then the buffer is drained, dropping what was already sent and reading any
gap from Postgres again. The bus may deliver late, twice or out of order; the store may not.

An idle socket costs no task, and a socket that keeps up costs none either: a live event that
follows the last one sent is written inline, in the hub's loop, when the transport takes it
without waiting. A sender task exists only while a socket has a backlog (a blocked write, a gap,
history).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from gateway.eager import run_until_blocked
from gateway.history import HistoryReads
from gateway.hub import LiveEvent
from gateway.protocol import ready_frame

Send = Callable[[str], Coroutine[Any, Any, None]]


def _nothing() -> None:
    return None


class SessionFeed:
    """The events of one ``(tenant, session)`` for one socket, each sent once, in ``seq`` order.

    Invariant: every frame sent has ``eventId > last_event_id`` and ``seq == last_seq + 1``, or
    comes from a Postgres read that starts right after ``last_event_id`` (the store has no gaps).
    """

    __slots__ = (
        "_behind",
        "_buffer",
        "_buffer_size",
        "_control",
        "_history_sent",
        "_on_failure",
        "_on_overflow",
        "_page_size",
        "_reads",
        "_send",
        "_stall_s",
        "_task",
        "frames_sent",
        "last_event_id",
        "last_seq",
        "on_ready",
        "overflowed",
        "sending_since",
        "session_id",
        "tenant_id",
    )

    def __init__(
        self,
        reads: HistoryReads,
        *,
        tenant_id: str,
        session_id: str,
        after_event_id: int,
        send: Send,
        on_failure: Callable[[BaseException], None],
        buffer_size: int = 1024,
        page_size: int = 500,
        stall_s: float = 2.0,
        on_overflow: Callable[[], None] = _nothing,
    ) -> None:
        """``on_failure`` is told of a send or read that failed (the socket must end); it is
        called from the hub's loop too, so it must not raise."""
        self._reads = reads
        self.tenant_id = tenant_id
        self.session_id = session_id
        self._send = send
        # Created on the first live event and dropped when drained: idle sockets hold none.
        self._buffer: deque[LiveEvent] | None = None
        self._buffer_size = buffer_size
        self._page_size = page_size
        self._stall_s = stall_s
        self._on_overflow = on_overflow
        self._on_failure = on_failure
        self._task: asyncio.Task[None] | None = None
        self._control: str | None = None
        self._behind = False
        self._history_sent = False
        #: When the send in progress started (None while idle): how we tell a client that stopped
        #: reading from one that is merely behind a burst.
        self.sending_since: float | None = None
        #: Set when the buffer overflowed while the client was not reading: the socket must close.
        self.overflowed = False
        self.last_event_id = after_event_id
        #: ``seq`` of the last event sent, or at ``lastEventId`` once history is read (-1 before:
        #: no live event follows it).
        self.last_seq = -1
        #: Frames written or being written (the keepalive tells a reader that stopped by it).
        self.frames_sent = 0
        #: Called once history has been sent (metrics).
        self.on_ready: Callable[[], None] = _nothing

    def start(self) -> None:
        """Send history, then ``ready``, then whatever arrived meanwhile. Subscribe first."""
        self._kick()

    async def stop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def offer(self, event: LiveEvent) -> None:
        """Called by the hub for each live event; never blocks, never grows past the bound.

        The next event of a socket with no backlog is written at once. Otherwise it is buffered;
        on overflow the buffer is dropped: a socket stuck in one send for ``stall_s`` is a slow
        consumer (closed, 4008); otherwise it is behind a burst and re-reads from Postgres.
        """
        if self.overflowed:
            return
        if self._task is None and self._history_sent and not self._behind:
            if event.event_id <= self.last_event_id:
                return  # sent already (a duplicate, or a late copy after a read)
            if event.seq == self.last_seq + 1:
                self.last_event_id, self.last_seq = event.event_id, event.seq
                self._write(event.frame)
                return
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = deque()
        if len(buffer) >= self._buffer_size:
            buffer.clear()
            if self.stalled(time.monotonic()):
                self._give_up()
                return
            self._behind = True
        else:
            buffer.append(event)
        self._kick()

    def resync(self) -> None:
        """Re-read the store after what was sent (the bus may have lost events upstream)."""
        self._behind = True
        self._kick()

    def send_control(self, frame: str) -> None:
        """Send a control frame (a ping) now if nothing is queued, else ahead of the next events,
        on this feed's single sender: frames never interleave, a slow socket never stalls the
        caller."""
        if self._task is None and self._history_sent and not self.overflowed:
            self._write(frame)
            return
        self._control = frame
        self._kick()

    def stalled(self, now: float) -> bool:
        """True when one send has been waiting ``stall_s`` for the client to read."""
        started = self.sending_since
        return started is not None and now - started >= self._stall_s

    def _give_up(self) -> None:
        self.overflowed = True
        self._on_overflow()

    @property
    def buffered(self) -> int:
        return len(self._buffer) if self._buffer is not None else 0

    def _kick(self, blocked: Awaitable[None] | None = None) -> None:
        if self._task is None and not self.overflowed:
            self._task = asyncio.get_running_loop().create_task(self._pump(blocked))

    def _write(self, frame: str) -> None:
        """Write ``frame`` inline; if the transport makes it wait, a task finishes the write and
        then sends whatever queued behind it. Only called with no sender task."""
        self.frames_sent += 1
        try:
            blocked = run_until_blocked(self._send(frame))
        except Exception as exc:
            self._on_failure(exc)
            return
        if blocked is not None:
            self.sending_since = time.monotonic()
            self._kick(blocked)

    async def _pump(self, blocked: Awaitable[None] | None) -> None:
        try:
            if blocked is not None:
                await blocked
                self.sending_since = None
            if not self._history_sent:
                await self._catch_up()
                await self._emit(ready_frame(self.last_event_id))
                self._history_sent = True
                self.on_ready()
            while True:
                if self._control is not None:
                    frame, self._control = self._control, None
                    await self._emit(frame)
                if self._behind:
                    self._behind = False
                    await self._catch_up()
                buffer = self._buffer
                if not buffer:
                    if self._behind or self._control is not None:
                        continue  # set during the awaits above: an overflow, a ping
                    self._buffer = None
                    break
                event = buffer.popleft()
                if event.event_id <= self.last_event_id:
                    continue  # sent already (history, a duplicate, or a late copy after a read)
                if event.seq == self.last_seq + 1:
                    await self._emit(event.frame)
                    self.last_event_id, self.last_seq = event.event_id, event.seq
                else:
                    await self._catch_up()  # early (a gap): the store has everything up to it
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._on_failure(exc)
        finally:
            # No await between the empty-buffer check and here: an offer cannot slip between.
            self._task = None

    async def _catch_up(self) -> None:
        """Send everything the store holds after ``last_event_id``, page by page."""
        while True:
            history = await self._reads.after(
                self.tenant_id, self.session_id, self.last_event_id, self._page_size
            )
            # The seq at our position: where the first event read, or the first live one, follows.
            self.last_seq = history.seq_at
            for event in history.events:
                await self._emit(event.frame)
                self.last_event_id, self.last_seq = event.event_id, event.seq
            if len(history.events) < self._page_size:
                return

    async def _emit(self, frame: str) -> None:
        self.frames_sent += 1
        self.sending_since = time.monotonic()
        await self._send(frame)
        self.sending_since = None

"""Replay-then-live handoff for one socket: the reconnect guarantee of docs/contract.md lives here.

The socket is registered with the hub *before* history is read, so nothing committed while the
history is being sent can be missed: it waits in a bounded buffer. History after ``lastEventId``
comes from Postgres; then the buffer is drained, dropping what was already sent and reading any
gap from Postgres again. The bus may deliver late, twice or out of order; the store may not.

An idle socket costs no task: a sender task exists only while there is something to send.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from agentlane.store import EventStore
from gateway.hub import LiveEvent
from gateway.metrics import GatewayMetrics
from gateway.protocol import event_frame, ready_frame

Send = Callable[[str], Awaitable[None]]


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
        "_metrics",
        "_on_failure",
        "_on_overflow",
        "_page_size",
        "_send",
        "_stall_s",
        "_store",
        "_task",
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
        store: EventStore,
        *,
        tenant_id: str,
        session_id: str,
        after_event_id: int,
        send: Send,
        metrics: GatewayMetrics,
        buffer_size: int = 1024,
        page_size: int = 500,
        stall_s: float = 2.0,
        on_overflow: Callable[[], None] = _nothing,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._store = store
        self.tenant_id = tenant_id
        self.session_id = session_id
        self._send = send
        self._metrics = metrics
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
        #: ``seq`` of the last event sent, or at ``lastEventId`` once history is sent.
        self.last_seq: int | None = None
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

        On overflow the buffer is dropped: a socket stuck in one send for ``stall_s`` is a slow
        consumer (closed, 4008); otherwise it is behind a burst and re-reads from Postgres.
        """
        if self.overflowed:
            return
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = deque()
        if len(buffer) >= self._buffer_size:
            buffer.clear()
            started = self.sending_since
            if started is not None and time.monotonic() - started >= self._stall_s:
                self.overflowed = True
                self._on_overflow()
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
        """Queue a control frame (a ping) ahead of the next events, on this feed's single sender,
        so frames never interleave and a slow socket never stalls the caller."""
        self._control = frame
        self._kick()

    @property
    def buffered(self) -> int:
        return len(self._buffer) if self._buffer is not None else 0

    def _kick(self) -> None:
        if self._task is None and not self.overflowed:
            self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        try:
            if not self._history_sent:
                await self._catch_up()
                if self.last_seq is None:
                    self.last_seq = await self._seq_at(self.last_event_id)
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
                    continue  # sent already (history, a duplicate, or a late copy after a fetch)
                if self.last_seq is not None and event.seq == self.last_seq + 1:
                    await self._emit(event.frame)
                    self.last_event_id, self.last_seq = event.event_id, event.seq
                else:
                    # Early (a gap) or first of the connection: the store has everything up to it.
                    await self._catch_up()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._on_failure is None:
                raise
            self._on_failure(exc)
        finally:
            # No await between the empty-buffer check and here: an offer cannot slip between.
            self._task = None

    async def _seq_at(self, event_id: int) -> int:
        """``seq`` of the session's last event with ``eventId <= event_id`` (0: none).

        A socket that is up to date at connect learns where the live stream continues from, so
        its first live event needs no read (1,000 sockets would otherwise all read at once).
        """
        last = await self._store.read_session(
            self.tenant_id, self.session_id, lte=event_id, desc=True, limit=1
        )
        return last[0].seq if last else 0

    async def _catch_up(self) -> None:
        """Send everything the store holds after ``last_event_id``, page by page."""
        self._metrics.gap_fetches.inc()
        while True:
            events = await self._store.read_session(
                self.tenant_id, self.session_id, gt=self.last_event_id, limit=self._page_size
            )
            for event in events:
                await self._emit(event_frame(event))
                self.last_event_id, self.last_seq = event.event_id, event.seq
            if len(events) < self._page_size:
                return

    async def _emit(self, frame: str) -> None:
        self.sending_since = time.monotonic()
        await self._send(frame)
        self.sending_since = None

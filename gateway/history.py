"""Session history for sockets, one Postgres read per burst of sockets asking for the same thing.

After a gateway restart thousands of clients reconnect at once, most of them to a few hot
sessions with the same ``lastEventId``. Each asks for ``(tenant, session, lastEventId)``: whoever
asks while an identical read is still waiting for its turn joins it, and the frames are
serialised once for all of them.

Why joining is safe: a socket subscribes to live events before it asks, and a read stops taking
joiners *before* its query runs, so the read's snapshot is younger than every joiner's
subscription: whatever it misses reaches each of them live (docs/design.md, replay-then-live).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agentlane.store import EventStore
from gateway.hub import LiveEvent
from gateway.metrics import GatewayMetrics

HistoryKey = tuple[str, str, int, int]


@dataclass(frozen=True, slots=True)
class History:
    """What a socket at ``lastEventId`` is missing: the ``seq`` there and the page after it."""

    seq_at: int
    events: list[LiveEvent]


class HistoryReads:
    """Shared, bounded reads of session history for one gateway process."""

    def __init__(
        self,
        store: EventStore,
        metrics: GatewayMetrics,
        *,
        concurrency: int,
        join_window_s: float = 0.0,
    ) -> None:
        self._store = store
        self._metrics = metrics
        # How long a new read waits for others to join it before it queues for a turn.
        self._join_window_s = join_window_s
        # At most this many reads hold connections; the rest wait here, where they can be joined.
        self._turns = asyncio.Semaphore(concurrency)
        self._waiting: dict[HistoryKey, asyncio.Future[History]] = {}
        self._reads: set[asyncio.Task[None]] = set()

    async def after(self, tenant_id: str, session_id: str, after_event_id: int, limit: int
                    ) -> History:
        key = (tenant_id, session_id, after_event_id, limit)
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
            # A failure nobody awaits any more (every joiner gone) is not an unhandled one.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            task = asyncio.get_running_loop().create_task(self._read(key, future))
            self._reads.add(task)
            task.add_done_callback(self._reads.discard)
        else:
            self._metrics.history_reads_joined.inc()
        # Shielded: one joiner cancelled (its socket closed) does not cancel the others' read.
        return await asyncio.shield(future)

    async def _read(self, key: HistoryKey, future: asyncio.Future[History]) -> None:
        tenant_id, session_id, after_event_id, limit = key
        try:
            if self._join_window_s:
                await asyncio.sleep(self._join_window_s)
            async with self._turns:
                del self._waiting[key]  # no joiner after this point: the snapshot comes later
                self._metrics.gap_fetches.inc()
                seq_at, events = await self._store.read_history(
                    tenant_id, session_id, after_event_id=after_event_id, limit=limit
                )
        except BaseException as exc:
            if self._waiting.get(key) is future:
                del self._waiting[key]
            if isinstance(exc, Exception):
                future.set_exception(exc)
                return
            future.cancel()
            raise
        future.set_result(History(seq_at, [LiveEvent.of(event) for event in events]))

    async def close(self) -> None:
        for task in tuple(self._reads):
            task.cancel()
        await asyncio.gather(*self._reads, return_exceptions=True)

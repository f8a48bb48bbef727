"""One advance of one run: the journal, the events waiting to be written, the lease they carry.

Writes are batched: events wait in ``pending`` and a flusher writes them within FLUSH_INTERVAL_S
(at once for a batch of streamed tokens), so a fast run costs a few transactions, not one per
event. A step's completion may wait in ``pending`` while the next step starts; a crash then re-runs
both steps, which the at-least-once contract of activities allows. Every write carries the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agentlane.errors import FencedOut, StoreConflict, StoreError
from agentlane.events import COMMAND_TYPES
from agentlane.leases import Fence
from agentlane.records import CheckedEvent, NewEvent, StoredEvent
from agentlane.run_index import DueRun, IndexChange, PendingChange, RunIndex
from agentlane.store import Collective, TransactionHook
from runners.engine._journal import Journal
from runners.engine._metrics import EngineMetrics
from runners.engine.errors import JournalConflict

logger = logging.getLogger(__name__)

#: Journal records (completions, tool calls) wait this long to share a write with later ones;
#: streamed tokens, which a client is watching, go out at once (their batcher already waited).
FLUSH_INTERVAL_S = 0.5


class RunLog(Protocol):
    """What an advance needs of the event log: an :class:`EventStore`, or a recorded history when
    a :class:`~runners.engine.Replayer` replays one."""

    async def append_batch(
        self,
        events: Sequence[NewEvent],
        *,
        fence: Fence | None = None,
        in_transaction: TransactionHook | None = None,
        deferrable: bool = False,
        collective: Collective | None = None,
    ) -> list[StoredEvent]: ...

    async def read_execution(
        self,
        tenant_id: str,
        execution_id: str,
        *,
        gt_seq: int = 0,
        types: Collection[str] | None = None,
    ) -> list[StoredEvent]: ...

    async def resolve(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """Events with the values of their blobs in place of references."""
        ...

    async def now(self) -> datetime: ...


class Fenced(BaseException):
    """The lease moved (or another writer completed our step): stop, write nothing more."""


@dataclass(frozen=True, slots=True)
class FlushResult:
    written: list[StoredEvent]
    commands_waiting: bool


class ActiveRun:
    """The mutable state of one ``advance`` of one run."""

    def __init__(
        self,
        store: RunLog,
        run_index: RunIndex | None,
        run: DueRun,
        fence: Fence,
        journal: Journal,
        *,
        wake: asyncio.Event,
        stop: asyncio.Event,
        metrics: EngineMetrics,
    ) -> None:
        self.store = store
        self.run_index = run_index
        self.metrics = metrics
        self.run = run
        self.fence = fence
        self.journal = journal
        self.wake = wake
        self.stop = stop
        self.pending: list[NewEvent] = []
        #: Token events added and not yet committed, and who waits for them to be
        #: (:meth:`StepInfo.after_stream_written`).
        self.unwritten_tokens = 0
        self._on_tokens_written: list[Callable[[], None]] = []
        self.fenced = False
        self.failure: BaseException | None = None
        self.cancelling = False
        self.cancelled = asyncio.Event()
        self.activity: asyncio.Task[Any] | None = None
        self._lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()

    # --- events -------------------------------------------------------------------------------

    def event(self, event_type: str, data: dict[str, Any]) -> NewEvent:
        return NewEvent(
            self.run.tenant_id,
            self.run.session_id,
            event_type,
            data,
            execution_id=self.run.execution_id,
        )

    def add(self, event_type: str, data: dict[str, Any], *, urgent: bool = False) -> None:
        """Queue an event for the next flush (order is kept); ``urgent`` flushes without waiting
        out the interval (a batch of streamed tokens a client is waiting for).

        Data is validated here, so a bad value (say, a tool's NaN) fails the workflow at the call
        that produced it instead of a later batch write.
        """
        run = self.run
        self.pending.append(
            CheckedEvent.of(
                run.tenant_id, run.session_id, event_type, data, execution_id=run.execution_id
            )
        )
        if event_type == "Token":
            self.unwritten_tokens += 1
        self._dirty.set()
        if urgent:
            self._urgent.set()

    def discard_pending(self) -> None:
        self._tokens_done(sum(event.type == "Token" for event in self.pending))
        self.pending.clear()

    def after_tokens_written(self, callback: Callable[[], None]) -> bool:
        """See :meth:`StepInfo.after_stream_written`."""
        if not self.unwritten_tokens:
            return False
        self._on_tokens_written.append(callback)
        return True

    def _tokens_done(self, count: int) -> None:
        self.unwritten_tokens -= count
        if not self.unwritten_tokens and self._on_tokens_written:
            waiting, self._on_tokens_written = self._on_tokens_written, []
            loop = asyncio.get_running_loop()
            for callback in waiting:
                loop.call_soon(callback)

    async def flush(
        self,
        *,
        extra: list[NewEvent] | None = None,
        change: IndexChange | None = None,
        seen_seq: int | None = None,
    ) -> FlushResult:
        """Write what is pending (plus ``extra``) in one fenced transaction, with the index change
        those events imply; raise Fenced when the lease moved or another writer completed a step.
        Commands after ``seen_seq`` (default: the journal's end) count as waiting."""
        seen = self.journal.last_seq if seen_seq is None else seen_seq
        async with self._lock:
            if self.fenced:
                raise Fenced()
            events = [*self.pending, *(extra or [])]
            self.pending = []
            self._dirty.clear()
            if change is None:
                change = _implied_change(events)
            if not events:
                if change is None:
                    return FlushResult([], False)
                return FlushResult([], await self._change_only(change, seen))
            pending = (
                None if change is None
                else PendingChange(self.run.tenant_id, self.run.execution_id, seen, change)
            )
            tokens = sum(event.type == "Token" for event in events)
            try:
                written = await self.store.append_batch(
                    events,
                    fence=self.fence,
                    # The run's index change, with those of the other runs in the same commit.
                    collective=None if pending is None
                    else Collective(RunIndex.apply_changes, pending),
                    # Only streamed tokens: they may wait for the runner's next shared commit.
                    deferrable=change is None and all(e.type == "Token" for e in events),
                )
            except FencedOut:
                self.fenced = True
                raise Fenced() from None
            except StoreConflict as exc:
                # Another writer completed one of these steps: our view is stale.
                self.fenced = True
                raise Fenced() from JournalConflict(str(exc))
            finally:
                # Written or lost with the transaction: either way no longer waiting.
                self._tokens_done(tokens)
            waiting = pending is not None and pending.commands_waiting
            return FlushResult(written, waiting)

    async def _change_only(self, change: IndexChange, seen_seq: int) -> bool:
        assert self.run_index is not None, "only a live advance changes the run index"
        try:
            return await self.run_index.change_fenced(
                self.fence,
                tenant_id=self.run.tenant_id,
                session_id=self.run.session_id,
                execution_id=self.run.execution_id,
                seen_seq=seen_seq,
                change=change,
            )
        except FencedOut:
            self.fenced = True
            raise Fenced() from None

    # --- background work ----------------------------------------------------------------------

    async def flusher(self, workflow: asyncio.Task[Any]) -> None:
        """Write pending events about every FLUSH_INTERVAL_S; on a lost lease stop the workflow."""
        while True:
            await self._dirty.wait()
            if not self._urgent.is_set():  # streamed tokens are: no timer for them
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
                # races its timeout, and this task is cancelled on every advance's exit.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FLUSH_INTERVAL_S):
                        await self._urgent.wait()
            self._urgent.clear()
            try:
                await self.flush()
            except Fenced:
                workflow.cancel()
                return
            except StoreError as exc:
                # The batch is lost with its transaction; the journal must not go on without it.
                self.failure = exc
                workflow.cancel()
                return

    async def stop_flusher(self, flusher: asyncio.Task[Any]) -> None:
        """Stop the flusher between two writes, never inside one (a write cancelled mid-way
        would drop the batch it took)."""
        async with self._lock:
            flusher.cancel()
        await settle(flusher)

    async def watcher(self) -> None:
        """On each ``wake``: read new commands (signals, cancel) into the journal; a cancel
        interrupts the activity in flight."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                events = await self._read_commands()
            except StoreError as exc:
                # Only a hint was lost: the next wake (or the next advance) reads them.
                logger.warning("could not read new commands: %s", exc)
                continue
            self.journal.extend(events)
            if self.journal.cancel_requested:
                self.request_cancel()

    def request_cancel(self) -> None:
        if self.cancelling:
            return
        self.cancelling = True
        self.cancelled.set()
        if self.activity is not None and not self.activity.done():
            self.activity.cancel()

    async def _read_commands(self) -> list[StoredEvent]:
        return await self.store.resolve(await self.store.read_execution(
            self.run.tenant_id,
            self.run.execution_id,
            gt_seq=self.journal.last_seq,
            types=COMMAND_TYPES,
        ))

    @contextlib.contextmanager
    def running(self, task: asyncio.Task[Any]) -> Iterator[None]:
        self.activity = task
        try:
            yield
        finally:
            self.activity = None


async def settle(*tasks: asyncio.Future[Any]) -> None:
    """Wait for cancelled tasks to finish. Unlike awaiting them, a CancelledError raised here is
    always our own caller's, never theirs, so it is never swallowed by mistake."""
    if tasks:
        await asyncio.wait(tasks)


def _implied_change(events: list[NewEvent]) -> IndexChange | None:
    types = {event.type for event in events}
    if types & {"Completed", "Failed", "Cancelled"}:
        return IndexChange(delete=True)
    if types & {"RunStarted", "Resumed"}:
        return IndexChange(status="running")
    return None

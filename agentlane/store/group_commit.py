"""Group commit: concurrent callers' appends share transactions, each answered after its commit.

A caller hands its batch in and waits. When fewer than ``max_in_flight`` transactions are open, a
batch goes at once with every other batch waiting then (up to ``max_events`` events): a lone writer
waits for nobody, and under load one transaction — one fsync, a few statements — carries many
callers' writes instead of one each. Nothing is acknowledged before the commit that holds it.

One caller's failure must not fail the others it was grouped with. A batch whose fence is stale is
left out of the transaction by the write itself (its caller gets FencedOut, the rest commit). Any
other failure of a group (a taken idempotency key, a conflicting step, a transaction hook that
refuses, a deadlock) rolls the group back and each batch is retried alone, in its own
transaction, so every caller gets the answer it would have had without grouping.

A batch marked ``deferrable`` (streamed tokens: a client sees them 50 ms late anyway) starts no
transaction of its own: it waits for the next tick (``tick_s``) or for any other batch to start
one. So however many runs stream on a runner, their token writes cost about one commit per tick
instead of one per run per flush.

A caller cancelled while its batch still waits withdraws it (nothing written); once its batch is
in a transaction, the outcome is decided by that transaction, as it was for a caller cancelled
during its own commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from agentlane import telemetry
from agentlane.db import Connection, Database
from agentlane.errors import FencedOut, StoreReadOnly, StoreUnavailable
from agentlane.leases import Fence
from agentlane.records import NewEvent, StoredEvent

logger = logging.getLogger(__name__)

#: Runs inside the append's transaction, after the insert, only when something was written.
TransactionHook = Callable[[Connection, list[StoredEvent]], Awaitable[None]]

#: Work many batches of a group share: called once per transaction with every batch's item and
#: the events that batch wrote, in the group's order (one statement instead of one per batch).
CollectiveHook = Callable[[Connection, list[tuple[Any, list[StoredEvent]]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Collective:
    """A batch's share of a :data:`CollectiveHook`: batches naming the same ``hook`` have their
    ``item`` s handled by one call of it, in the transaction that writes them."""

    hook: CollectiveHook
    item: Any


#: A stream and its validated events, in order: ``((tenant, session), [(event, data), ...])``.
StreamItems = tuple[tuple[str, str], list[tuple[NewEvent, dict[str, Any]]]]


@dataclass(eq=False, slots=True)
class Batch:
    """One caller's append: its streams (sorted), the fence they carry, its transaction hook."""

    streams: list[StreamItems]
    fence: Fence | None
    hook: TransactionHook | None
    deferrable: bool = False
    collective: Collective | None = None
    #: The W3C traceparent of the caller's append span: its events carry it, and a group's
    #: transaction links to it (None when tracing is off).
    trace: str | None = None
    future: asyncio.Future[list[StoredEvent]] = field(init=False)

    def __post_init__(self) -> None:
        self.future = asyncio.get_running_loop().create_future()

    @property
    def size(self) -> int:
        return sum(len(items) for _, items in self.streams)

    def fence_of(self) -> dict[tuple[str, str], Fence | None]:
        return {stream: self.fence for stream, _ in self.streams}


#: Writes batches in the caller's open transaction: per batch, its events or FencedOut.
WriteGroup = Callable[[Connection, list[Batch]], Awaitable[list[list[StoredEvent] | FencedOut]]]


class GroupCommitter:
    """Commits :class:`Batch` es through ``write``, several per transaction (module docstring)."""

    def __init__(
        self,
        db: Database,
        write: WriteGroup,
        *,
        max_in_flight: int = 2,
        max_events: int = 2000,
        tick_s: float = 0.025,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._db = db
        self._write = write
        self.max_in_flight = max_in_flight
        self.max_events = max_events
        self.tick_s = tick_s
        self._tick: asyncio.TimerHandle | None = None
        self._tick_due = False
        #: Waiting batches that are not deferrable.
        self._urgent = 0
        self._on_commit = on_commit
        self._waiting: list[Batch] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        #: Transactions a lone caller runs in its own task (see :meth:`commit`).
        self._direct = 0
        #: Groups and batches committed, and groups that failed and were split into their batches
        #: (for benchmarks and tests).
        self.groups = 0
        self.batches = 0
        self.split = 0

    async def commit(self, batch: Batch) -> list[StoredEvent]:
        """Write ``batch`` with whatever else is waiting; return its stored events once committed.
        Raises what writing it alone would raise."""
        if not batch.deferrable and not self._waiting and (
            len(self._in_flight) + self._direct < self.max_in_flight
        ):
            return await self._commit_directly(batch)
        self._waiting.append(batch)
        self._urgent += not batch.deferrable
        self._wake()
        try:
            return await asyncio.shield(batch.future)
        except asyncio.CancelledError:
            if batch in self._waiting:
                self._waiting.remove(batch)
                self._urgent -= not batch.deferrable
                batch.future.cancel()
            raise

    async def _commit_directly(self, batch: Batch) -> list[StoredEvent]:
        """Nothing waits and a transaction is free: the caller's own task runs it (a lone
        writer pays for no task and no hand-over). Others arriving meanwhile group behind it."""
        self._direct += 1
        try:
            (outcome,) = await self._transaction([batch])
        finally:
            self._direct -= 1
            self._wake()
        self._count([outcome])
        if isinstance(outcome, FencedOut):
            raise outcome
        return outcome

    def _wake(self) -> None:
        """Start transactions for what waits, if a batch that may not wait is among it or the
        tick has come; else make sure the tick comes."""
        if self._urgent or self._tick_due:
            self._start()
        elif self._waiting and self._tick is None:
            self._tick = asyncio.get_running_loop().call_later(self.tick_s, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self._tick_due = True
        self._start()

    def _start(self) -> None:
        while self._waiting and len(self._in_flight) + self._direct < self.max_in_flight:
            group = self._take()
            task = asyncio.get_running_loop().create_task(self._run(group), name="group-commit")
            self._in_flight.add(task)
            task.add_done_callback(self._finished)
        if not self._waiting:
            self._tick_due = False
            if self._tick is not None:
                self._tick.cancel()
                self._tick = None

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake()

    def _take(self) -> list[Batch]:
        """The waiting batches for one transaction, oldest first, within ``max_events``. A batch
        that writes a stream of the group under another fence waits for the next group (a stream
        is locked once per transaction, under one fence)."""
        group: list[Batch] = []
        fences: dict[tuple[str, str], Fence | None] = {}
        events = 0
        left: list[Batch] = []
        for batch in self._waiting:
            clash = any(
                stream in fences and fences[stream] != fence
                for stream, fence in batch.fence_of().items()
            )
            if clash or (group and events + batch.size > self.max_events):
                left.append(batch)
                continue
            group.append(batch)
            fences |= batch.fence_of()
            events += batch.size
            self._urgent -= not batch.deferrable
        self._waiting = left
        return group

    async def _run(self, group: list[Batch]) -> None:
        group = [batch for batch in group if not batch.future.done()]
        if not group:
            return
        # The transaction serves many callers' traces: it gets a trace of its own, linked to each.
        with telemetry.span(
            "agentlane.store", "group commit", root=True, links=[batch.trace for batch in group],
            attributes={"agentlane.batches": len(group)},
        ):
            await self._run_group(group)

    async def _run_group(self, group: list[Batch]) -> None:
        try:
            outcomes = await self._transaction(group)
        except asyncio.CancelledError:
            _fail(group, None)
            raise
        except Exception as exc:
            if len(group) == 1 or _database_away(exc):
                # Alone or not, no batch would get through a database that is away.
                _fail(group, exc)
                return
            logger.debug("group of %d failed (%s); each batch alone", len(group), exc)
            self.split += 1
            for batch in group:
                await self._run_alone(batch)
            return
        self._settle(group, outcomes)

    async def _run_alone(self, batch: Batch) -> None:
        try:
            outcomes = await self._transaction([batch])
        except Exception as exc:
            _fail([batch], exc)
            return
        self._settle([batch], outcomes)

    async def _transaction(self, group: list[Batch]) -> list[list[StoredEvent] | FencedOut]:
        async with self._db.transaction() as conn:
            outcomes = await self._write(conn, group)
            shared: dict[CollectiveHook, list[tuple[Any, list[StoredEvent]]]] = {}
            for batch, outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, FencedOut):
                    continue
                if batch.hook is not None:
                    await batch.hook(conn, outcome)
                if batch.collective is not None:
                    shared.setdefault(batch.collective.hook, []).append(
                        (batch.collective.item, outcome)
                    )
            for hook, items in shared.items():
                await hook(conn, items)
        return outcomes

    def _count(self, outcomes: list[list[StoredEvent] | FencedOut]) -> None:
        """A transaction committed: count it, and announce it when it wrote anything."""
        self.groups += 1
        self.batches += len(outcomes)
        if self._on_commit is not None and any(
            not isinstance(outcome, FencedOut) for outcome in outcomes
        ):
            self._on_commit()

    def _settle(self, group: list[Batch], outcomes: list[list[StoredEvent] | FencedOut]) -> None:
        self._count(outcomes)
        for batch, outcome in zip(group, outcomes, strict=True):
            if batch.future.done():
                continue
            if isinstance(outcome, FencedOut):
                batch.future.set_exception(outcome)
            else:
                batch.future.set_result(outcome)


def _database_away(exc: Exception) -> bool:
    """Whether ``exc`` means the database cannot take any write now (a deadlock or a
    serialization failure is the group's own and goes away when its batches go alone)."""
    if isinstance(exc, StoreReadOnly):
        return True
    return isinstance(exc, StoreUnavailable) and exc.sqlstate not in _TRANSIENT


#: Deadlock detected, serialization failure.
_TRANSIENT = frozenset({"40P01", "40001"})


def _fail(group: list[Batch], exc: Exception | None) -> None:
    """Fail each batch's caller with ``exc`` (None: cancel them)."""
    for batch in group:
        if batch.future.done():
            continue
        if exc is None:
            batch.future.cancel()
        else:
            batch.future.set_exception(exc)

"""The gap-safe global log (docs/design.md, the gap-safe tail) and the one loop that follows it.

    Tail          read every stream's events after a position; "now" as a position; wake-ups
                  on append
    HorizonWatch  the age of the transaction horizon every reader waits behind
    Checkpoints   the named positions of durable followers (``projector_checkpoints``)
    recent_ends   how many runs ended lately, by outcome (the operations overview)
    Follower      read → handle → checkpoint → back off → wait: the projector's read models and
                  its publishing, the read-model rebuild, and the postgres bus all run this loop

A position is ``(tx_id, event_id)``. A read returns only events of transactions older than the
oldest one still running (in the same statement), so an event that commits late can never appear
behind a returned position. The order can differ from ``seq`` order inside a session; consumers
that need session order use :mod:`agentlane.store.ordering`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from psycopg.rows import tuple_row

from agentlane.backoff import Backoff
from agentlane.db import Connection, Database
from agentlane.errors import CheckpointMoved, FencedOut, StoreError
from agentlane.notifications import Wakeups
from agentlane.records import Checkpoint, TailedEvent
from agentlane.store.recorder import EVENT_COLUMNS, WAKEUP_CHANNEL, row_to_event

logger = logging.getLogger(__name__)


#: What a follower does with a batch read after a position (``after``). A durable follower moves
#: its checkpoint from ``after`` to ``batch[-1].position`` in the transaction of its effects.
BatchHandler = Callable[[list[TailedEvent], Checkpoint], Awaitable[None]]
#: Where a follower (re)starts: given where it got to (None at start), the position to read after.
Resume = Callable[[Checkpoint | None], Awaitable[Checkpoint]]

_READ = (
    # The text copy of tx_id gets its own name: a bare "ORDER BY tx_id" would otherwise sort by
    # the output column, as text ('999' > '1000').
    f"SELECT {EVENT_COLUMNS}, tx_id::text AS tx_text FROM agent_events e "
    "WHERE (e.tx_id, e.event_id) > (%s::text::xid8, %s) "
    "AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
    "ORDER BY e.tx_id, e.event_id LIMIT %s"
)

_LAG = """
SELECT c.tx_id, c.event_id, c.updated_at,
       (SELECT count(*) FROM (
            SELECT 1 FROM agent_events e
            WHERE (e.tx_id, e.event_id) > (c.tx_id::text::xid8, c.event_id)
            LIMIT %s) pending),
       coalesce((SELECT extract(epoch FROM now() - min(e.created_at))
                 FROM (SELECT created_at FROM agent_events
                       WHERE (tx_id, event_id) > (c.tx_id::text::xid8, c.event_id)
                       ORDER BY tx_id, event_id LIMIT 1000) e), 0)
FROM projector_checkpoints c WHERE c.name = %s
"""


class Tail:
    """Reads of the global log, borrowing connections from ``db``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def read(self, after: Checkpoint, *, limit: int = 1000) -> list[TailedEvent]:
        """Events of every stream after ``after``, gap-safe (see the module docstring)."""
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(_READ, (str(after.tx_id), after.event_id, limit))
            rows = await cursor.fetchall()
        return [TailedEvent(row_to_event(row), Checkpoint(int(row[9]), row[0])) for row in rows]

    async def live_position(self) -> Checkpoint:
        """A position for a reader that wants only what commits from now on.

        It may repeat a few recent events (consumers dedupe by ``eventId``) but never skips one.
        """
        async with self._db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1"
                )
            ).fetchone()
        assert row is not None
        return Checkpoint(int(row[0]), 2**63 - 1)

    def wakeups(self) -> Wakeups:
        """A LISTEN on the append channel (``async with``): wakes a reader when events commit."""
        return Wakeups(self._db.conninfo, WAKEUP_CHANNEL)


class HorizonWatch:
    """How long the gap-safe horizon has been held back: the age of the oldest transaction every
    tail reader waits behind.

    ``pg_stat_activity`` shows other roles' transaction ids only to superusers and members of
    ``pg_read_all_stats``, so a least-privilege role asking it would read 0 forever. The watch
    looks at the horizon itself instead, as any role can: while the transaction at ``xmin`` is
    still running (it holds the lock on its own id, and ``pg_locks`` is readable by all) the age
    is the time since the watch first saw that ``xmin``: a lower bound, exact to one sampling
    interval. Where ``pg_stat_activity`` does show it, its start time is used (exact at once).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._xmin: int | None = None
        self._since = 0.0

    async def age_s(self, conn: Connection | None = None) -> float:
        """The horizon's age now (on ``conn`` when given: a caller's snapshot)."""
        if conn is None:
            async with self._db.connection() as own:
                return await self.age_s(own)
        row = await (await conn.execute(_HORIZON)).fetchone()
        assert row is not None
        xmin, held, visible_age = int(row[0]), bool(row[1]), float(row[2])
        now = time.monotonic()
        if not held:
            self._xmin = None
            return 0.0
        if xmin != self._xmin:
            self._xmin, self._since = xmin, now
        return max(visible_age, now - self._since)


# pg_locks names a transaction by its 32-bit id: the low half of the xid8 horizon.
_HORIZON = """
SELECT h.xmin,
       EXISTS (SELECT 1 FROM pg_locks l
               WHERE l.locktype = 'transactionid'
                 AND l.transactionid::text::bigint = h.xmin % 4294967296),
       coalesce((SELECT extract(epoch FROM now() - min(xact_start))
                 FROM pg_stat_activity WHERE backend_xid IS NOT NULL), 0)
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin) h
"""


@dataclass(frozen=True, slots=True)
class Position:
    """How far one named checkpoint has got, and how far behind the log it is."""

    name: str
    checkpoint: Checkpoint
    updated_at: datetime
    #: Committed events after the checkpoint (counted up to a cap).
    lag_events: int
    #: Age of the oldest such event by the database clock (0 when caught up).
    lag_s: float


class Checkpoints:
    """The named positions of durable followers: ``projector_checkpoints``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, name: str) -> Checkpoint:
        async with self._db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT tx_id, event_id FROM projector_checkpoints WHERE name = %s", (name,)
                )
            ).fetchone()
        if row is None:
            raise StoreError(f"no checkpoint named {name!r} (migrations applied?)")
        return Checkpoint(int(row[0]), int(row[1]))

    def resume(self, name: str) -> Resume:
        """A follower's :data:`Resume` that restarts from the stored checkpoint ``name``."""

        async def resume(_current: Checkpoint | None) -> Checkpoint:
            return await self.load(name)

        return resume

    @staticmethod
    async def advance(conn: Connection, name: str, expected: Checkpoint, new: Checkpoint) -> None:
        """Inside a batch's transaction: move ``name`` from ``expected`` to ``new`` (a
        compare-and-set: CheckpointMoved if anything else moved it, and the batch rolls back).

        Takes the checkpoint's row lock first, before any row the batch writes (a rebuild's
        order too).
        """
        cursor = await conn.execute(
            "UPDATE projector_checkpoints SET tx_id = %s, event_id = %s, updated_at = now() "
            "WHERE name = %s AND tx_id = %s AND event_id = %s RETURNING 1",
            (new.tx_id, new.event_id, name, expected.tx_id, expected.event_id),
        )
        if await cursor.fetchone() is None:
            raise CheckpointMoved(name)

    @staticmethod
    async def lock(conn: Connection, name: str) -> None:
        """Inside a transaction: hold ``name`` so no batch of its follower commits meanwhile."""
        await conn.execute(
            "SELECT 1 FROM projector_checkpoints WHERE name = %s FOR UPDATE", (name,)
        )

    @staticmethod
    async def set(conn: Connection, name: str, position: Checkpoint) -> None:
        await conn.execute(
            "UPDATE projector_checkpoints SET tx_id = %s, event_id = %s, updated_at = now() "
            "WHERE name = %s",
            (position.tx_id, position.event_id, name),
        )

    async def position(self, name: str, *, lag_cap: int = 1_000_000) -> Position:
        """Checkpoint ``name`` and its lag behind the log."""
        async with self._db.connection() as conn:
            return await self.position_in(conn, name, lag_cap=lag_cap)

    @staticmethod
    async def position_in(conn: Connection, name: str, *, lag_cap: int = 1_000_000) -> Position:
        """:meth:`position` on the caller's connection (the operations overview's snapshot)."""
        row = await (await conn.execute(_LAG, (lag_cap, name))).fetchone()
        if row is None:
            raise StoreError(f"no checkpoint named {name!r} (migrations applied?)")
        tx_id, event_id, updated_at, lag_events, lag_s = row
        return Position(
            name=name,
            checkpoint=Checkpoint(int(tx_id), int(event_id)),
            updated_at=updated_at,
            lag_events=int(lag_events),
            lag_s=max(0.0, float(lag_s)),
        )


@dataclass(frozen=True, slots=True)
class RecentEnds:
    """Runs that ended lately: ``counts`` of ``Completed``, ``Failed`` and ``Cancelled`` events
    committed in the last ``window_s`` seconds (database time). Only the newest ``scan_cap``
    ends of the window are looked at; when the window holds more (``sampled``), ``window_s`` is
    what those cover, so ``count / window_s`` is still the rate."""

    counts: dict[str, int]
    window_s: float
    sampled: bool


_TERMINAL_TYPES = ("Completed", "Failed", "Cancelled")

# The index of ends by createdAt (ddl/0043) walks back from now over run ends only; the scan stops
# at the cap whatever the window holds.
_RECENT_ENDS = f"""
SELECT event_type, count(*), extract(epoch FROM now() - min(created_at))::float8
FROM (SELECT event_type, created_at FROM agent_events
      WHERE event_type IN ({", ".join(f"'{kind}'" for kind in _TERMINAL_TYPES)})
        AND created_at > now() - make_interval(secs => %s)
      ORDER BY created_at DESC LIMIT %s) recent
GROUP BY event_type
"""


async def recent_ends(
    conn: Connection, *, window_s: float = 60.0, scan_cap: int = 20_000
) -> RecentEnds:
    """How many runs ended (by outcome) in the last ``window_s`` seconds: a bounded read of the
    newest run ends, for the operations overview."""
    rows = await (await conn.execute(_RECENT_ENDS, (window_s, scan_cap))).fetchall()
    counts = {name.lower(): 0 for name in _TERMINAL_TYPES}
    for event_type, count, _ in rows:
        counts[str(event_type).lower()] = int(count)
    sampled = sum(int(row[1]) for row in rows) >= scan_cap
    covered = max((float(row[2]) for row in rows), default=window_s) if sampled else window_s
    return RecentEnds(counts, max(covered, 0.001), sampled)


def in_memory(start: Checkpoint) -> Resume:
    """A follower's :data:`Resume` for a volatile follower: from ``start``, then where it got to
    (after a failure it reads the same position again)."""

    async def resume(current: Checkpoint | None) -> Checkpoint:
        return start if current is None else current

    return resume


def _drop(task: asyncio.Task[list[TailedEvent]] | None) -> None:
    """Abandon a read-ahead (its result, or its error, is not wanted any more)."""
    if task is not None:
        task.cancel()
        # Retrieve an error it may already hold, so asyncio does not log it as never retrieved.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())


class Follower:
    """read → handle → checkpoint → back off → wait, over the gap-safe log.

    Model: eventsourcing's ``Follower.pull_and_process`` with its ``Tracking`` records. ``handle``
    gets each batch and the position it was read after; a durable handler records the batch's last
    position in the transaction of its effects, so a crash repeats nothing and skips nothing.
    Errors in ``retry_on`` are logged, reported to ``on_failure``, backed off, and the follower
    resumes (``resume``: a durable follower rewinds to its stored checkpoint); CheckpointMoved
    resumes at once; FencedOut (its holder lost the lease) and anything else end :meth:`run`.
    NOTIFY only wakes it; it also polls: ``recheck_s`` after a wake-up or a batch, doubling while
    reads come back empty, up to ``poll_s``.
    """

    def __init__(
        self,
        tail: Tail,
        handle: BatchHandler,
        *,
        name: str,
        resume: Resume,
        batch_size: int = 1000,
        poll_s: float = 1.0,
        recheck_s: float = 0.05,
        backoff: Backoff | None = None,
        retry_on: tuple[type[BaseException], ...] = (StoreError,),
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._tail = tail
        self._handle = handle
        self.name = name
        self._resume = resume
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._recheck_s = min(recheck_s, poll_s)
        self._backoff = backoff or Backoff(initial_s=0.2, maximum_s=5.0)
        self._retry_on = retry_on
        self._on_failure = on_failure
        #: Where the next read starts: the end of the last batch handled, or where it resumed.
        self.position: Checkpoint | None = None

    async def run(self) -> NoReturn:
        """Follow the log forever (cancel to stop).

        After a full batch the next read starts while the batch is handled (the read touches only
        the log, the handler its own tables), so a follower that is behind costs
        max(read, handle) per batch rather than their sum; a failed or moved handler drops that
        read and resumes from its checkpoint as before."""
        reload = True
        ahead: asyncio.Task[list[TailedEvent]] | None = None
        idle_s = self._recheck_s
        try:
            async with self._tail.wakeups() as wakeups:
                while True:
                    full = got = False
                    try:
                        if reload or self.position is None:
                            _drop(ahead)
                            ahead = None
                            self.position = await self._resume(self.position)
                            reload = False
                        after = self.position
                        if ahead is not None:
                            batch, ahead = await ahead, None
                        else:
                            batch = await self._tail.read(after, limit=self._batch_size)
                        if batch:
                            got = True
                            full = len(batch) == self._batch_size
                            if full:
                                ahead = self._read_after(batch)
                            await self._handle(batch, after)
                            self.position = batch[-1].position
                        self._backoff.reset()
                    except CheckpointMoved:
                        reload = True  # the stored checkpoint is the truth: resume from it now
                        continue
                    except FencedOut:
                        raise  # the holder lost its lease: retrying would only be refused again
                    except self._retry_on as exc:
                        self._failed(exc)
                        reload = True
                        await self._backoff.sleep()
                        continue
                    if not full:
                        # A wake-up can come before its event is below the horizon: a transaction
                        # that sends none (a lease renewal, a checkpoint) may hold it back. So the
                        # follower looks again soon after a wake-up or a batch and only backs off
                        # to poll_s while nothing comes.
                        idle_s = self._recheck_s if got else min(idle_s * 2, self._poll_s)
                        if await wakeups.wait(idle_s):
                            idle_s = self._recheck_s
        finally:
            _drop(ahead)

    async def catch_up(self, after: Checkpoint) -> Checkpoint:
        """Handle everything below the horizon after ``after`` now (no waiting, no retries; the
        next read overlaps the handling of each batch, as in :meth:`run`); returns the position
        reached."""
        position = after
        ahead: asyncio.Task[list[TailedEvent]] | None = None
        try:
            batch = await self._tail.read(position, limit=self._batch_size)
            while batch:
                ahead = self._read_after(batch)
                await self._handle(batch, position)
                position = batch[-1].position
                batch, ahead = await ahead, None
        finally:
            _drop(ahead)
        self.position = position
        return position

    def _read_after(self, batch: list[TailedEvent]) -> asyncio.Task[list[TailedEvent]]:
        return asyncio.ensure_future(self._tail.read(batch[-1].position, limit=self._batch_size))

    def _failed(self, exc: BaseException) -> None:
        if self._on_failure is not None:
            self._on_failure(exc)
        logger.warning(
            "%s: reading or handling a batch failed; backing off and resuming: %s", self.name, exc
        )

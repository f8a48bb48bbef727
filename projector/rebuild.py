"""Recreate the read models from events alone, safe while the projector runs.

1. Fold every event into fresh ``*_rebuild`` tables with the projector's own projection (short
   transactions, no locks on the live tables), following the log up to its horizon.
2. In one transaction: lock the ``read_models`` checkpoint row (the projector's batches take it
   first, so they queue behind us), lock the live tables, fold what committed since step 1, swap
   the tables by renaming, and set the checkpoint to where the new tables end. A projector batch
   that was waiting finds its checkpoint moved, rolls back and continues from the new position.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agentlane.db import Connection, Database
from agentlane.readmodels import (
    LIVE_TABLES,
    READ_MODELS_CHECKPOINT,
    ReadModelTables,
    apply_events,
    create_empty,
    lock_live,
    swap_in,
)
from agentlane.records import Checkpoint, TailedEvent
from agentlane.store import Checkpoints, EventStore, Follower, Tail, in_memory
from projector.errors import ProjectorError

logger = logging.getLogger(__name__)

_REBUILD_LOCK = 0x70726F6A72626C64  # "projrbld": one rebuild at a time
_SUFFIX = "_rebuild"


@dataclass(frozen=True, slots=True)
class RebuildResult:
    events: int
    checkpoint: Checkpoint


async def rebuild_read_models(db: Database, *, batch_size: int = 5000) -> RebuildResult:
    """Recreate ``read_runs``, ``read_sessions`` and ``read_usage_daily`` from ``agent_events``
    and swap them in atomically (see the module docstring). ProjectorError if a rebuild is
    already running."""
    store = EventStore(db, shards=1)  # reads only; the shard count matters to fenced appends
    new = LIVE_TABLES.with_suffix(_SUFFIX)
    async with db.connection() as guard:
        row = await (
            await guard.execute("SELECT pg_try_advisory_lock(%s)", (_REBUILD_LOCK,))
        ).fetchone()
        if not row or not row[0]:
            raise ProjectorError("a read-model rebuild is already running")
        try:
            await create_empty(guard, new)
            folded = _Fold(store, new, batch_size)
            position = await folded.follower(db).catch_up(Checkpoint())
            async with db.transaction() as conn:
                await Checkpoints.lock(conn, READ_MODELS_CHECKPOINT)
                await lock_live(conn)
                position = await folded.follower(db, conn=conn).catch_up(position)
                await swap_in(conn, new)
                await Checkpoints.set(conn, READ_MODELS_CHECKPOINT, position)
        finally:
            await guard.execute("SELECT pg_advisory_unlock(%s)", (_REBUILD_LOCK,))
    logger.info("read models rebuilt from %s events", folded.events)
    return RebuildResult(events=folded.events, checkpoint=position)


class _Fold:
    """The rebuild's follower: each batch into the new tables (its own short transaction, or the
    swap's transaction ``conn``)."""

    def __init__(self, store: EventStore, tables: ReadModelTables, batch_size: int) -> None:
        self._store = store
        self._tables = tables
        self._batch_size = batch_size
        self.events = 0

    def follower(self, db: Database, *, conn: Connection | None = None) -> Follower:
        async def fold(batch: list[TailedEvent], _after: Checkpoint) -> None:
            events = [t.event for t in batch]
            if conn is not None:
                self.events += await apply_events(conn, self._store, events, self._tables)
                return
            async with db.transaction() as own:
                self.events += await apply_events(own, self._store, events, self._tables)

        return Follower(
            Tail(db), fold, name="rebuild", resume=in_memory(Checkpoint()),
            batch_size=self._batch_size,
        )

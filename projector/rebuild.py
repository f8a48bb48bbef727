"""Recreate the read models from events alone, safe while the projector runs.

1. Fold every event into fresh ``*_rebuild`` tables with the projector's own apply (short
   transactions, no locks on the live tables).
2. In one transaction: lock the ``read_models`` checkpoint row (the projector's batches take it
   first, so they queue behind us), lock the live tables, fold what committed since step 1, swap
   the tables by renaming, and set the checkpoint to where the new tables end. A projector batch
   that was waiting finds its checkpoint moved, rolls back and continues from the new position.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from agentlane.db import translate_errors
from agentlane.readmodel import CHECKPOINTS_TABLE, READ_MODELS_CHECKPOINT
from agentlane.records import Checkpoint
from agentlane.store import EventStore
from projector.checkpoint import set_checkpoint
from projector.errors import ProjectorError
from projector.readmodels import LIVE_TABLES, ReadModelTables, apply_events

logger = logging.getLogger(__name__)

_REBUILD_LOCK = 0x70726F6A72626C64  # "projrbld": one rebuild at a time
_SUFFIX = "_rebuild"


@dataclass(frozen=True, slots=True)
class RebuildResult:
    events: int
    checkpoint: Checkpoint


async def rebuild_read_models(
    pool: AsyncConnectionPool, *, batch_size: int = 5000
) -> RebuildResult:
    """Recreate ``read_runs``, ``read_sessions`` and ``read_usage_daily`` from ``agent_events``
    and swap them in atomically (see the module docstring). ProjectorError if a rebuild is
    already running."""
    store = EventStore(pool, shards=1)  # reads only; the shard count matters to fenced appends
    new = LIVE_TABLES.with_suffix(_SUFFIX)
    with translate_errors():
        async with pool.connection() as guard:
            cursor = guard.cursor(row_factory=tuple_row)
            await cursor.execute("SELECT pg_try_advisory_lock(%s)", (_REBUILD_LOCK,))
            row = await cursor.fetchone()
            if not row or not row[0]:
                raise ProjectorError("a read-model rebuild is already running")
            try:
                await _create_empty(guard, new)
                position, events = await _fold_into(store, new, Checkpoint(), batch_size)
                async with pool.connection() as conn, conn.transaction():
                    await conn.execute(
                        f"SELECT 1 FROM {CHECKPOINTS_TABLE} WHERE name = %s FOR UPDATE",
                        (READ_MODELS_CHECKPOINT,),
                    )
                    await conn.execute(
                        sql.SQL("LOCK TABLE {}, {}, {} IN ACCESS EXCLUSIVE MODE").format(
                            *map(sql.Identifier, _names(LIVE_TABLES))
                        )
                    )
                    position, more = await _fold_into(store, new, position, batch_size, conn=conn)
                    await _swap(conn, new, LIVE_TABLES)
                    await set_checkpoint(conn, READ_MODELS_CHECKPOINT, position)
            finally:
                await guard.execute("SELECT pg_advisory_unlock(%s)", (_REBUILD_LOCK,))
    logger.info("read models rebuilt from %s events", events + more)
    return RebuildResult(events=events + more, checkpoint=position)


def _names(tables: ReadModelTables) -> tuple[str, str, str]:
    return (tables.runs, tables.sessions, tables.usage)


async def _create_empty(conn: psycopg.AsyncConnection[Any], new: ReadModelTables) -> None:
    for live, fresh in zip(_names(LIVE_TABLES), _names(new), strict=True):
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(fresh)))
        await conn.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                sql.Identifier(fresh), sql.Identifier(live)
            )
        )


async def _fold_into(
    store: EventStore,
    tables: ReadModelTables,
    position: Checkpoint,
    batch_size: int,
    *,
    conn: psycopg.AsyncConnection[Any] | None = None,
) -> tuple[Checkpoint, int]:
    """Apply the gap-safe tail after ``position`` up to the current horizon."""
    total = 0
    while batch := await store.read_tail(position, limit=batch_size):
        events = [t.event for t in batch]
        if conn is not None:
            total += await apply_events(conn, events, tables)
        else:
            async with store.pool.connection() as own, own.transaction():
                total += await apply_events(own, events, tables)
        position = batch[-1].position
    return position, total


async def _swap(
    conn: psycopg.AsyncConnection[Any], new: ReadModelTables, live: ReadModelTables
) -> None:
    for fresh, current in zip(_names(new), _names(live), strict=True):
        old = sql.Identifier(current + "_old")
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(old))
        await conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(current), old)
        )
        await conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(fresh), sql.Identifier(current)
            )
        )
        await conn.execute(sql.SQL("DROP TABLE {}").format(old))

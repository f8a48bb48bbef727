"""The projector's checkpoints: gap-safe tail positions in ``projector_checkpoints``.

An advance is a compare-and-set from the position the batch was read after: if anything else moved
the checkpoint meanwhile (a rebuild swapping in new tables), the batch's transaction rolls back and
the projector reloads instead of writing on top.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import tuple_row

from agentlane.readmodel import CHECKPOINTS_TABLE
from agentlane.records import Checkpoint
from projector.errors import CheckpointMoved


async def load_checkpoint(conn: psycopg.AsyncConnection[Any], name: str) -> Checkpoint:
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute(
        f"SELECT tx_id, event_id FROM {CHECKPOINTS_TABLE} WHERE name = %s", (name,)
    )
    row = await cursor.fetchone()
    if row is None:
        raise LookupError(f"no projector checkpoint named {name!r} (migrations applied?)")
    return Checkpoint(int(row[0]), int(row[1]))


async def advance_checkpoint(
    conn: psycopg.AsyncConnection[Any], name: str, expected: Checkpoint, new: Checkpoint
) -> None:
    """Inside the batch's transaction: move ``name`` from ``expected`` to ``new``.

    Takes the checkpoint's row lock first, before any read-model row (the rebuild's order too).
    """
    cursor = conn.cursor(row_factory=tuple_row)
    await cursor.execute(
        f"UPDATE {CHECKPOINTS_TABLE} SET tx_id = %s, event_id = %s, updated_at = now() "
        "WHERE name = %s AND tx_id = %s AND event_id = %s RETURNING 1",
        (new.tx_id, new.event_id, name, expected.tx_id, expected.event_id),
    )
    if await cursor.fetchone() is None:
        raise CheckpointMoved(name)


async def set_checkpoint(
    conn: psycopg.AsyncConnection[Any], name: str, position: Checkpoint
) -> None:
    await conn.execute(
        f"UPDATE {CHECKPOINTS_TABLE} SET tx_id = %s, event_id = %s, updated_at = now() "
        "WHERE name = %s",
        (position.tx_id, position.event_id, name),
    )

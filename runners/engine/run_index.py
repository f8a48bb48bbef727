"""The engine's writes to ``run_index`` (ddl/0003), always inside a transaction it already holds.

A run's row changes with the events that change it (same transaction), and its row is deleted with
the terminal event. Setting ``wake_at`` must never hide a command: a signal or cancel that committed
while we were deciding to wait makes the row due at once instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import tuple_row

from agentlane.db import translate_errors
from agentlane.errors import FencedOut
from agentlane.records import Fence

Wake = Literal["keep", "now", "never"] | datetime


@dataclass(frozen=True, slots=True)
class IndexChange:
    """What to do to the run's row: delete it, or set its status and next wake time."""

    status: Literal["queued", "running", "suspended"] | None = None
    wake: Wake = "keep"
    delete: bool = False


_NEWER_COMMANDS = (
    "EXISTS (SELECT 1 FROM agent_events WHERE execution_id = %(execution)s "
    "AND seq > %(seen)s AND event_type IN ('SignalReceived', 'CancelRequested'))"
)


async def apply_change(
    conn: psycopg.AsyncConnection[Any],
    *,
    tenant_id: str,
    execution_id: str,
    seen_seq: int,
    change: IndexChange,
) -> bool:
    """Apply ``change``; True when a command newer than ``seen_seq`` is waiting (the run is due).

    The caller holds the session's stream-head lock, so every command committed before it is
    visible to these statements and no command can commit until this transaction ends.
    """
    params = {"tenant": tenant_id, "execution": execution_id, "seen": seen_seq}
    cursor = conn.cursor(row_factory=tuple_row)
    if change.delete:
        await cursor.execute(
            "DELETE FROM run_index WHERE tenant_id = %(tenant)s AND execution_id = %(execution)s",
            params,
        )
        return False
    sets = ["updated_at = now()"]
    if change.status is not None:
        sets.append("status = %(status)s")
        params["status"] = change.status
    if change.wake == "now":
        sets.append("wake_at = now()")
    elif change.wake == "never":
        sets.append(f"wake_at = CASE WHEN {_NEWER_COMMANDS} THEN now() END")
    elif isinstance(change.wake, datetime):
        sets.append(f"wake_at = CASE WHEN {_NEWER_COMMANDS} THEN now() ELSE %(wake)s END")
        params["wake"] = change.wake
    await cursor.execute(
        f"UPDATE run_index SET {', '.join(sets)} "
        "WHERE tenant_id = %(tenant)s AND execution_id = %(execution)s "
        f"RETURNING {_NEWER_COMMANDS}",
        params,
    )
    row = await cursor.fetchone()
    return bool(row[0]) if row is not None else False


async def change_fenced(
    conn: psycopg.AsyncConnection[Any],
    *,
    fence: Fence,
    tenant_id: str,
    session_id: str,
    execution_id: str,
    seen_seq: int,
    change: IndexChange,
) -> bool:
    """Apply ``change`` with no event (a re-suspension, a timer not yet due, a drain), checking the
    lease and taking the session's head lock first, as an append would."""
    with translate_errors():
        async with conn.transaction():
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(
                "SELECT 1 FROM cluster_shards WHERE shard_id = %s AND runner_id = %s "
                "AND lease_token = %s AND lease_expires_at > now() FOR SHARE",
                (fence.shard_id, fence.runner_id, fence.lease_token),
            )
            if await cursor.fetchone() is None:
                raise FencedOut(
                    shard_id=fence.shard_id,
                    runner_id=fence.runner_id,
                    lease_token=fence.lease_token,
                )
            await cursor.execute(
                "SELECT 1 FROM agent_stream_heads WHERE tenant_id = %s AND session_id = %s "
                "FOR UPDATE",
                (tenant_id, session_id),
            )
            return await apply_change(
                conn,
                tenant_id=tenant_id,
                execution_id=execution_id,
                seen_seq=seen_seq,
                change=change,
            )

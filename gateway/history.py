"""Reads of a session's history that the store's API does not offer."""

from __future__ import annotations

from psycopg.rows import tuple_row

from agentlane.db import translate_errors
from agentlane.store import EventStore

_SEQ_AT = (
    "SELECT seq FROM agent_events WHERE tenant_id = %s AND session_id = %s AND event_id <= %s "
    "ORDER BY event_id DESC LIMIT 1"
)


async def seq_at(store: EventStore, tenant_id: str, session_id: str, event_id: int) -> int:
    """``seq`` of the session's last event with ``eventId <= event_id`` (0: none).

    A socket that is up to date at connect learns where the live stream continues from, so its
    first live event needs no read (1,000 sockets would otherwise all read at once).
    """
    async with store.pool.connection() as conn:
        with translate_errors():
            cursor = conn.cursor(row_factory=tuple_row)
            await cursor.execute(_SEQ_AT, (tenant_id, session_id, event_id))
            row = await cursor.fetchone()
    return int(row[0]) if row else 0

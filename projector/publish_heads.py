"""The last ``seq`` published per session (``projector_publish_heads``): the publish loop's order.

The tail's order can differ from ``seq`` order inside a session; the publish loop publishes each
session in ``seq`` order after the last ``seq`` it published, and records the new heads in the
transaction that moves its checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentlane.db import Connection, Database
from agentlane.records import StoredEvent
from agentlane.store import EventStore
from agentlane.store.ordering import in_seq_order


class PublishHeads:
    """Reads and writes of ``projector_publish_heads`` through ``db``."""

    def __init__(self, db: Database, store: EventStore) -> None:
        self._db = db
        self._store = store

    async def order(self, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """``events`` per session in ``seq`` order after its last published ``seq`` (gaps read
        from the store, repeats dropped)."""
        keys = sorted({(e.tenant_id, e.session_id) for e in events})
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT h.tenant_id, h.session_id, h.last_seq FROM projector_publish_heads h "
                "JOIN unnest(%s::text[], %s::text[]) AS k(t, s) "
                "ON h.tenant_id = k.t AND h.session_id = k.s",
                ([k[0] for k in keys], [k[1] for k in keys]),
            )
            heads = {(row[0], row[1]): int(row[2]) for row in await cursor.fetchall()}
        ordered = await in_seq_order(self._store, events, heads)
        return [event for stream in ordered.values() for event in stream]

    @staticmethod
    async def save(conn: Connection, published: Sequence[StoredEvent]) -> None:
        """Inside the batch's transaction: each session's head is its last event published."""
        heads: dict[tuple[str, str], int] = {}
        for event in published:
            heads[(event.tenant_id, event.session_id)] = event.seq
        if not heads:
            return
        keys = sorted(heads)
        await conn.execute(
            "INSERT INTO projector_publish_heads (tenant_id, session_id, last_seq) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
            "ON CONFLICT (tenant_id, session_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
            ([k[0] for k in keys], [k[1] for k in keys], [heads[k] for k in keys]),
        )

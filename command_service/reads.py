"""The read side of the API: one run's state and pages of a session's events, tenant-scoped.

A run comes from the projector's read model (``read_runs``, mapped by :mod:`agentlane.readmodel`)
when its row has seen every event of the run, and otherwise (no row yet, the projector lags, or no
read model in this database) from folding the run's events, so an id that POST returned is never
404.
"""

from __future__ import annotations

from typing import Any

from psycopg import errors as pg_errors
from psycopg.rows import tuple_row

from agentlane.db import translate_errors
from agentlane.errors import RunNotFound
from agentlane.folds import fold_run
from agentlane.readmodel import RUN_COLUMNS, RUNS_TABLE, run_from_row
from agentlane.records import StoredEvent
from agentlane.store import EventStore

# One round trip: the read model's row and whether it has seen every event of the run.
_READ_MODEL_RUN = (
    f"SELECT {', '.join('r.' + column for column in RUN_COLUMNS)}, "
    "NOT EXISTS (SELECT 1 FROM agent_events e WHERE e.execution_id = r.execution_id "
    "AND e.tenant_id = r.tenant_id AND e.seq > r.last_seq) "
    f"FROM {RUNS_TABLE} r WHERE r.tenant_id = %s AND r.execution_id = %s"
)


class RunReader:
    """Answers ``GET /runs/{id}``; ``use_read_model`` is decided once at start (table present)."""

    def __init__(self, store: EventStore, *, use_read_model: bool) -> None:
        self.store = store
        self.use_read_model = use_read_model

    async def run(self, tenant: str, execution_id: str) -> dict[str, Any]:
        if self.use_read_model:
            body = await self._from_read_model(tenant, execution_id)
            if body is not None:
                return body
        state = fold_run(await self.store.read_execution(tenant, execution_id))
        if state is None:
            raise RunNotFound(execution_id)
        return state.to_json()

    async def _from_read_model(self, tenant: str, execution_id: str) -> dict[str, Any] | None:
        with translate_errors():
            async with self.store.pool.connection() as conn:
                try:
                    cursor = conn.cursor(row_factory=tuple_row)
                    await cursor.execute(_READ_MODEL_RUN, (tenant, execution_id))
                    row = await cursor.fetchone()
                except pg_errors.UndefinedTable:
                    # `replay rebuild` swaps the tables; folding is always correct meanwhile.
                    return None
        if row is None or not row[-1]:
            return None
        return run_from_row(row[:-1]).to_json()


async def read_model_exists(store: EventStore) -> bool:
    """True when this database has the projector's ``read_runs`` table."""
    with translate_errors():
        async with store.pool.connection() as conn:
            cursor = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (RUNS_TABLE,))
            row = await cursor.fetchone()
    return bool(row and row[0])


async def session_exists(store: EventStore, tenant: str, session_id: str) -> bool:
    """True when ``tenant`` has at least one event in ``session_id`` (other tenants: False)."""
    with translate_errors():
        async with store.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT 1 FROM agent_stream_heads WHERE tenant_id = %s AND session_id = %s",
                (tenant, session_id),
            )
            row = await cursor.fetchone()
    return row is not None


async def events_page(
    store: EventStore, tenant: str, session_id: str, *, after: int, limit: int
) -> tuple[list[StoredEvent], int | None]:
    """Up to ``limit`` events after ``after`` and the cursor of the next page (None at the end)."""
    events = await store.read_session(tenant, session_id, after_event_id=after, limit=limit + 1)
    if len(events) > limit:
        return events[:limit], events[limit - 1].event_id
    return events, None

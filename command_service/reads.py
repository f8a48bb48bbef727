"""The read side of the API: one run's state and pages of a session's events, tenant-scoped.

A run comes from the projector's read model when its row has seen every event of the run, and
otherwise (no row yet, the projector lags, or no read model in this database) from folding the
run's events, so an id that POST returned is never 404.
"""

from __future__ import annotations

from typing import Any

from agentlane.errors import RunNotFound
from agentlane.folds import fold_run
from agentlane.readmodels import ReadModels
from agentlane.records import StoredEvent
from agentlane.store import EventStore


class RunReader:
    """Answers ``GET /runs/{id}``; ``use_read_model`` is decided once at start (tables present)."""

    def __init__(
        self, store: EventStore, read_models: ReadModels, *, use_read_model: bool
    ) -> None:
        self.store = store
        self.read_models = read_models
        self.use_read_model = use_read_model

    async def run(self, tenant: str, execution_id: str) -> dict[str, Any]:
        if self.use_read_model:
            state = await self.read_models.fresh_run(tenant, execution_id)
            if state is not None:
                return state.to_json()
        state = fold_run(await self.store.read_execution(tenant, execution_id))
        if state is None:
            raise RunNotFound(execution_id)
        return state.to_json()


async def events_page(
    store: EventStore, tenant: str, session_id: str, *, after: int, limit: int
) -> tuple[list[StoredEvent], int | None]:
    """Up to ``limit`` events after ``after`` and the cursor of the next page (None at the end)."""
    events = await store.read_session(tenant, session_id, gt=after, limit=limit + 1)
    if len(events) > limit:
        return events[:limit], events[limit - 1].event_id
    return events, None

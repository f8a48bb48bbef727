"""The read side of the API: one run's state and pages of a session's events, tenant-scoped.

A run comes from the projector's read model when its row has seen every event of the run, and
otherwise (no row yet, the projector lags, or no read model in this database) from folding the
run's events, so an id that POST returned is never 404.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from agentlane.errors import RunNotFound
from agentlane.folds import UsageTotals, fold_run
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


class UsageReader:
    """Answers ``GET /usage`` and ``GET /sessions/{id}/usage`` from the read models (the
    projector keeps them; they trail the log by its lag)."""

    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models

    async def tenant(
        self, tenant: str, *, since: date | None, until: date | None
    ) -> dict[str, Any]:
        usage = await self.read_models.get_usage(tenant, since=since, until=until)
        total = UsageTotals()
        days = []
        for key, totals in usage.items():
            total = total.plus(totals)
            days.append({"day": key.day.isoformat(), "model": key.model, **totals.to_json()})
        body = total.to_json()
        body.pop("calls")
        return {"days": days, "total": body}

    async def session(self, tenant: str, session_id: str) -> dict[str, Any]:
        runs, usage = await self.read_models.session_usage(tenant, session_id)
        return {"sessionId": session_id, "runs": runs, "usage": usage.to_json()}


async def events_page(
    store: EventStore, tenant: str, session_id: str, *, after: int, limit: int
) -> tuple[list[StoredEvent], int | None]:
    """Up to ``limit`` events after ``after`` and the cursor of the next page (None at the end)."""
    events = await store.read_session(tenant, session_id, gt=after, limit=limit + 1)
    if len(events) > limit:
        return events[:limit], events[limit - 1].event_id
    return events, None

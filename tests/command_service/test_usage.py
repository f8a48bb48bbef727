"""The cost ledger's read side: ``GET /usage`` and ``GET /sessions/{id}/usage`` on the live API,
from read models the projection wrote (tenant-scoped, bad bounds refused)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from agentlane.db import open_database
from agentlane.readmodels import apply_events
from tests.command_service.conftest import LiveServer, bearer
from tests.projector.workload import run_events


async def _project(live: LiveServer, tenant: str, session: str, runs: dict[str, int]) -> None:
    for execution, tokens in runs.items():
        for chunk in run_events(tenant, session, execution, tokens):
            await live.store.append_batch(chunk)
    async with open_database(live.database_url, name="test", min_size=1, max_size=1) as db:
        events = await live.store.read_session(tenant, session)
        async with db.transaction() as conn:
            await apply_events(conn, live.store, events)


async def test_usage_and_spend_per_day_and_per_session(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    await _project(live, "tenant-a", "s1", {"ex-a1": 2, "ex-a2": 3})
    await _project(live, "tenant-b", "s1", {"ex-b1": 4})
    headers = bearer("tenant-a")

    session = await client.get("/sessions/s1/usage", headers=headers)
    assert session.status_code == 200
    # Each run of the workload costs 7 + 3 x tokens millionths and uses 10 + tokens input tokens.
    assert session.json() == {
        "sessionId": "s1", "runs": 2,
        "usage": {"inputTokens": 25, "outputTokens": 5, "cachedInputTokens": 4,
                  "costMicros": 13 + 16},
    }
    usage = (await client.get("/usage", headers=headers)).json()
    today = datetime.now(UTC).date().isoformat()
    assert {day["day"] for day in usage["days"]} == {today}
    assert sum(day["calls"] for day in usage["days"]) == 2
    assert usage["total"] == session.json()["usage"]
    # Another tenant's runs are not counted, and an empty window is empty.
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    empty = (await client.get("/usage", params={"since": tomorrow}, headers=headers)).json()
    assert empty == {"days": [], "total": {"inputTokens": 0, "outputTokens": 0,
                                           "cachedInputTokens": 0, "costMicros": 0}}
    other = (await client.get("/sessions/s1/usage", headers=bearer("tenant-b"))).json()
    assert other["runs"] == 1 and other["usage"]["costMicros"] == 7 + 12


async def test_a_bound_that_is_not_a_day_is_refused(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    for bad in ("2026-13-01", "yesterday", "2026-1-1", "2026-01-01T00:00:00"):
        answer = await client.get("/usage", params={"until": bad}, headers=bearer("tenant-a"))
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"] == "application/problem+json"
        assert "query.until: must be a day" in answer.json()["detail"]
    missing = await client.get("/usage")
    assert missing.status_code == 401

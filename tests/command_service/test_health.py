"""/readyz: ready only when the database is reachable and every migration is applied; /metrics
carries the service's own series; /openapi.json is the document the server answers by."""

from __future__ import annotations

import httpx

from agentlane.auth import Authenticator
from agentlane.db import create_pool
from tests.command_service.conftest import LiveServer, bearer, serve, wait_until


async def test_not_ready_until_migrated(empty_database_url: str) -> None:
    async with (
        serve(empty_database_url, authenticator=Authenticator(mode="none")) as live,
        httpx.AsyncClient(base_url=live.base_url) as client,
    ):
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["components"] == {"command-service": False}


async def test_ready_metrics_and_openapi(live: LiveServer, client: httpx.AsyncClient) -> None:
    await wait_until(live.service.is_ready)
    assert (await client.get("/readyz")).status_code == 200
    await client.post("/agents/s1/runs", json={"runId": "r1", "message": "m"},
                      headers=bearer("tenant-a"))
    metrics = (await client.get("/metrics")).text
    assert 'agentlane_http_requests_total{method="POST",route="/agents/{sessionId}/runs"' in metrics
    assert "agentlane_runs_accepted_total" in metrics
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    start = document["paths"]["/agents/{sessionId}/runs"]["post"]
    assert start["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StartRunRequest"
    }
    assert {"202", "401", "413", "415", "422", "429"} <= set(start["responses"])
    assert document["security"] == [{"bearer": []}]


async def test_database_out_of_connections_is_503_with_retry_after(database_url: str) -> None:
    pool = create_pool(database_url, name="tiny", min_size=1, max_size=1, timeout_s=0.5)
    async with pool, serve(database_url, authenticator=Authenticator(mode="none"),
                           pool=pool) as live, httpx.AsyncClient(base_url=live.base_url) as client:
        async with pool.connection():
            # The only connection is taken: the store cannot be reached in time.
            answer = await client.post("/agents/s1/runs", json={"runId": "r1", "message": "m"})
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) >= 1
            assert "password" not in answer.text and "postgres" not in answer.text
            # Through the shared core's read path too (GET /runs folds the run's events).
            read = await client.get("/runs/ex_1")
            assert read.status_code == 503 and "retry-after" in read.headers
        assert live.events_written() == 0
        retried = await client.post("/agents/s1/runs", json={"runId": "r1", "message": "m"})
        assert retried.status_code == 202

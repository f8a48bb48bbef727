"""Start, poll, page, cancel and signal through the live API (invariant 3: one run per runId)."""

from __future__ import annotations

import asyncio

import httpx
import psycopg

from agentlane.records import NewEvent
from tests.command_service.conftest import LiveServer, bearer

T1 = bearer("tenant-a")


async def test_fifty_concurrent_posts_with_one_run_id_make_one_execution(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    body = {"runId": "run-1", "message": "hello"}
    answers = await asyncio.gather(
        *(client.post("/agents/s1/runs", json=body, headers=T1) for _ in range(50))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    accepted = answers[0].json()
    assert accepted["runId"] == "run-1" and accepted["sessionId"] == "s1"
    assert accepted["status"] == "queued"
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 49
    assert live.count("SELECT count(*) FROM agent_events WHERE event_type = 'RunAccepted'") == 1
    assert live.count("SELECT count(*) FROM run_index WHERE run_id = 'run-1'") == 1

    # A later retry, even with another message, answers the first run.
    again = await client.post("/agents/s1/runs", json={**body, "message": "x"}, headers=T1)
    assert again.status_code == 202 and again.content == answers[0].content


async def test_poll_page_cancel_and_signal(live: LiveServer, client: httpx.AsyncClient) -> None:
    started = (await client.post(
        "/agents/s2/runs", json={"runId": "r2", "message": "hi"}, headers=T1
    )).json()
    execution = started["executionId"]

    run = await client.get(f"/runs/{execution}", headers=T1)
    assert run.status_code == 200
    assert run.json()["status"] == "queued" and run.json()["runId"] == "r2"

    signal = await client.post(
        f"/runs/{execution}/signals/approve", json={"payload": {"ok": True}}, headers=T1
    )
    assert signal.status_code == 202 and signal.json()["name"] == "approve"
    cancel = await client.post(f"/runs/{execution}/cancel", headers=T1)
    assert cancel.status_code == 202 and cancel.json()["eventId"] > signal.json()["eventId"]

    first = (await client.get("/sessions/s2/events", params={"limit": 2}, headers=T1)).json()
    assert [e["type"] for e in first["events"]] == ["RunAccepted", "SignalReceived"]
    assert first["next"] == first["events"][-1]["eventId"]
    rest = (await client.get(
        "/sessions/s2/events", params={"after": first["next"], "limit": 2}, headers=T1
    )).json()
    assert [e["type"] for e in rest["events"]] == ["CancelRequested"]
    assert rest["next"] is None
    assert rest["events"][0]["executionId"] == execution


async def test_reject_on_conflict_is_409_and_writes_nothing(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    await client.post("/agents/s3/runs", json={"runId": "a", "message": "m"}, headers=T1)
    before = live.events_written()
    refused = await client.post(
        "/agents/s3/runs", json={"runId": "b", "message": "m", "onConflict": "reject"}, headers=T1
    )
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert live.events_written() == before


async def test_get_run_uses_a_fresh_read_model_and_folds_a_stale_one(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    started = (await client.post(
        "/agents/s4/runs", json={"runId": "r4", "message": "m"}, headers=T1
    )).json()
    execution = started["executionId"]
    with psycopg.connect(live.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO read_runs (execution_id, tenant_id, session_id, run_id, status, "
            "answer, created_at, updated_at, last_event_id, last_seq) "
            "VALUES (%s, 'tenant-a', 's4', 'r4', 'completed', 'from the read model', "
            "now(), now(), %s, 1)",
            (execution, started["eventId"]),
        )
    fresh = (await client.get(f"/runs/{execution}", headers=T1)).json()
    assert fresh["status"] == "completed" and fresh["answer"] == "from the read model"

    # An event the read model has not seen yet: the answer comes from the events instead.
    await live.store.append(
        NewEvent("tenant-a", "s4", "RunStarted", {"workflow": "agent", "version": "1"},
                 execution_id=execution)
    )
    folded = (await client.get(f"/runs/{execution}", headers=T1)).json()
    assert folded["status"] == "running" and "answer" not in folded


async def test_an_approval_timeout_is_recorded_with_the_run_and_bad_ones_are_refused(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    accepted = await client.post(
        "/agents/s5/runs", json={"runId": "t1", "message": "m", "approvalTimeoutSeconds": 90},
        headers=T1,
    )
    assert accepted.status_code == 202
    events = (await client.get("/sessions/s5/events", headers=T1)).json()["events"]
    assert events[0]["data"]["approvalTimeoutSeconds"] == 90
    for bad in (0, -1, 31 * 24 * 3600, "soon"):
        refused = await client.post(
            "/agents/s6/runs",
            json={"runId": "t2", "message": "m", "approvalTimeoutSeconds": bad}, headers=T1,
        )
        assert refused.status_code == 422, bad
        assert refused.headers["content-type"] == "application/problem+json"
        assert "approvalTimeoutSeconds" in refused.text
    assert live.count("SELECT count(*) FROM agent_events WHERE session_id = 's6'") == 0

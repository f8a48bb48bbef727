"""``POST /sessions/{id}/fork`` on the live API, and ``agentlane replay fork``: a fork is one event
in a new session; retries answer the same; what cannot be a fork is refused with problem+json (or
one line), nothing written."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx

from tests.command_service.conftest import LiveServer, bearer
from tests.conftest import TEST_SHARDS

T1 = bearer("tenant-a")


async def test_fork_over_http(live: LiveServer, client: httpx.AsyncClient) -> None:
    await client.post("/agents/p/runs", json={"runId": "p1", "message": "hi"}, headers=T1)
    cut = (await client.get("/sessions/p/events", headers=T1)).json()["events"][0]["eventId"]
    body = {"atEventId": cut, "newSessionId": "p-fork"}
    forked = await client.post("/sessions/p/fork", json=body, headers=T1)
    assert forked.status_code == 201, forked.text
    assert forked.headers["location"] == "/sessions/p-fork/events"
    answer = forked.json()
    assert answer["sessionId"] == "p-fork" and answer["parentSessionId"] == "p"
    again = await client.post("/sessions/p/fork", json=body, headers=T1)
    assert again.status_code == 201 and again.json() == answer
    (first,) = (await client.get("/sessions/p-fork/events", headers=T1)).json()["events"]
    assert first["type"] == "SessionForked" and first["eventId"] == answer["eventId"]
    assert first["data"]["parentSessionId"] == "p" and first["data"]["atEventId"] == cut

    async def refused(session: str, payload: object, status: int, slug: str) -> None:
        response = await client.post(f"/sessions/{session}/fork", json=payload, headers=T1)
        assert response.status_code == status, (payload, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith(slug)

    written = live.count("SELECT count(*) FROM agent_events")
    await refused("p", {"atEventId": cut, "newSessionId": "p"}, 422, "invalid-command")
    await refused("p", {"atEventId": 10**9, "newSessionId": "x"}, 404, "not-found")
    await refused("p", {"atEventId": cut, "newSessionId": "no spaces"}, 422, "invalid-request")
    await refused("p", {"atEventId": 0, "newSessionId": "x"}, 422, "invalid-request")
    # Another tenant cannot fork (or see) this tenant's session.
    other = await client.post("/sessions/p/fork", json={"atEventId": cut, "newSessionId": "y"},
                              headers=bearer("tenant-b"))
    assert other.status_code == 404
    # A session with events of its own cannot become a fork.
    await client.post("/agents/busy/runs", json={"runId": "b1", "message": "hi"}, headers=T1)
    written += 1
    await refused("p", {"atEventId": cut, "newSessionId": "busy"}, 409, "session-exists")
    assert live.count("SELECT count(*) FROM agent_events") == written


async def test_replay_fork_from_the_cli(live: LiveServer, client: httpx.AsyncClient) -> None:
    started = await client.post("/agents/c/runs", json={"runId": "c1", "message": "hi"},
                                headers=T1)
    started.raise_for_status()
    cut = (await client.get("/sessions/c/events", headers=T1)).json()["events"][0]["eventId"]

    def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentlane.cli", "replay", "--database-url", live.database_url,
             "fork", *args],
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "AGENTLANE_SHARDS": str(TEST_SHARDS)},
        )

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(run_cli, *args)

    made = await cli("c", "--at", str(cut), "--new", "c-fork", "--tenant", "tenant-a")
    assert made.returncode == 0, made.stderr
    assert f"forked tenant-a/c at event {cut}" in made.stdout
    clash = await cli("c", "--at", str(cut), "--new", "c", "--tenant", "tenant-a")
    assert clash.returncode == 1 and clash.stderr.count("\n") == 1 and "must differ" in clash.stderr

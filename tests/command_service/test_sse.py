"""SSE: history then live, and a reconnect with Last-Event-ID gets exactly the missed events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from agentlane.records import NewEvent
from tests.command_service.conftest import LiveServer, bearer, wait_until

A = bearer("tenant-a")
STREAM = {**A, "accept": "text/event-stream"}


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """(id, event JSON) of each SSE message; comments (pings) are skipped."""
    event_id, data = None, []
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and data:
            assert event_id is not None
            yield event_id, json.loads("\n".join(data))
            event_id, data = None, []


async def take(stream: AsyncIterator[tuple[int, dict[str, Any]]], n: int) -> list[int]:
    ids = []
    async with asyncio.timeout(15):
        while len(ids) < n:
            event_id, event = await anext(stream)
            assert event["eventId"] == event_id
            ids.append(event_id)
    return ids


async def token(live: LiveServer, execution: str, index: int) -> int:
    appended = await live.store.append(
        NewEvent("tenant-a", "s1", "Token", {"text": f"t{index}", "index": index},
                 execution_id=execution)
    )
    return appended.event.event_id


async def test_reconnect_with_last_event_id_gets_exactly_the_missing_events(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    started = (await client.post(
        "/agents/s1/runs", json={"runId": "r1", "message": "m"}, headers=A
    )).json()
    execution = started["executionId"]
    history = [started["eventId"], await token(live, execution, 0), await token(live, execution, 1)]

    async with client.stream("GET", "/sessions/s1/events", headers=STREAM) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        assert await take(events, 3) == history
        live_id = await token(live, execution, 2)
        assert await take(events, 1) == [live_id]

    # Disconnected: the server notices and lets the stream go; the session moves on meanwhile.
    await wait_until(lambda: live.metric("agentlane_http_event_streams") == 0)
    missed = [await token(live, execution, i) for i in range(3, 6)]

    resume = {**STREAM, "last-event-id": str(live_id)}
    async with client.stream("GET", "/sessions/s1/events", headers=resume) as response:
        events = sse_events(response)
        assert await take(events, 3) == missed
        after_reconnect = await token(live, execution, 6)
        # Exactly the next one: nothing repeated, nothing skipped.
        assert await take(events, 1) == [after_reconnect]


async def test_subscribe_before_the_first_run_then_ask(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    # The natural order for a client: subscribe to a session that has no events yet, then ask.
    # (A 404 here would kill a browser's EventSource for good: it never retries one.)
    async with client.stream("GET", "/sessions/fresh/events", headers=STREAM) as response:
        assert response.status_code == 200
        events = sse_events(response)
        started = (await client.post(
            "/agents/fresh/runs", json={"runId": "r1", "message": "m"}, headers=A
        )).json()
        assert await take(events, 1) == [started["eventId"]]
    page = await client.get("/sessions/never-used/events", headers=A)
    assert page.status_code == 200 and page.json() == {"events": [], "next": None}


async def test_after_query_parameter_starts_the_stream(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    started = (await client.post(
        "/agents/s1/runs", json={"runId": "r1", "message": "m"}, headers=A
    )).json()
    second = await token(live, started["executionId"], 0)
    async with client.stream(
        "GET", "/sessions/s1/events", params={"after": started["eventId"]}, headers=STREAM
    ) as response:
        assert await take(sse_events(response), 1) == [second]


async def test_drain_ends_open_streams(live: LiveServer, client: httpx.AsyncClient) -> None:
    await client.post("/agents/s1/runs", json={"runId": "r1", "message": "m"}, headers=A)
    async with client.stream("GET", "/sessions/s1/events", headers=STREAM) as response:
        events = sse_events(response)
        await take(events, 1)
        await live.service.drain()
        async with asyncio.timeout(10):
            assert [e async for e in events] == []  # the response ends instead of hanging
    assert not live.service.is_ready()

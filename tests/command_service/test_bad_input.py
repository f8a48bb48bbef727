"""Invariant 8: bad input is a problem+json answer naming what is wrong, and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from tests.command_service.conftest import LiveServer, bearer

T1 = bearer("tenant-a")
PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, *, mentions: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    assert mentions in body["detail"]


BAD_START_BODIES = [
    (b'{"runId": "r1", "message": ', {"content-type": "application/json"}, 400, "JSON"),
    (b'{"runId": "r1", "message": NaN}', {"content-type": "application/json"}, 400, "NaN"),
    (b"\xff\xfe", {"content-type": "application/json"}, 400, "JSON"),
    (b"runId=r1&message=m", {"content-type": "application/x-www-form-urlencoded"}, 415, ""),
    (b'{"runId": "r1", "message": "m"}', {}, 415, "application/json"),
    (b'{"runId": "bad id!", "message": "m"}', {"content-type": "application/json"}, 422,
     "body.runId"),
    (b'{"runId": "r1"}', {"content-type": "application/json"}, 422, "body.message"),
    (b'{"runId": "r1", "message": "m", "onConflict": "x"}',
     {"content-type": "application/json"}, 422, "body.onConflict"),
    (b'{"runId": "r1", "message": "m", "extra": 1}',
     {"content-type": "application/json"}, 422, "body.extra"),
    (b'["r1"]', {"content-type": "application/json"}, 422, "body"),
]


async def test_bad_start_bodies(live: LiveServer, client: httpx.AsyncClient) -> None:
    for content, headers, status, mentions in BAD_START_BODIES:
        response = await client.post(
            "/agents/s1/runs", content=content, headers={**T1, **headers}
        )
        assert_problem(response, status, mentions=mentions)
    assert live.events_written() == 0


async def test_bad_session_id_is_422_naming_the_field(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/agents/bad%20session/runs", json={"runId": "r1", "message": "m"}, headers=T1
    )
    assert_problem(response, 422, mentions="path.sessionId")
    long_id = await client.post(
        f"/agents/{'s' * 129}/runs", json={"runId": "r1", "message": "m"}, headers=T1
    )
    assert_problem(long_id, 422, mentions="path.sessionId")
    assert live.events_written() == 0


async def test_oversize_bodies_are_413_with_or_without_content_length(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    big = b'{"runId": "r1", "message": "' + b"x" * (1024 * 1024) + b'"}'
    declared = await client.post(
        "/agents/s1/runs", content=big, headers={**T1, "content-type": "application/json"}
    )
    assert_problem(declared, 413, mentions="262144")

    async def chunks() -> AsyncIterator[bytes]:
        # Chunked transfer: no Content-Length, so the limit must be counted as bytes arrive.
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await client.post(
        "/agents/s1/runs", content=chunks(), headers={**T1, "content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert_problem(streamed, 413)
    assert live.events_written() == 0


async def test_unknown_routes_and_methods(live: LiveServer, client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nope", headers=T1), 404, mentions="/nope")
    assert_problem(await client.get("/agents/s1/runs", headers=T1), 405)
    deleted = await client.delete("/runs/ex_1", headers=T1)
    assert_problem(deleted, 405)
    assert "GET" in deleted.headers["allow"]
    assert_problem(await client.put("/healthz"), 405)
    assert_problem(await client.get("/runs/ex_missing", headers=T1), 404)
    assert_problem(await client.get("/runs/bad%20id", headers=T1), 404)
    assert live.events_written() == 0


async def test_bad_query_parameters_name_the_parameter(
    live: LiveServer, client: httpx.AsyncClient
) -> None:
    await client.post("/agents/s1/runs", json={"runId": "r1", "message": "m"}, headers=T1)
    for params, mentions in (
        ({"after": "x"}, "query.after"),
        ({"after": "-1"}, "query.after"),
        ({"limit": "0"}, "query.limit"),
        ({"limit": "1001"}, "query.limit"),
        ({"limit": "²"}, "query.limit"),
    ):
        response = await client.get("/sessions/s1/events", params=params, headers=T1)
        assert_problem(response, 422, mentions=mentions)


async def test_bad_signal_and_cancel_input(live: LiveServer, client: httpx.AsyncClient) -> None:
    started = await client.post(
        "/agents/s1/runs", json={"runId": "r1", "message": "m"}, headers=T1
    )
    execution = started.json()["executionId"]
    before = live.events_written()
    assert_problem(
        await client.post(f"/runs/{execution}/signals/ok", content=b"{", headers={
            **T1, "content-type": "application/json"}),
        400,
    )
    assert_problem(
        await client.post(f"/runs/{execution}/signals/{'n' * 129}", json={}, headers=T1), 422,
        mentions="path.name",
    )
    assert_problem(
        await client.post(f"/runs/{execution}/signals/ok", json={"payload": "a\u0000b"},
                          headers=T1),
        422,
    )
    assert_problem(
        await client.post(f"/runs/{execution}/cancel", json={"reason": 5}, headers=T1), 422,
        mentions="body.reason",
    )
    assert_problem(
        await client.post("/runs/ex_missing/signals/ok", json={}, headers=T1), 404
    )
    assert live.events_written() == before

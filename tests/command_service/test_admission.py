"""Admission control: over a tenant's active runs, its request rate, or the process's in-flight
bound, a request gets 429 + Retry-After before any work, and nothing is written."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from agentlane.admission import RateLimiter
from agentlane.cli.command_service import limits_from
from agentlane.errors import ConfigError, RateLimited
from command_service import Limits, bodies
from command_service.admission import AdaptiveLimit
from tests.command_service.conftest import bearer, jwt_authenticator, serve, wait_until

A, B = bearer("tenant-a"), bearer("tenant-b")


def assert_429(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1


def limited(**overrides: float) -> Limits:
    base = {"max_inflight": 100, "latency_target_s": 0, "max_streams": 100, "rate_per_s": 1000,
            "burst": 1000, "max_active_runs": 1000}
    return Limits(**{**base, **overrides})  # type: ignore[arg-type]


async def test_active_run_limit(database_url: str) -> None:
    async with (
        serve(database_url, authenticator=jwt_authenticator(),
              limits=limited(max_active_runs=2)) as live,
        httpx.AsyncClient(base_url=live.base_url) as client,
    ):
        for n in range(2):
            ok = await client.post(
                f"/agents/s{n}/runs", json={"runId": f"r{n}", "message": "m"}, headers=A
            )
            assert ok.status_code == 202
        before = live.events_written()
        assert_429(await client.post(
            "/agents/s9/runs", json={"runId": "r9", "message": "m"}, headers=A
        ))
        assert live.events_written() == before
        # A retry of an accepted run is an answer, not new work; other tenants have their own cap.
        replay = await client.post("/agents/s0/runs", json={"runId": "r0", "message": "m"},
                                   headers=A)
        assert replay.status_code == 202
        other = await client.post("/agents/s0/runs", json={"runId": "r0", "message": "m"},
                                  headers=B)
        assert other.status_code == 202
        assert live.events_written() == before + 1


async def test_request_rate_per_tenant(database_url: str) -> None:
    async with (
        serve(database_url, authenticator=jwt_authenticator(),
              limits=limited(rate_per_s=0.5, burst=3)) as live,
        httpx.AsyncClient(base_url=live.base_url) as client,
    ):
        for _ in range(3):
            assert (await client.get("/runs/ex_none", headers=A)).status_code == 404
        assert_429(await client.get("/runs/ex_none", headers=A))
        refused = await client.post(
            "/agents/s1/runs", json={"runId": "r1", "message": "m"}, headers=A
        )
        assert_429(refused)
        assert int(refused.headers["retry-after"]) == 2  # 1 token at 0.5/s
        assert live.events_written() == 0
        assert (await client.get("/runs/ex_none", headers=B)).status_code == 404


async def test_global_inflight_bound_refuses_early(database_url: str) -> None:
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"runId": "held", '
        await release.wait()
        yield b'"message": "m"}'

    async with (
        serve(database_url, authenticator=jwt_authenticator(),
              limits=limited(max_inflight=1, max_streams=1)) as live,
        httpx.AsyncClient(base_url=live.base_url) as client,
    ):
        held = asyncio.create_task(client.post(
            "/agents/s1/runs", content=slow_body(),
            headers={**A, "content-type": "application/json"},
        ))
        await wait_until(lambda: live.metric("agentlane_http_inflight_requests") >= 1)
        assert_429(await client.get("/runs/ex_none", headers=A))
        assert_429(await client.post(
            "/agents/s2/runs", json={"runId": "r2", "message": "m"}, headers=B
        ))
        release.set()
        assert (await held).status_code == 202
        assert (await client.get("/runs/ex_none", headers=A)).status_code == 404
        assert live.events_written() == 1

        # Event streams have their own bound, so one open stream does not block commands.
        stream_headers = {**A, "accept": "text/event-stream"}
        async with client.stream("GET", "/sessions/s1/events", headers=stream_headers) as first:
            assert first.status_code == 200
            assert_429(await client.get("/sessions/s1/events", headers=stream_headers))
            assert (await client.get("/runs/ex_none", headers=A)).status_code == 404


def test_adaptive_limit_shrinks_on_slow_answers_and_recovers() -> None:
    limit = AdaptiveLimit(ceiling=64, target_s=0.25)
    now = 0.0
    for _ in range(40):
        now += 0.2
        limit.observe(1.0, now)
    assert limit.current == 2  # the floor
    # A burst of slow answers within half a target counts once.
    limit.limit = 32.0
    for _ in range(10):
        limit.observe(1.0, now + 0.2)
    assert limit.current == 22
    for _ in range(5000):
        limit.observe(0.01, now)
    assert limit.current == 64  # never above the ceiling
    fixed = AdaptiveLimit(ceiling=8, target_s=0)
    fixed.observe(10.0, 1.0)
    assert fixed.current == 8


def test_token_bucket_refills_at_the_rate() -> None:
    bucket = RateLimiter(rate_per_s=2, burst=2)
    bucket.take("t", now=0.0)
    bucket.take("t", now=0.0)
    with pytest.raises(RateLimited) as refused:
        bucket.take("t", now=0.1)
    assert refused.value.retry_after_s == pytest.approx(0.4)
    bucket.take("t", now=0.6)  # 0.5 s refilled one token


def _trickle(first: bytes, rest: bytes, pause_s: float) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        yield first
        await asyncio.sleep(pause_s)
        yield rest

    return body()


async def test_slow_uploads_do_not_shrink_the_bound_for_others(database_url: str) -> None:
    """Twelve uploads that take 1.5 s each used to count as 1.5 s answers: the adaptive bound
    fell to its floor of 2 and another tenant got 429s. Latency now starts when the body is in."""
    async with (
        serve(database_url, authenticator=jwt_authenticator(),
              limits=limited(max_inflight=16, latency_target_s=0.25, tenant_share=1)) as live,
        httpx.AsyncClient(base_url=live.base_url, timeout=30) as client,
    ):
        slow = [
            client.post(
                f"/agents/slow{n}/runs",
                content=_trickle(b'{"runId": "slow", ', b'"message": "m"}', 1.5),
                headers={**A, "content-type": "application/json"},
            )
            for n in range(12)
        ]
        assert {r.status_code for r in await asyncio.gather(*slow)} == {202}
        assert live.metric("agentlane_admission_inflight_limit") >= 16
        others = await asyncio.gather(*(
            client.post(f"/agents/b{n}/runs", json={"runId": f"b{n}", "message": "m"}, headers=B)
            for n in range(14)
        ))
        assert [r.status_code for r in others] == [202] * 14


async def test_a_trickling_body_is_cut_at_its_deadline(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "BODY_DEADLINE_S", 0.5)
    async with (
        serve(database_url, authenticator=jwt_authenticator(), limits=limited()) as live,
        httpx.AsyncClient(base_url=live.base_url, timeout=30) as client,
    ):
        cut = await client.post(
            "/agents/s1/runs", content=_trickle(b'{"runId": "r1", ', b'"message": "m"}', 3.0),
            headers={**A, "content-type": "application/json"},
        )
        assert cut.status_code == 408, cut.text
        assert cut.json()["type"].endswith("/request-timeout")
        assert live.events_written() == 0


async def test_one_tenant_holds_at_most_its_share(database_url: str) -> None:
    release = asyncio.Event()

    async def held_body(n: int) -> AsyncIterator[bytes]:
        yield b'{"runId": "held-%d", ' % n
        await release.wait()
        yield b'"message": "m"}'

    async with (
        serve(database_url, authenticator=jwt_authenticator(),
              limits=limited(max_inflight=4, max_streams=4, tenant_share=0.5)) as live,
        httpx.AsyncClient(base_url=live.base_url, timeout=30) as client,
    ):
        held = [
            asyncio.create_task(client.post(
                f"/agents/h{n}/runs", content=held_body(n),
                headers={**A, "content-type": "application/json"},
            ))
            for n in range(2)
        ]
        await wait_until(lambda: live.metric("agentlane_http_inflight_requests") >= 2)
        refused = await client.get("/runs/ex_none", headers=A)
        assert_429(refused)
        assert "share" in refused.json()["detail"]
        assert (await client.get("/runs/ex_none", headers=B)).status_code == 404
        release.set()
        assert {(await task).status_code for task in held} == {202}
        assert live.metric(
            "agentlane_admission_rejections_total", reason="tenant_inflight"
        ) == 1

        # Streams: two of A's four, and B still gets one. A request that merely accepts
        # text/event-stream on another route is not a stream.
        stream_headers = {**A, "accept": "text/event-stream"}
        async with (
            client.stream("GET", "/sessions/h0/events", headers=stream_headers) as one,
            client.stream("GET", "/sessions/h1/events", headers=stream_headers) as two,
        ):
            assert one.status_code == two.status_code == 200
            assert_429(await client.get("/sessions/h0/events", headers=stream_headers))
            async with client.stream(
                "GET", "/sessions/h0/events", headers={**B, "accept": "text/event-stream"}
            ) as other:
                # B's own, empty stream: admitted (its share is its own), not refused.
                assert other.status_code == 200
            assert (await client.get("/runs/ex_none", headers=stream_headers)).status_code == 404


async def test_a_tenant_with_its_own_limits(database_url: str) -> None:
    """AGENTLANE_CMD_TENANT_LIMITS: tenant-a has a cap of one active run and runs of at most 5
    model calls; tenant-b has the defaults."""
    limits = limits_from(argparse.Namespace(), {
        "AGENTLANE_CMD_MAX_ACTIVE_RUNS": "100",
        "AGENTLANE_CMD_TENANT_LIMITS": '{"tenant-a": {"maxActiveRuns": 1, "maxModelCalls": 5}}',
    })
    async with (
        serve(database_url, authenticator=jwt_authenticator(),
              limits=replace(limits, max_inflight=100, latency_target_s=0)) as live,
        httpx.AsyncClient(base_url=live.base_url) as client,
    ):
        first = await client.post("/agents/s1/runs", json={"runId": "r1", "message": "m"},
                                  headers=A)
        assert first.status_code == 202
        assert_429(await client.post("/agents/s2/runs", json={"runId": "r2", "message": "m"},
                                     headers=A))
        for n in range(3):
            other = await client.post(f"/agents/s{n}/runs",
                                      json={"runId": f"r{n}", "message": "m"}, headers=B)
            assert other.status_code == 202
        caps = {
            tenant: cap for tenant, cap in live.rows(
                "SELECT tenant_id, (payload -> 'budget' ->> 'capAttempts')::int FROM agent_events "
                "WHERE event_type = 'RunAccepted'"
            )
        }
        assert caps == {"tenant-a": 5, "tenant-b": 50}


def test_bad_tenant_limits_are_one_line_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^AGENTLANE_CMD_TENANT_LIMITS: tenant limits\.acme\."
                                          r"maxActiveRuns: "):
        limits_from(argparse.Namespace(), {
            "AGENTLANE_CMD_TENANT_LIMITS": '{"acme": {"maxActiveRuns": -1}}'
        })

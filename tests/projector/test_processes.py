"""Real ``agentlane projector`` processes: SIGKILL mid-batch, a frozen emulator, a standby.

Each test spawns the real CLI (tests/fixtures/processes.py) against this test's database, with a
3 s lease so takeovers fit the suite's time budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentlane.db import Database
from agentlane.store import Checkpoints
from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import Proc, spawn, stop_all
from tests.projector.conftest import Live, PubSubTarget
from tests.projector.workload import (
    assert_read_models_match_fold,
    assert_session_order,
    collect,
    wait_caught_up,
    write_workload,
)

LEASE_TTL_S = 3.0


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    stop_all(started)


def start_projector(
    name: str, database_url: str, env: dict[str, str], log_dir: Path, procs: list[Proc]
) -> Proc:
    proc = spawn(
        name,
        ["projector", "--host", "127.0.0.1", "--batch-size", "100", "--publish-timeout", "4"],
        env={
            "DATABASE_URL": as_app(database_url),
            "AGENTLANE_SHARDS": str(TEST_SHARDS),
            "AGENTLANE_LEASE_TTL": str(LEASE_TTL_S),
            **env,
        },
        log_dir=log_dir,
    )
    procs.append(proc)
    proc.wait_http("/healthz")
    return proc


async def status(proc: Proc) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(proc.base_url + "/projector/status")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


async def metric(proc: Proc, name: str, labels: str = "") -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(proc.base_url + "/metrics")).text
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} ") or line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name}{labels} not exported")


def note(request: pytest.FixtureRequest, name: str, value: object) -> None:
    """A measured figure, kept with the test's report (``user_properties``; junitxml shows it)."""
    request.node.user_properties.append((name, value))


async def wait_for(predicate: Any, *, timeout_s: float, what: str) -> float:
    """Poll an async predicate; returns the seconds it took."""
    start = time.monotonic()
    while not await predicate():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


@pytest.mark.slow
async def test_sigkill_mid_batch_and_restart_loses_nothing(
    live: Live,
    db: Database,
    database_url: str,
    tmp_path: Path,
    procs: list[Proc],
    request: pytest.FixtureRequest,
) -> None:
    async with live.bus.subscribe() as subscription:
        first = start_projector("projector-1", database_url, live.env, tmp_path, procs)
        writing = asyncio.create_task(
            write_workload(db, events=1200, sessions=40, writers=4, pace_s=0.05)
        )
        counter = "published" if live.pubsub is not None else "applied"

        async def busy() -> bool:
            return (await status(first))[counter] >= 150

        await wait_for(busy, timeout_s=60, what="the first projector to get going")
        first.kill()  # mid-stream: batches of 100 keep flowing while writers write
        assert not writing.done(), "the kill must land while events are still being written"
        second = start_projector("projector-2", database_url, live.env, tmp_path, procs)
        workload = await writing
        received = await collect(subscription, lambda: workload.ids, timeout_s=90)
        assert_session_order(received)
        assert {e.event_id for e in received} == workload.ids
        await wait_caught_up(db, timeout_s=60)
        await assert_read_models_match_fold(db)
        # At-least-once: the restarted projector republished from its checkpoint; the
        # subscriber dropped those repeats by eventId.
        note(request, "duplicates_dropped", subscription.duplicates)
    # SIGTERM drains and hands the lease back at once (a standby need not wait for expiry).
    assert second.terminate() == 0
    async with db.connection() as conn:
        cursor = await conn.execute("SELECT holder FROM projector_lease")
        assert await cursor.fetchone() == (None,)


@pytest.mark.slow
@pytest.mark.pubsub
async def test_a_frozen_emulator_for_20s_recovers_by_itself_and_loses_nothing(
    pubsub_target: PubSubTarget,
    db: Database,
    database_url: str,
    tmp_path: Path,
    procs: list[Proc],
    request: pytest.FixtureRequest,
) -> None:
    async with pubsub_target.bus().subscribe() as subscription:
        proc = start_projector("projector", database_url, pubsub_target.env(), tmp_path, procs)
        before = await write_workload(db, events=400, sessions=20, writers=4, tag="a")
        received = await collect(subscription, lambda: before.ids, timeout_s=60)

        # SIGSTOP: connections stay up and every call hits its deadline, the failure after which
        # ordered publishing stays paused unless the publisher resumes the key.
        pubsub_target.emulator.pause()
        frozen_at = time.monotonic()
        try:
            during = await write_workload(db, events=600, sessions=20, writers=4, tag="b")

            async def lagging() -> bool:
                lag = await metric(proc, "agentlane_projector_lag_events", 'checkpoint="publish"')
                return lag > 0

            await wait_for(lagging, timeout_s=15, what="publish lag to rise")
            await asyncio.sleep(max(0.0, 20 - (time.monotonic() - frozen_at)))
        finally:
            pubsub_target.emulator.resume()
        after = await write_workload(db, events=200, sessions=20, writers=2, tag="c")
        every = before.ids | during.ids | after.ids
        await collect(subscription, lambda: every, timeout_s=90, into=received)
        assert_session_order(received)
        assert {e.event_id for e in received} == every

        async def caught_up() -> bool:
            lag = await metric(proc, "agentlane_projector_lag_events", 'checkpoint="publish"')
            return lag == 0

        await wait_for(caught_up, timeout_s=30, what="publish lag to return to zero")
        assert (await Checkpoints(db).position("publish")).lag_events == 0
        errors = await metric(proc, "agentlane_projector_publish_errors_total")
        assert errors >= 1, "the freeze must have failed publishes (else nothing was tested)"
        note(request, "publish_errors", errors)
        note(request, "duplicates_dropped", subscription.duplicates)


@pytest.mark.slow
@pytest.mark.pubsub
async def test_only_the_leader_publishes_and_a_standby_takes_over_within_the_lease_ttl(
    pubsub_target: PubSubTarget,
    db: Database,
    database_url: str,
    tmp_path: Path,
    procs: list[Proc],
    request: pytest.FixtureRequest,
) -> None:
    env = pubsub_target.env()
    async with pubsub_target.bus().subscribe() as subscription:
        leader = start_projector("projector-a", database_url, env, tmp_path, procs)

        async def a_leads() -> bool:
            return bool((await status(leader))["leader"])

        await wait_for(a_leads, timeout_s=20, what="the first projector to lead")
        standby = start_projector("projector-b", database_url, env, tmp_path, procs)
        first = await write_workload(db, events=400, sessions=20, writers=4, tag="a")
        received = await collect(subscription, lambda: first.ids, timeout_s=60)
        a, b = await status(leader), await status(standby)
        assert a["leader"] and a["published"] >= len(first.written)
        assert not b["leader"] and b["published"] == 0 and b["applied"] == 0

        leader.kill()
        killed_at = time.monotonic()

        async def b_leads() -> bool:
            return bool((await status(standby))["leader"])

        took = await wait_for(b_leads, timeout_s=LEASE_TTL_S + 10, what="the standby to lead")
        note(request, "takeover_s", round(took, 2))
        # The lease was renewed at most TTL/3 before the kill; the standby polls every TTL/4.
        assert took <= LEASE_TTL_S + 2.0, f"takeover took {took:.1f}s"
        second = await write_workload(db, events=200, sessions=20, writers=4, tag="b")
        every = first.ids | second.ids
        await collect(subscription, lambda: every, timeout_s=60, into=received)
        assert_session_order(received)
        assert (await status(standby))["published"] >= len(second.written)
        assert time.monotonic() - killed_at < 120

"""The runner's own boundary, in-process on a real Postgres: leases, lanes, admission, stalls.

The executor here is a small in-test one (the engine is tested on its own); it records what the
runner asked of it and ends runs the way the engine does (deleting their ``run_index`` row).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest

from agentlane.commands import Commands
from agentlane.db import Database
from agentlane.leases import SHARD_LEASES, Fence, Leases
from agentlane.settings import Settings
from agentlane.sharding import shard_for
from runners.api import DueRun, Outcome
from runners.component import Runner, RunnerOptions
from runners.membership import RunnerIdentity
from tests.conftest import TEST_SHARDS, as_app
from tests.runners_process.harness import ATTEMPTS_DDL, build_test_executor, work_message


class RecordingExecutor:
    """Ends each run after ``step_s`` (or when told), recording starts, ends and concurrency."""

    def __init__(self, database_url: str, *, step_s: float = 0.02) -> None:
        self.database_url = database_url
        self.step_s = step_s
        self.spans: list[tuple[str, str, float, float]] = []
        self.running = 0
        self.max_running = 0
        self.block: set[str] = set()
        self.fence_out: set[str] = set()
        self.woken: dict[str, float] = {}

    async def advance(
        self, run: DueRun, fence: Fence, *, wake: asyncio.Event, stop: asyncio.Event
    ) -> Outcome:
        started = time.monotonic()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if run.execution_id in self.fence_out:
                raise fence.refused()
            if run.execution_id in self.block:
                waker = asyncio.ensure_future(wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                    stopper.cancel()
                if stop.is_set():
                    return Outcome.YIELDED
                self.woken[run.execution_id] = time.monotonic()
            else:
                await asyncio.sleep(self.step_s)
            async with await psycopg.AsyncConnection.connect(
                self.database_url, autocommit=True
            ) as conn:
                await conn.execute(
                    "DELETE FROM run_index WHERE execution_id = %s", (run.execution_id,)
                )
            self.spans.append((run.session_id, run.execution_id, started, time.monotonic()))
            return Outcome.COMPLETED
        finally:
            self.running -= 1


def _settings(database_url: str, name: str, ttl_s: float = 1.5) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": as_app(database_url),
            "AGENTLANE_SHARDS": str(TEST_SHARDS),
            "AGENTLANE_LEASE_TTL": str(ttl_s),
            "POD_NAME": name,
            "AGENTLANE_DB_POOL_MAX": "4",
        }
    )


@asynccontextmanager
async def running(
    database_url: str, executor: RecordingExecutor, name: str = "r", **options: float
) -> AsyncIterator[Runner]:
    runner = Runner(
        _settings(database_url, name),
        lambda db, settings, registry: executor,
        RunnerOptions(poll_interval_s=0.2, **options),  # type: ignore[arg-type]
    )
    async with runner:
        yield runner


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _index_size(db: Database) -> int:
    async with db.connection() as conn:
        row = await (await conn.execute("SELECT count(*) FROM run_index")).fetchone()
    assert row is not None
    return int(row[0])


async def _wait_index_empty(db: Database, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while await _index_size(db):
        assert time.monotonic() < deadline, "runs did not finish"
        await asyncio.sleep(0.1)


async def test_one_run_per_session_at_a_time_in_order_within_the_admission_bound(
    commands: Commands, db: Database, database_url: str
) -> None:
    executor = RecordingExecutor(database_url)
    accepted: dict[str, list[str]] = {}
    for session in range(6):
        for index in range(4):
            result = await commands.start_run(
                tenant_id="t", session_id=f"s{session}", run_id=f"r{session}-{index}",
                message="hi",
            )
            accepted.setdefault(f"s{session}", []).append(result.execution_id)
    async with running(database_url, executor, max_concurrent_runs=3) as runner:
        await _until(runner.is_ready, 10, "readiness")
        assert runner.owned_shards() == list(range(TEST_SHARDS))
        await _wait_index_empty(db, 30)
    assert executor.max_running <= 3
    assert executor.max_running >= 2, "sessions on different shards should run side by side"
    for session, order in accepted.items():
        spans = [span for span in executor.spans if span[0] == session]
        assert [span[1] for span in spans] == order
        for before, after in itertools.pairwise(spans):
            assert after[2] >= before[3], "a session's runs overlapped"


async def test_a_command_wakes_the_run_being_advanced(
    commands: Commands, database_url: str
) -> None:
    executor = RecordingExecutor(database_url)
    result = await commands.start_run(tenant_id="t", session_id="s", run_id="r", message="hi")
    executor.block.add(result.execution_id)
    async with running(database_url, executor):
        await _until(lambda: executor.running == 1, 10, "the advance to start")
        asked = time.monotonic()
        await commands.cancel_run(tenant_id="t", execution_id=result.execution_id)
        await _until(lambda: result.execution_id in executor.woken, 5, "the wake")
        print(f"command -> wake: {executor.woken[result.execution_id] - asked:.3f}s")


async def test_a_peer_joining_takes_half_the_shards(database_url: str) -> None:
    first, second = RecordingExecutor(database_url), RecordingExecutor(database_url)
    async with running(database_url, first, "a") as a:
        await _until(lambda: len(a.owned_shards()) == TEST_SHARDS, 10, "a to own every shard")
        async with running(database_url, second, "b") as b:
            await _until(
                lambda: len(a.owned_shards()) == len(b.owned_shards()) == TEST_SHARDS // 2,
                15,
                "an even split",
            )
            assert set(a.owned_shards()).isdisjoint(b.owned_shards())
            await _until(lambda: a.is_ready() and b.is_ready(), 5, "both ready")
        await _until(lambda: len(a.owned_shards()) == TEST_SHARDS, 15, "a to take them back")


async def test_a_fenced_append_drops_the_shard_at_once(
    commands: Commands, db: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    executor = RecordingExecutor(database_url)
    result = await commands.start_run(tenant_id="t", session_id="s", run_id="r", message="hi")
    executor.fence_out.add(result.execution_id)
    shard = shard_for("t", "s", TEST_SHARDS)
    with caplog.at_level(logging.WARNING, logger="runners.component"):
        async with running(database_url, executor) as runner:
            await _until(
                lambda: any("append rejected by the fence" in r.message for r in caplog.records),
                10,
                "the fence log line",
            )
            executor.fence_out.clear()
            # Dropped, then claimed again with a new token (nobody else wants it).
            await _until(lambda: shard in runner.owned_shards(), 10, "a new claim")
            await _wait_index_empty(db, 10)
    assert any(f"dropped shard {shard}" in r.message for r in caplog.records)


async def test_a_shard_with_no_progress_is_given_up(
    commands: Commands, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    executor = RecordingExecutor(database_url)
    # Two sessions on different shards; the admission bound lets only the blocked one run.
    sessions = [f"s{i}" for i in range(40)]
    first = sessions[0]
    home = shard_for("t", first, TEST_SHARDS)
    other = next(s for s in sessions if shard_for("t", s, TEST_SHARDS) != home)
    blocked = await commands.start_run(tenant_id="t", session_id=first, run_id="r1", message="x")
    executor.block.add(blocked.execution_id)
    async with running(
        database_url, executor, max_concurrent_runs=1, stall_timeout_s=1.0
    ) as runner:
        await _until(lambda: executor.running == 1, 10, "the blocked advance")
        await commands.start_run(tenant_id="t", session_id=other, run_id="r2", message="x")
        stuck = shard_for("t", other, TEST_SHARDS)
        with caplog.at_level(logging.WARNING, logger="runners.component"):
            await _until(lambda: stuck not in runner.owned_shards(), 15, "the stalled shard to go")
        assert any("stalled" in r.message for r in caplog.records)


async def test_a_restarted_name_gets_a_new_incarnation_and_never_reuses_tokens(
    db: Database,
) -> None:
    first, second = RunnerIdentity.fresh("pod-0"), RunnerIdentity.fresh("pod-0")
    assert first.runner_id != second.runner_id
    old = Leases(db, SHARD_LEASES, holder=first.runner_id, ttl_s=0.5)
    new = Leases(db, SHARD_LEASES, holder=second.runner_id, ttl_s=0.5)
    held = await old.claim(TEST_SHARDS)
    assert len(held) == TEST_SHARDS
    assert await new.claim(TEST_SHARDS) == [], "live leases are never taken"
    await asyncio.sleep(0.7)
    taken = await new.claim(TEST_SHARDS)
    assert [lease.shard_id for lease in taken] == [lease.shard_id for lease in held]
    assert all(t.token == h.token + 1 for t, h in zip(taken, held, strict=True))
    assert await old.renew(held) == {}, "the old incarnation cannot renew what it lost"
    assert await old.release(held) == [], "nor release it"


async def test_the_engine_is_fenced_when_the_lease_moved_behind_the_runner_s_back(
    commands: Commands, db: Database, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A runner whose own clock still says "leased" (a pause, a skewed view) while the database
    gave the shard to another runner: the real engine's next append is refused by the fence, the
    runner drops the shard at once, and nothing more is written for it."""
    with psycopg.connect(database_url, autocommit=True) as conn:  # the test's own table
        conn.execute(ATTEMPTS_DDL)
    run = await commands.start_run(
        tenant_id="t", session_id="s", run_id="r", message=work_message(steps=40, step_s=0.1)
    )
    shard = shard_for("t", "s", TEST_SHARDS)
    runner = Runner(
        _settings(database_url, "victim", ttl_s=30),
        build_test_executor,
        RunnerOptions(poll_interval_s=0.2),
    )

    async def steps_done() -> int:
        async with db.connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM agent_events WHERE execution_id = %s "
                    "AND event_type = 'StepCompleted'",
                    (run.execution_id,),
                )
            ).fetchone()
        assert row is not None
        return int(row[0])

    with caplog.at_level(logging.WARNING, logger="runners.component"):
        async with runner:
            deadline = time.monotonic() + 20
            while await steps_done() < 2:
                assert time.monotonic() < deadline, "the run did not progress"
                await asyncio.sleep(0.05)
            async with db.connection() as conn:
                await conn.execute(
                    "UPDATE cluster_shards SET lease_expires_at = now() WHERE shard_id = %s",
                    (shard,),
                )
            thief = Leases(db, SHARD_LEASES, holder="thief/1", ttl_s=30)
            assert [lease.shard_id for lease in await thief.claim(1)] == [shard]
            await _until(
                lambda: any("append rejected by the fence" in r.message for r in caplog.records),
                10,
                "the engine's fenced append",
            )
            assert shard not in runner.owned_shards()
            written = await steps_done()
            await asyncio.sleep(0.5)
            assert await steps_done() == written, "the fenced runner kept writing"
    assert written < 40
    assert any(f"dropped shard {shard}" in r.message and "fenced" in r.message
               for r in caplog.records)


def _failover(database_url: str, *, read_only: bool) -> None:
    """What a Cloud SQL failover looks like from the runner: its connections drop, and the server
    it reconnects to refuses writes (until promotion finishes)."""
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    # From another database: this one refuses even ALTER DATABASE once read-only.
    admin_url = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            psycopg.sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = {}").format(
                psycopg.sql.Identifier(str(dbname)), psycopg.sql.Literal(read_only)
            )
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE 'agentlane-runner%%'",
            (dbname,),
        )


async def test_a_read_only_failover_is_waited_out_not_fatal(
    commands: Commands, db: Database, database_url: str
) -> None:
    executor = RecordingExecutor(database_url)
    async with running(database_url, executor) as runner:
        await _until(runner.is_ready, 10, "readiness")
        _failover(database_url, read_only=True)
        # Longer than the lease TTL (1.5 s): renewals and claims are refused all along, so the
        # leases lapse; the loops keep retrying rather than ending the runner.
        await asyncio.sleep(4)
        assert runner.owned_shards() == [] and not runner.is_ready()
        _failover(database_url, read_only=False)
        await _until(runner.is_ready, 20, "readiness after the failover")
        await commands.start_run(tenant_id="t", session_id="s", run_id="after", message="hi")
        await _wait_index_empty(db, 20)
    assert executor.spans, "the run accepted after the failover ran"

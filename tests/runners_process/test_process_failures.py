"""Real runner processes under real failures: SIGKILL, SIGSTOP, SIGTERM, restarts, Postgres restart.

Each test has its own migrated database (16 shards) and a lease TTL of 3 s. Runs use the test
workflow of ``harness.py`` (the real runner and engine, a workflow whose steps take as long as the
test needs) so that runs are reliably in flight when the signal lands.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agentlane.cli.embedded_pg import FAST_UNSAFE_SETTINGS, EmbeddedPostgres
from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.errors import FencedOut
from agentlane.leases import Fence
from agentlane.migrate import migrate
from agentlane.records import NewEvent
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS
from tests.fixtures.processes import Proc, stop_all
from tests.runners_process.harness import (
    ATTEMPTS_DDL,
    REPO_ROOT,
    runner_env,
    spawn_runner,
    work_message,
)
from tests.runners_process.journal_checks import (
    check_journal,
    completed_runs,
    messages,
    metric,
    owners,
    query,
    scalar,
    shards_of,
    wait_for,
)

TTL_S = 3.0
POOL_MAX = 6


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    stop_all(started)


def _start(
    procs: list[Proc], url: str, name: str, log_dir: Path, *, harness: bool = True
) -> Proc:
    proc = spawn_runner(name, runner_env(url, name, ttl_s=TTL_S), log_dir, harness=harness)
    procs.append(proc)
    return proc


def _prepare(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ATTEMPTS_DDL)


async def _start_runs(url: str, runs: int, sessions: int, message: str) -> None:
    """Runs ``r0..`` round-robin over sessions ``s0..``; sessions submit side by side (a burst)."""
    async with open_database(url, name="test-commands", min_size=1, max_size=8) as db:
        commands = Commands(EventStore(db, shards=TEST_SHARDS), RunIndex(db))

        async def session(number: int) -> None:
            for index in range(number, runs, sessions):
                await commands.start_run(
                    tenant_id="t", session_id=f"s{number}", run_id=f"r{index}", message=message
                )

        await asyncio.gather(*(session(number) for number in range(sessions)))


def _all_owned(url: str, by: set[str] | None = None) -> bool:
    table = owners(url)
    return all(
        live and runner is not None and (by is None or runner.split("/")[0] in by)
        for runner, _, live in table.values()
    )


def _doubled_attempts(url: str) -> int:
    return int(scalar(
        url, "SELECT count(*) FROM (SELECT key FROM test_step_attempts GROUP BY key "
        "HAVING count(*) > 1) d",
    ))


@pytest.mark.slow
def test_sigkill_mid_run_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    for index in range(3):
        _start(procs, database_url, f"runner-{index}", tmp_path, harness=False)
    for proc in procs:
        proc.wait_http("/readyz", timeout_s=60)
    wait_for(lambda: _all_owned(database_url), 20, "every shard owned", procs)
    # The offline model: a model call, the calculator tool, a model call = 3 steps per run.
    # Runs are submitted (50 sessions side by side) while the runners work.
    # Enough runs that the burst outlasts the victim's pace even on a busy machine.
    runs = 300
    submitter = threading.Thread(
        target=asyncio.run, args=(_start_runs(database_url, runs, 50, "calculate 6*7"),)
    )
    submitter.start()
    victim = procs[0]
    held = shards_of(database_url, victim.name)
    assert held, "the victim held no shard"
    unfinished = 0

    def victim_mid_run() -> bool:
        nonlocal unfinished
        unfinished = query(
            database_url,
            "SELECT count(*) FROM run_index WHERE shard_id = ANY(%s)", (sorted(held),)
        )[0][0]
        return unfinished >= 5

    # An offline run is often written in one transaction, so "in flight" lives only in the
    # victim's memory: kill while its lanes hold unfinished runs it is working through.
    wait_for(victim_mid_run, 60, "runs waiting on the victim's shards", procs, poll_s=0.01)
    killed_at = scalar(database_url, "SELECT now()")
    victim.kill()
    dead_at = scalar(database_url, "SELECT now()")
    submitter.join(timeout=60)

    wait_for(lambda: scalar(database_url, "SELECT count(*) FROM run_index") == 0, 120,
             "every run to finish", procs)
    check_journal(database_url, runs)

    sessions = {f"s{i}" for i in range(50)}
    on_victim = [s for s in sessions if _shard("t", s) in held]
    resumed_at = scalar(
        database_url,
        "SELECT min(created_at) FROM agent_events WHERE session_id = ANY(%s) AND created_at > %s "
        "AND event_type <> 'RunAccepted'",
        (on_victim, dead_at),
    )
    assert unfinished > 0 and resumed_at is not None, "the victim had no work left"
    taken_at = scalar(
        database_url,
        "SELECT max(acquired_at) FROM cluster_shards WHERE shard_id = ANY(%s)",
        (sorted(held),),
    )
    print(
        f"\nSIGKILL -> shards taken over: {(taken_at - killed_at).total_seconds():.2f}s; "
        f"-> first event of its sessions elsewhere: "
        f"{(resumed_at - killed_at).total_seconds():.2f}s (lease TTL {TTL_S:.0f}s, "
        f"target TTL + 2s); it held {len(held)} shards with {unfinished} unfinished runs"
    )
    answers = query(
        database_url,
        "SELECT DISTINCT payload->>'answer', payload->>'offline' FROM agent_events "
        "WHERE event_type = 'Completed'",
    )
    assert answers and all("42" in answer and offline == "true" for answer, offline in answers)


def _shard(tenant: str, session: str) -> int:
    from agentlane.sharding import shard_for

    return shard_for(tenant, session, TEST_SHARDS)


@pytest.mark.slow
def test_sigstopped_runner_is_fenced_and_drops_its_shards(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    _prepare(database_url)
    paused = _start(procs, database_url, "paused", tmp_path)
    paused.wait_http("/readyz", timeout_s=60)
    other = _start(procs, database_url, "other", tmp_path)
    other.wait_http("/readyz", timeout_s=60)
    wait_for(lambda: len(shards_of(database_url, "paused")) == TEST_SHARDS // 2, 20,
             "an even split", procs)
    asyncio.run(_start_runs(database_url, 60, 30, work_message(steps=4, step_s=0.4)))
    wait_for(lambda: metric(paused, "agentlane_runner_runs_in_flight") > 0, 20,
             "runs in flight on the paused runner", procs)

    stale = shards_of(database_url, "paused")
    runner_id = next(
        r for r, _, _ in owners(database_url).values() if r and r.startswith("paused/")
    )
    paused.signal(signal.SIGSTOP)
    wait_for(lambda: _all_owned(database_url, by={"other"}), 30,
             "the other runner to take every shard", procs)

    # The fence itself: an append with the paused runner's token is refused and writes nothing.
    shard, token = next(iter(stale.items()))
    session = next(f"s{i}" for i in range(1000) if _shard("t", f"s{i}") == shard)
    with pytest.raises(FencedOut):
        asyncio.run(_fenced_append(database_url, session, Fence(shard, runner_id, token)))
    late = "SELECT count(*) FROM agent_events WHERE payload->>'text' = 'late'"
    assert scalar(database_url, late) == 0

    paused.signal(signal.SIGCONT)
    wait_for(lambda: len(messages(paused, "dropped shard")) >= len(stale), 20,
             "the resumed runner to drop its old shards", procs)
    dropped = messages(paused, "dropped shard")
    wait_for(lambda: scalar(database_url, "SELECT count(*) FROM run_index") == 0, 90,
             "every run to finish", procs)
    check_journal(database_url, 60)
    fenced = metric(paused, "agentlane_runner_fenced_appends_total")
    print(f"\nresumed runner dropped {len(dropped)} shards; appends rejected by the fence: "
          f"{fenced:.0f}; e.g. {dropped[0]!r}")
    for proc in procs:
        proc.wait_http("/readyz", timeout_s=30)


async def _fenced_append(url: str, session: str, fence: Fence) -> None:
    async with open_database(url, name="test-fence", min_size=1, max_size=1) as db:
        store = EventStore(db, shards=TEST_SHARDS)
        await store.append(NewEvent("t", session, "Token", {"text": "late", "index": 0}),
                           fence=fence)


def test_sigterm_finishes_steps_in_flight_and_hands_shards_over_at_once(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    _prepare(database_url)
    leaving = _start(procs, database_url, "leaving", tmp_path)
    _start(procs, database_url, "staying", tmp_path)
    for proc in procs:
        proc.wait_http("/readyz", timeout_s=60)
    wait_for(lambda: len(shards_of(database_url, "leaving")) == TEST_SHARDS // 2, 20,
             "an even split", procs)
    asyncio.run(_start_runs(database_url, 40, 20, work_message(steps=3, step_s=0.5)))
    wait_for(lambda: metric(leaving, "agentlane_runner_runs_in_flight") > 0, 20,
             "runs in flight on the leaving runner", procs)

    leaving.signal(signal.SIGTERM)
    asked = time.monotonic()
    wait_for(lambda: _all_owned(database_url, by={"staying"}), 10,
             "the staying runner to own every shard", procs)
    handover_s = time.monotonic() - asked
    assert leaving.popen.wait(timeout=30) == 0
    print(f"\nSIGTERM -> every shard owned by the peer: {handover_s:.2f}s "
          "(includes finishing the steps in flight, 0.5 s each)")
    assert handover_s < TTL_S, "the shards were not released (they expired instead)"
    assert messages(leaving, "drained: every shard released")
    assert not messages(leaving, "did not finish"), "steps in flight were cancelled"
    wait_for(lambda: scalar(database_url, "SELECT count(*) FROM run_index") == 0, 60,
             "every run to finish", procs)
    check_journal(database_url, 40)
    assert _doubled_attempts(database_url) == 0, "a step in flight at SIGTERM ran again"


@pytest.mark.slow
def test_a_durable_timer_survives_a_restart_of_every_runner_and_fires_on_time(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    _prepare(database_url)
    first = [_start(procs, database_url, f"first-{i}", tmp_path) for i in range(2)]
    for proc in first:
        proc.wait_http("/readyz", timeout_s=60)
    asyncio.run(_start_runs(database_url, 8, 8, work_message(steps=1, step_s=0.05, sleep_s=8)))
    wait_for(
        lambda: scalar(database_url, "SELECT count(*) FROM agent_events "
                       "WHERE event_type = 'TimerScheduled'") == 8,
        30, "every timer scheduled", procs,
    )
    first[0].kill()
    assert first[1].terminate(timeout_s=30) == 0
    second = [_start(procs, database_url, f"second-{i}", tmp_path) for i in range(2)]
    wait_for(lambda: scalar(database_url, "SELECT count(*) FROM run_index") == 0, 60,
             "every run to finish", procs)
    check_journal(database_url, 8)
    lateness = [
        row[0]
        for row in query(
            database_url,
            "SELECT extract(epoch FROM f.created_at - (s.payload->>'fireAt')::timestamptz) "
            "FROM agent_events s JOIN agent_events f ON f.execution_id = s.execution_id "
            "AND f.event_type = 'TimerFired' WHERE s.event_type = 'TimerScheduled'",
        )
    ]
    assert len(lateness) == 8
    assert all(late >= 0 for late in lateness), "a timer fired early"
    print(f"\ntimers fired after every runner restarted; lateness max {max(lateness):.2f}s")
    assert max(lateness) < 2.5, "timers fired late"
    assert second


@pytest.mark.slow
def test_postgres_restart_under_load_reconnects_without_a_storm(
    tmp_path: Path, procs: list[Proc]
) -> None:
    server = EmbeddedPostgres(tmp_path / "pg", settings=FAST_UNSAFE_SETTINGS)
    server.start()
    try:
        url = server.url()
        migrate(url, shards=TEST_SHARDS)
        _prepare(url)
        for index in range(2):
            _start(procs, url, f"runner-{index}", tmp_path)
        for proc in procs:
            proc.wait_http("/readyz", timeout_s=60)
        asyncio.run(_start_runs(url, 100, 25, work_message(steps=3, step_s=0.1)))
        wait_for(lambda: completed_runs(url) >= 15, 60, "some runs completed", procs)
        server.stop()
        time.sleep(10)
        server.start()
        wait_for(lambda: scalar(url, "SELECT count(*) FROM run_index") == 0, 120,
                 "every run to finish after the restart", procs)
        connections = scalar(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'agentlane-runner%'",
        )
        bound = (POOL_MAX + 2 + 1) * 2  # main pool + lease pool + LISTEN, per runner
        print(f"\nafter the restart: {connections} runner connections (bound {bound})")
        assert connections <= bound
        check_journal(url, 100)
        for proc in procs:
            assert proc.alive()
            proc.wait_http("/readyz", timeout_s=30)
            # Unreachable for longer than the TTL: it kept no lease it could not renew.
            assert messages(proc, "lease_expired"), f"{proc.name} kept its leases"
    finally:
        stop_all(procs)
        server.destroy()


def test_a_runner_restarted_under_its_name_gets_a_new_incarnation_and_new_tokens(
    database_url: str, tmp_path: Path, procs: list[Proc]
) -> None:
    first = _start(procs, database_url, "pod-0", tmp_path)
    first.wait_http("/readyz", timeout_s=60)
    old = owners(database_url)
    old_ids = {runner for runner, _, _ in old.values()}
    assert len(old_ids) == 1
    first.kill()
    second = _start(procs, database_url, "pod-0", tmp_path)
    second.wait_http("/readyz", timeout_s=60)
    new = owners(database_url)
    new_ids = {runner for runner, _, _ in new.values()}
    assert len(new_ids) == 1 and new_ids != old_ids
    (old_id,), (new_id,) = old_ids, new_ids
    assert old_id is not None and new_id is not None
    assert old_id.split("/")[0] == new_id.split("/")[0] == "pod-0"
    assert all(new[s][1] == old[s][1] + 1 for s in new), "tokens were reused"
    listing = subprocess.run(
        [sys.executable, "-m", "agentlane.cli", "shards", "--json"],
        env={**second.env}, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert f'"runner": "{new_id}"' in listing.stdout and old_id not in listing.stdout
    table = subprocess.run(
        [sys.executable, "-m", "agentlane.cli", "shards"],
        env={**second.env, "COLUMNS": "160"}, cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    print(table.stdout)
    assert new_id in table.stdout and "0-15" in table.stdout


def test_a_shard_count_mismatch_refuses_to_start(database_url: str) -> None:
    env = {**runner_env(database_url, "wrong", AGENTLANE_SHARDS="8"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "agentlane.cli", "runner"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "AGENTLANE_SHARDS=8" in last and "16 shards" in last
    assert "Traceback" not in result.stderr
    assert scalar(database_url, "SELECT count(*) FROM cluster_runners") == 0

"""Version pinning through real runner processes: runs started on a version are never advanced by
code that lacks it or no longer replays it; they wait, untouched and visible on /metrics, for a
runner that can, and then finish.

Two deploys go wrong while runs sleep on a durable timer under ``test-1`` (image ``v1``):
- the new image (``v2``) only has ``test-2``: an operator moves the runs explicitly with
  ``agentlane runs move-version``, after which they finish on ``v2``;
- the new image renamed a step without a new version (the course's "workflow rename"): its code
  diverges from the runs' journals; rolling back to ``v1`` resumes them (the rollback drill).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.run_index import RunIndex
from agentlane.store import EventStore
from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import Proc, stop_all
from tests.runners_process.harness import (
    ATTEMPTS_DDL,
    REPO_ROOT,
    runner_env,
    spawn_runner,
    work_message,
)
from tests.runners_process.journal_checks import metric, query, wait_for

RUNS = 4
STEPS = 8  # of the rollback drill's runs


async def _start(url: str, message: str = work_message(steps=2, step_s=0.05, sleep_s=2)) -> None:
    async with open_database(url, name="test-commands", min_size=1, max_size=2) as db:
        commands = Commands(EventStore(db, shards=TEST_SHARDS), RunIndex(db))
        for index in range(RUNS):
            await commands.start_run(
                tenant_id="t", session_id=f"s{index}", run_id=f"r{index}", message=message
            )


def _unrunnable(proc: Proc) -> float | None:
    """The runner's gauge of test-1 runs it cannot take (None while it is not serving yet)."""
    try:
        # The exposition sorts labels: reason, version, workflow.
        return metric(proc, 'agentlane_runs_unrunnable{reason="missing",version="test-1"')
    except httpx.HTTPError:
        return None


def _types(database_url: str) -> list[str]:
    return [row[0] for row in query(database_url, "SELECT event_type FROM agent_events")]


@pytest.mark.slow
def test_a_deploy_without_a_runs_version_leaves_it_waiting_until_an_operator_moves_it(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(ATTEMPTS_DDL)
    asyncio.run(_start(database_url))
    old = spawn_runner("old", runner_env(database_url, "old", ttl_s=2, HARNESS_VERSIONS="test-1",
                                         AGENTLANE_CODE_VERSION="v1"), tmp_path)
    procs = [old]
    try:
        def started() -> list[tuple[str, str]]:
            return [(row[0], row[1]) for row in query(
                database_url,
                "SELECT payload ->> 'version', payload ->> 'codeVersion' FROM agent_events "
                "WHERE event_type = 'RunStarted'",
            )]

        wait_for(lambda: len(started()) == RUNS, 30, "every run to start on v1", procs)
        assert set(started()) == {("test-1", "v1")}
        assert old.terminate() == 0  # a rollout's SIGTERM: v1 drains and hands its shards over
        new = spawn_runner("new", runner_env(
            database_url, "new", ttl_s=2, HARNESS_VERSIONS="test-2", AGENTLANE_CODE_VERSION="v2",
        ), tmp_path)
        procs.append(new)
        # The timers fire on the new runner, which has no test-1: it leaves the runs alone.
        wait_for(lambda: _unrunnable(new) == RUNS,
                 30, "the new runner to report the runs it cannot take", procs)
        assert "Failed" not in _types(database_url)
        assert "Completed" not in _types(database_url)

        moved = subprocess.run(
            [sys.executable, "-m", "agentlane.cli", "runs", "move-version",
             "--from", "test-1", "--to", "test-2", "--reason", "v2 replays v1 (golden replays)",
             "--database-url", as_app(database_url)],
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
            env={"PATH": "/usr/bin:/bin", "AGENTLANE_SHARDS": str(TEST_SHARDS)},
        )
        assert moved.returncode == 0, moved.stderr
        assert f"moved {RUNS} run(s)" in moved.stderr
        assert moved.stdout.count("test-1 -> test-2") == RUNS

        def completed() -> int:
            return _types(database_url).count("Completed")

        wait_for(lambda: completed() == RUNS, 30, "the moved runs to finish on v2", procs)
        wait_for(lambda: _unrunnable(new) == 0, 10, "the gauge to clear", procs)
        assert "Failed" not in _types(database_url)
        # Each run's steps ran once: the journal carried over, nothing was re-run.
        attempts = query(database_url, "SELECT key, count(*) FROM test_step_attempts GROUP BY key")
        assert len(attempts) == RUNS * 2 and {count for _, count in attempts} == {1}
    finally:
        stop_all(procs)


def test_move_version_refuses_what_it_cannot_do_in_one_line(database_url: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentlane.cli", "runs", "move-version", *args,
             "--database-url", as_app(database_url)],
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
            env={"PATH": "/usr/bin:/bin", "AGENTLANE_SHARDS": str(TEST_SHARDS)},
        )

    for args, error in [
        (("--to", "2"), "either --from VERSION or --execution ID"),
        (("--to", "2", "--from", "1", "--execution", "ex_1"), "either --from"),
        (("--to", "2", "--execution", "ex_nope"), "no such unfinished run"),
    ]:
        answer = run(*args)
        assert answer.returncode == 1, (args, answer.stderr)
        assert answer.stderr.count("\n") == 1 and error in answer.stderr, answer.stderr
    nothing = run("--to", "2", "--from", "1", "--dry-run")
    assert nothing.returncode == 0 and "would move 0 run(s)" in nothing.stderr


def _diverged(proc: Proc) -> float | None:
    try:
        return metric(proc, 'agentlane_runs_unrunnable{reason="diverged"')
    except httpx.HTTPError:
        return None


@pytest.mark.slow
def test_a_deploy_that_renamed_a_step_is_rolled_back_and_the_runs_resume(
    database_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(ATTEMPTS_DDL)
    # Eight 0.6 s steps: v1 is stopped (it drains: the step in flight finishes) once every run
    # has journaled its first step under the old name, long before any run is done (runs start
    # staggered as v1 claims its shards; the fresh-clone CI saw a three-step run finish first).
    asyncio.run(_start(database_url, work_message(steps=STEPS, step_s=0.6)))
    v1 = runner_env(database_url, "v1", ttl_s=2, AGENTLANE_CODE_VERSION="v1")
    old = spawn_runner("v1", v1, tmp_path)
    procs = [old]
    try:
        def stepped() -> int:
            return len(query(database_url,
                             "SELECT DISTINCT execution_id FROM agent_events "
                             "WHERE event_type = 'StepCompleted'"))

        wait_for(lambda: stepped() == RUNS, 30, "every run to journal a step on v1", procs)
        # A rollout's SIGTERM: v1 drains (a SIGKILL here could cut a step after its side effect
        # and before its journal entry: run again, as at-least-once activities may be).
        assert old.terminate() == 0
        assert "Completed" not in _types(database_url)
        bad = spawn_runner("v2-bad", runner_env(
            database_url, "v2-bad", ttl_s=2, AGENTLANE_CODE_VERSION="v2",
            HARNESS_STEP_NAME="renamed-step",
        ), tmp_path)
        procs.append(bad)
        wait_for(lambda: _diverged(bad) == RUNS, 30, "the bad deploy to report diverged runs",
                 procs)
        assert not {"Failed", "Completed"} & set(_types(database_url))
        assert "non-determinism" in bad.log()
        # Roll back: the previous image takes the shards again and the runs finish.
        assert bad.terminate() == 0
        back = spawn_runner("v1-again", {**v1, "POD_NAME": "v1-again"}, tmp_path)
        procs.append(back)
        wait_for(lambda: _types(database_url).count("Completed") == RUNS, 30,
                 "the runs to resume on the rolled-back image", procs)
        assert "Failed" not in _types(database_url)
        attempts = query(database_url, "SELECT key, count(*) FROM test_step_attempts GROUP BY key")
        assert len(attempts) == RUNS * STEPS and {count for _, count in attempts} == {1}
    finally:
        stop_all(procs)
